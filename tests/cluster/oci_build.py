"""Images written straight into an OCI image layout (offline.oci.layout.OCILayout), no daemon.

A layer is a tar made here deterministically (sorted names, mtime 0, everything root's),
gzipped with no timestamp, so its digest follows from its content alone. Making a layer can
cost seconds (a 90 MB program, a Debian rootfs), so each is cached by a recipe: a string that
names everything the layer is made of (versions, file identities, the code that made it); the
same recipe finds the blob already in the layout.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from offline.oci.layout import OCILayout
from offline.oci.manifest import OCI_MANIFEST

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerBlob:
    digest: str  # of the gzipped tar, as the manifest lists it
    diff_id: str  # of the tar, as the config lists it
    size: int


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""

    def document(self, layers: Sequence[LayerBlob]) -> dict[str, object]:
        config: dict[str, object] = {
            "Entrypoint": list(self.entrypoint),
            "Env": [f"PATH={DEFAULT_PATH}", *(f"{k}={v}" for k, v in sorted(self.env.items()))],
        }
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.workdir:
            config["WorkingDir"] = self.workdir
        return {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        }


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Root-owned as Debian's data.tar has it, whoever unpacked the packages (dpkg-deb -x run by
    # a user gives the files to that user).
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_tree(root: Path, out: IO[bytes]) -> None:
    """`root`'s content as a layer: every entry, sorted, root-owned, mtime 0."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in [*sorted(dirs), *sorted(files)]:
                path = Path(directory, name)
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                _normalise(info)
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)


def tar_files(files: Mapping[str, tuple[Path, int]], out: IO[bytes]) -> None:
    """A layer of host files: {path in the image: (host file, mode)}, parents root 0755."""
    directories = sorted(
        {"/".join(p.strip("/").split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        - {""}
    )
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(_normalise(info))
        for name in sorted(files):
            source, mode = files[name]
            info = tarfile.TarInfo(name.strip("/"))
            info.size, info.mode = source.stat().st_size, mode
            with open(source, "rb") as f:
                tar.addfile(_normalise(info), f)


def file_identity(path: Path) -> str:
    """Names a host file in a recipe without reading it: path, size, mtime (the tools caches
    never rewrite a file in place)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file")
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


class LayoutBuilder:
    """Builds images into the OCI layout `directory/layout`; the layer recipes' records sit in
    `directory/layers`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.layout = OCILayout.create(directory / "layout")
        self.records = directory / "layers"
        self.records.mkdir(parents=True, exist_ok=True)

    def layer(self, recipe: str, make: Callable[[IO[bytes]], None]) -> LayerBlob:
        """The layer `make` writes (as a tar to the file it is given), made unless its recipe
        was made before."""
        record = self.records / f"{hashlib.sha256(recipe.encode()).hexdigest()}.json"
        if record.is_file():
            blob = LayerBlob(**json.loads(record.read_text()))
            if self.layout.blob_exists(blob.digest):
                return blob
        with tempfile.TemporaryDirectory(dir=self.directory) as scratch:
            tar_path, gz_path = Path(scratch, "layer.tar"), Path(scratch, "layer.tar.gz")
            with open(tar_path, "wb") as tar:
                make(tar)
            diff_id = _gzip(tar_path, gz_path)
            digest = _file_digest(gz_path)
            size = gz_path.stat().st_size
            with open(gz_path, "rb") as f:
                self.layout.push_blob(f, digest, size)
        blob = LayerBlob(digest, diff_id, size)
        partial = record.with_suffix(".partial")
        partial.write_text(json.dumps(blob.__dict__))
        partial.replace(record)
        return blob

    def image(
        self,
        name: str,
        layers: Sequence[LayerBlob],
        config: ImageConfig,
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        """Write the image (config, manifest) and list it in index.json as `name`; its digest."""
        config_raw = _canonical(config.document(layers))
        config_digest = f"sha256:{hashlib.sha256(config_raw).hexdigest()}"
        self.layout.push_blob(config_raw, config_digest, len(config_raw))
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
            "layers": [
                {"mediaType": LAYER_GZIP, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
        if annotations:
            manifest["annotations"] = dict(sorted(annotations.items()))
        return self.layout.push_manifest(_canonical(manifest), OCI_MANIFEST, name).digest


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _gzip(source_path: Path, target_path: Path) -> str:
    """Gzip `source_path` into `target_path`; the source's digest (the layer's diff ID)."""
    digest = hashlib.sha256()
    with open(source_path, "rb") as source, open(target_path, "wb") as target:
        # mtime 0 and no file name: the gzip header records nothing of the moment.
        compressed = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0, filename="")
        with compressed:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                compressed.write(chunk)
    return f"sha256:{digest.hexdigest()}"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
