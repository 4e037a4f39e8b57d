"""Trust on every node (`airgap nodes apply`, `airgap nodes status`): a DaemonSet that writes the
site's public trust material and the internal registry's containerd configuration onto each
node's filesystem, versioned by a hash of its content.

- `material.py`: what goes to the nodes, read from the install's trust directory (and the TUF
  repository's published root), checked to be public material that parses;
- `containerd.py`: `certs.d/<host>/hosts.toml` for the internal registry;
- `render.py`: the ConfigMap, the writer script and the DaemonSet, and the version hash;
- `apply.py`: applying them and waiting for every node; `status.py`: what each node reports.
"""
