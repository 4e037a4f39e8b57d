"""A real, disconnected single-node Kubernetes cluster for the tests (marker `cluster`).

- `network.py`: the node's network and mount namespaces, the host's `unreachable` routes and the
  guard every command to the cluster passes;
- `pki.py`, `configs.py`: the cluster's certificates and its programs' configuration;
- `binaries.py`: where the cached Kubernetes, etcd, CoreDNS, crane and helm builds are;
- `images.py`: the node's own images, built here (no pulls);
- `node.py`: `Cluster`, which starts, diagnoses and stops it all;
- `fixtures.py`: the session fixture `cluster` (a pytest plugin).
"""
