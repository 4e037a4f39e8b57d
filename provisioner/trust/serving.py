"""The published repository as a ConfigMap that a plain static web server in the cluster mounts
(the tuf chart's own server makes new keys on every start; it is never used as it is).

ConfigMap keys cannot hold '/', so each file gets a key (its path with '/' as '.': unique, as
no top-level metadata name starts with "targets.") and the volume's `items` put it back at
its path:

    data, items = configmap_files(repository)
    ConfigMap binaryData=data; volume: configMap {name, items}; the server serves the mount.
"""

from __future__ import annotations

import base64
from pathlib import Path

from offline.errors import UsageError
from provisioner.trust.secret import MAX_SECRET_BYTES


def repository_files(repository: Path) -> dict[str, bytes]:
    """Every file of the served repository by its path (posix, relative), sorted."""
    files = {}
    for path in sorted(repository.rglob("*")):
        if path.is_symlink():
            raise UsageError(f"{path}: a link in the repository; refusing to publish it")
        if path.is_file():
            files[path.relative_to(repository).as_posix()] = path.read_bytes()
    return files


def configmap_files(repository: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """`binaryData` (base64) and the volume `items` laying it out as the repository."""
    files = repository_files(repository)
    if sum(len(data) for data in files.values()) > MAX_SECRET_BYTES:
        raise UsageError("the TUF repository is too large for one ConfigMap (1 MiB)")
    data = {
        path.replace("/", "."): base64.b64encode(body).decode("ascii")
        for path, body in files.items()
    }
    items = [{"key": path.replace("/", "."), "path": path} for path in files]
    if len(data) != len(files):
        raise UsageError("two repository files map to one ConfigMap key")
    return data, items
