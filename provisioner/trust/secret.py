"""The `tuf-root` Secret: what policy-controller's TrustRoot `spec.repository` reads (`root` is
the root.json to pin, `mirrorFS` the repository as a tar.gz whose entries start with
`repository/`), in the layout scaffolding's TUF server writes it.

The archive is reproducible (sorted entries, no owners, fixed times and modes, gzip without a
timestamp): an unchanged repository exports the same bytes, so reapplying the Secret changes
nothing. A Secret holds at most 1 MiB; a repository that does not fit is refused.
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

from offline.errors import UsageError

SECRET_NAME = "tuf-root"
MAX_SECRET_BYTES = 1024 * 1024 - 64 * 1024  # the API server's limit, less room for the object
_PREFIX = "repository"


def repository_archive(repository: Path) -> bytes:
    """`repository` as a reproducible tar.gz with entries under `repository/`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_entry(_PREFIX, directory=True))
        for path in sorted(
            repository.rglob("*"), key=lambda p: p.relative_to(repository).as_posix()
        ):
            name = f"{_PREFIX}/{path.relative_to(repository).as_posix()}"
            if path.is_symlink():
                raise UsageError(f"{path}: a link in the repository; refusing to archive it")
            if path.is_dir():
                tar.addfile(_entry(name, directory=True))
            else:
                data = path.read_bytes()
                tar.addfile(_entry(name, size=len(data)), io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _entry(name: str, *, directory: bool = False, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tuf_root_secret(root: bytes, archive: bytes, namespace: str | None = None) -> dict[str, Any]:
    """The Secret manifest; the installer sets `namespace` (or applies it into one)."""
    if len(root) + len(archive) > MAX_SECRET_BYTES:
        raise UsageError(
            f"the TUF repository archive is {len(archive)} bytes: too large for the "
            f"{SECRET_NAME} Secret (at most {MAX_SECRET_BYTES} with the root)"
        )
    metadata: dict[str, Any] = {
        "name": SECRET_NAME,
        "labels": {"app.kubernetes.io/managed-by": "airgap"},
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {
            "root": base64.b64encode(root).decode("ascii"),
            "repository": base64.b64encode(archive).decode("ascii"),
        },
    }
