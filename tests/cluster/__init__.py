"""A real, disconnected single-node Kubernetes cluster for the tests (marker `cluster`).

- `network.py`: the node's network and mount namespaces, the host's `unreachable` routes and the
  guard every command to the cluster passes;
- `pki.py`, `configs.py`: the cluster's certificates and its programs' configuration;
- `binaries.py`: where the cached Kubernetes, etcd, CoreDNS, crane and helm builds are;
- `images.py`: the node's own images, built here (no pulls);
- `stack_images.py`: the images the Sigstore stack's charts run, built here into an OCI layout
  (`stack_layers.py` their layers, `debian_rootfs.py` rootfs from Debian packages, `oci_build.py`
  the layout writer, `stack_files/` the files they add), and pushed to a registry by digest;
- `node.py`: `Cluster`, which starts, diagnoses and stops it all;
- `fixtures.py`: the session fixture `cluster` (a pytest plugin); `stack_fixtures.py`:
  `stack_images` (the layout) and `internal_stack_images` (pushed to the internal registry);
- `workloads.py`: namespaces, pods run to completion, service accounts for the tests.
"""
