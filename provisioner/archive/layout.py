"""What a bundle holds, as its archive carries it: every file its manifest allows (with the size
and SHA-256 the manifest records, and a bound for what it records no size for) and every
directory. Writing refuses anything else in the bundle directory; extracting refuses anything
else in the stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from offline.errors import UsageError
from provisioner.bundle.check import short
from provisioner.bundle.detached import MAX_KEY_SIGNATURE_SIZE, signature_names
from provisioner.bundle.manifest import (
    INDEX_FILE,
    LAYOUT_FILE,
    MANIFEST_FILE,
    OCI_DIR,
    BundleManifest,
)

# Bounds for what the manifest records no size for; an archive claiming more is refused.
MAX_SIGNATURE_SIZE = MAX_KEY_SIGNATURE_SIZE  # a keyless one may be larger: max_signature_size
MAX_LAYOUT_FILE_SIZE = 64 * 1024  # oci/oci-layout is {"imageLayoutVersion":"1.0.0"}
MAX_INDEX_SIZE = 64 * 1024 * 1024  # oci/index.json
# Helm refuses a chart that decompresses to more than 100 MiB (its default), so no chart
# archive in a bundle is larger.
MAX_CHART_SIZE = 100 * 1024 * 1024

BLOB_DIR = f"{OCI_DIR}/blobs/sha256"
# Directories a bundle may hold even when empty.
_KNOWN_DIRS = ("charts", "files", "trust", OCI_DIR, f"{OCI_DIR}/blobs", BLOB_DIR)
# The manifest's signature, of either kind: reserved names, never a listed file.
SIGNATURE_FILES = signature_names(MANIFEST_FILE)


@dataclass(frozen=True)
class Expected:
    """A file the bundle layout holds: what to call it, its exact size when the manifest
    records one, the most bytes accepted, and its SHA-256 when the manifest records one."""

    what: str
    size: int | None
    limit: int
    sha256: str | None


@dataclass(frozen=True)
class Layout:
    """Every file (by path) and directory an archive of one bundle holds."""

    files: dict[str, Expected]
    dirs: frozenset[str]


def bundle_layout(manifest: BundleManifest) -> Layout:
    """Every path a bundle with this manifest holds (besides the manifest and signature)."""
    # The layout's own files, at the size and SHA-256 the manifest signs (index.json names tags).
    limits = {LAYOUT_FILE: MAX_LAYOUT_FILE_SIZE, INDEX_FILE: MAX_INDEX_SIZE}
    files = {f.path: Expected(f.path, f.size, limits[f.path], f.sha256) for f in manifest.layout}
    for blob in manifest.blobs:
        what = f"blob {short(blob.digest)}"
        files[f"{BLOB_DIR}/{blob.hex}"] = Expected(what, blob.size, blob.size, blob.hex)
    listed: list[tuple[str, Expected]] = []
    for c in manifest.charts:
        what = f"chart {c.name} {c.version} ({c.file})"
        listed.append((c.file, Expected(what, None, MAX_CHART_SIZE, c.digest.split(":", 1)[1])))
    for f in manifest.files:
        listed.append((f.path, Expected(f"file {f.path}", f.size, f.size, f.sha256)))
    for path, expected in listed:
        # The manifest parser refused `..`, absolute paths and duplicates already.
        if path in (MANIFEST_FILE, *SIGNATURE_FILES) or path.split("/")[0] == OCI_DIR:
            raise UsageError(f"{MANIFEST_FILE} lists {path}, a path reserved for the bundle itself")
        files[path] = expected
    dirs = set(_KNOWN_DIRS)
    for path in files:
        dirs.update(str(p) for p in PurePosixPath(path).parents if str(p) != ".")
    clash = sorted(dirs & files.keys())
    if clash:
        raise UsageError(f"{MANIFEST_FILE} lists {clash[0]} both as a file and as a directory")
    return Layout(files, frozenset(dirs))


def file_mode(executable: bool) -> int:
    """The one mode an archived file has, written and extracted alike."""
    return 0o755 if executable else 0o644
