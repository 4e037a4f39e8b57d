"""The bundle manifest `airgap-bundle.json` (format `airgap-bundle/v2`): what a bundle holds.

    manifest = BundleManifest(created=..., name="site", sequence=..., layout=layout_files(dir),
                              images=(...), blobs=(...), charts=(), files=())
    data = manifest.to_bytes()           # canonical: what the detached signature covers
    again = BundleManifest.from_bytes(data)

It names the bundle (`name`, the spec's name) and orders it among the bundles of that name
(`sequence`, a positive integer that grows with every `bundle create`: a target refuses a bundle
older than the newest of that name it imported, so an old signed bundle cannot move tags back). It
records the SHA-256 and size of the OCI layout's own files (`layout`: `oci/index.json`, which names
tags that skopeo, oras and crane read, and `oci/oci-layout`), so every file of a bundle is covered
by the signature. It lists every image (the reference as given, the digest it resolved to, its
digest graph: each manifest digest with its media type and the digests it references, and its
attachments by kind), every blob in the bundle's OCI layout (digest, size), every chart (name,
version, digest, file) and every plain file (path inside the bundle, sha256, size). A delta bundle
also lists under `onTarget` the blobs and manifests its graph needs that the target registry already
holds (from `airgap bundle inventory`); they are not carried, and import checks they are there.

Format v1 (no name, sequence or layout) is refused: its index.json was not signed.

Parsing is strict: an unknown or missing field, a wrong type, a malformed digest, a path that
leaves the bundle or a duplicate entry is a one-line `UsageError` naming the field. The
serialization is canonical (sorted keys, no whitespace, UTF-8), so the signed bytes are stable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, TypeVar

from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.inputs import decode_strict_json
from offline.oci.digests import is_digest
from offline.strict import StrictReader, at, describe

FORMAT = "airgap-bundle/v2"
MANIFEST_FILE = "airgap-bundle.json"
# Where the OCI image layout lives inside a bundle directory.
OCI_DIR = "oci"
# The layout's own files: not blobs, but read by every OCI tool; the manifest covers them.
INDEX_FILE = f"{OCI_DIR}/index.json"
LAYOUT_FILE = f"{OCI_DIR}/oci-layout"
LAYOUT_FILES = (INDEX_FILE, LAYOUT_FILE)
# A bundle name (as a spec's) and the bound of a sequence (a signed 64-bit integer).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SEQUENCE = 2**63 - 1

# The largest airgap-bundle.json read (it lists every blob of a bundle; an OCI manifest is
# bounded by offline.oci.manifest.MAX_MANIFEST_SIZE instead).
MAX_BUNDLE_MANIFEST_SIZE = 256 * 1024 * 1024
_CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FIELDS = (
    "format",
    "created",
    "name",
    "sequence",
    "layout",
    "images",
    "blobs",
    "charts",
    "files",
    "onTarget",
)
_E = TypeVar("_E")


# ----------------------------------------------------------------------------- field checks
# The structure (fields, types, lists) is the one strict reader's (offline.strict); these are
# the manifest's own kinds of value, failing in its words: `WHERE: path: what is wrong`.
def _digest(read: StrictReader, value: object, path: str) -> str:
    if not isinstance(value, str) or not is_digest(value):
        read.fail(path, f"expected sha256: and 64 lowercase hex digits; got {describe(value)}")
    return value


def _bundle_path(read: StrictReader, value: object, path: str) -> str:
    """A relative POSIX path inside the bundle: no `..`, no absolute path, no empty part."""
    text = read.string(value, path)
    if "\\" in text or "\x00" in text:
        read.fail(path, f"{text!r} contains a backslash or NUL")
    parts = PurePosixPath(text)
    if parts.is_absolute() or str(parts) != text:
        read.fail(path, f"{text!r} is not a normalized relative path")
    if any(part in ("", ".", "..") for part in parts.parts):
        read.fail(path, f"{text!r} leaves the bundle directory")
    return text


def _created(read: StrictReader, value: object, path: str) -> datetime:
    text = read.string(value, path)
    try:
        return datetime.strptime(text, _CREATED_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        read.fail(path, f"expected a UTC time like 2026-01-31T12:00:00Z; got {describe(value)}")


def format_created(created: datetime) -> str:
    if created.tzinfo is None:
        raise UsageError("created time has no time zone")
    return created.astimezone(UTC).strftime(_CREATED_FORMAT)


# ------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class GraphNode:
    """One manifest of an image's graph: its digest, media type and the digests it references
    (an index's manifests; an image manifest's config and layers; a referrer's subject)."""

    digest: str
    media_type: str
    references: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
            "references": list(self.references),
        }

    @classmethod
    def from_json(cls, read: StrictReader, value: object, path: str) -> GraphNode:
        document = read.mapping(value, path, ("digest", "mediaType", "references"))
        here = at(path, "references")
        references = read.items(
            document["references"], here, lambda v, p: _digest(read, v, p), allow_empty=True
        )
        return cls(
            digest=_digest(read, document["digest"], at(path, "digest")),
            media_type=read.string(document["mediaType"], at(path, "mediaType")),
            references=tuple(references),
        )


@dataclass(frozen=True)
class ImageEntry:
    """An image as named in the spec, the digest it resolved to, its graph and attachments.

    `attachments` maps a kind (`sig`, `att`, `sbom`, `referrer`, ...) to the digests of the
    attachment manifests of that kind; each is also a node of `graph`."""

    reference: str
    digest: str
    graph: tuple[GraphNode, ...]
    attachments: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "graph": [node.to_json() for node in self.graph],
            "attachments": {kind: list(ds) for kind, ds in sorted(self.attachments.items())},
        }

    @classmethod
    def from_json(cls, read: StrictReader, value: object, path: str) -> ImageEntry:
        document = read.mapping(value, path, ("reference", "digest", "graph", "attachments"))
        graph = read.items(
            document["graph"],
            at(path, "graph"),
            lambda v, p: GraphNode.from_json(read, v, p),
            allow_empty=True,
        )
        read.unique([n.digest for n in graph], at(path, "graph"))
        attachments: dict[str, tuple[str, ...]] = {}
        for kind, digests in read.table(document["attachments"], at(path, "attachments")).items():
            here = at(at(path, "attachments"), kind)
            read.string(kind, here)
            attachments[kind] = tuple(
                read.items(digests, here, lambda v, p: _digest(read, v, p), allow_empty=True)
            )
        return cls(
            reference=read.string(document["reference"], at(path, "reference")),
            digest=_digest(read, document["digest"], at(path, "digest")),
            graph=tuple(graph),
            attachments=MappingProxyType(attachments),
        )


@dataclass(frozen=True)
class BlobEntry:
    """A blob of the bundle's OCI layout (`oci/blobs/sha256/<hex>`), manifests included."""

    digest: str
    size: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, read: StrictReader, value: object, path: str) -> BlobEntry:
        document = read.mapping(value, path, ("digest", "size"))
        return cls(
            digest=_digest(read, document["digest"], at(path, "digest")),
            size=read.integer(document["size"], at(path, "size")),
        )


@dataclass(frozen=True)
class ChartEntry:
    """A Helm chart archive: its name and version, its digest and its file in the bundle."""

    name: str
    version: str
    digest: str
    file: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "file": self.file,
        }

    @classmethod
    def from_json(cls, read: StrictReader, value: object, path: str) -> ChartEntry:
        document = read.mapping(value, path, ("name", "version", "digest", "file"))
        return cls(
            name=read.string(document["name"], at(path, "name")),
            version=read.string(document["version"], at(path, "version")),
            digest=_digest(read, document["digest"], at(path, "digest")),
            file=_bundle_path(read, document["file"], at(path, "file")),
        )


@dataclass(frozen=True)
class FileEntry:
    """A plain file (a tool binary, trust material): its path in the bundle, SHA-256, size."""

    path: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, read: StrictReader, value: object, path: str) -> FileEntry:
        document = read.mapping(value, path, ("path", "sha256", "size"))
        return cls(
            path=_bundle_path(read, document["path"], at(path, "path")),
            sha256=read.hex_bytes(document["sha256"], at(path, "sha256")).hex(),
            size=read.integer(document["size"], at(path, "size")),
        )


# ------------------------------------------------------------------------------ manifest
def check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise UsageError(f"{where} {value!r} is not letters, digits, '.', '_' or '-'")
    return value


def check_sequence(value: object, where: str) -> int:
    """A positive integer below 2**63: zero is not a sequence, it is a missing one."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SEQUENCE:
        raise UsageError(f"{where} {value!r} is not an integer from 1 to {MAX_SEQUENCE}")
    return value


def file_entry(root: Path, relative: str) -> FileEntry:
    """`relative` below `root` as a FileEntry (its SHA-256 and size, read now)."""
    data = (root / relative).read_bytes()
    return FileEntry(relative, hashlib.sha256(data).hexdigest(), len(data))


def layout_files(bundle_dir: Path) -> tuple[FileEntry, ...]:
    """The entries of `layout` for the bundle at `bundle_dir`, as its files are now."""
    return tuple(file_entry(bundle_dir, name) for name in LAYOUT_FILES)


@dataclass(frozen=True)
class BundleManifest:
    created: datetime
    # The spec's name, and this bundle's place among the bundles of that name.
    name: str
    sequence: int
    # oci/index.json and oci/oci-layout (in the order of LAYOUT_FILES).
    layout: tuple[FileEntry, ...]
    images: tuple[ImageEntry, ...] = ()
    blobs: tuple[BlobEntry, ...] = ()
    charts: tuple[ChartEntry, ...] = ()
    files: tuple[FileEntry, ...] = ()
    # A delta bundle leaves out what the target already holds (from its inventory): these
    # blobs and manifests are referenced by the graph but not carried.
    on_target: tuple[BlobEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created": format_created(self.created),
            "name": self.name,
            "sequence": self.sequence,
            "layout": [f.to_json() for f in self.layout],
            "images": [i.to_json() for i in self.images],
            "blobs": [b.to_json() for b in self.blobs],
            "charts": [c.to_json() for c in self.charts],
            "files": [f.to_json() for f in self.files],
            "onTarget": [b.to_json() for b in self.on_target],
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes written to `airgap-bundle.json` and signed."""
        return canonical_json(self.to_json(), ascii_only=False)

    @classmethod
    def from_json(cls, value: object, where: str = MANIFEST_FILE) -> BundleManifest:
        if isinstance(value, dict) and value.get("format") == "airgap-bundle/v1":
            raise UsageError(
                f"{where} is format airgap-bundle/v1, whose index.json is not signed and which "
                "has no sequence: create the bundle again with this version of airgap"
            )
        read = StrictReader(where)
        document = read.mapping(value, "", _FIELDS)
        read.choice(document["format"], "format", (FORMAT,))

        def entries(key: str, entry: Callable[[StrictReader, object, str], _E]) -> tuple[_E, ...]:
            return tuple(
                read.items(document[key], key, lambda v, p: entry(read, v, p), allow_empty=True)
            )

        layout = entries("layout", FileEntry.from_json)
        if tuple(f.path for f in layout) != LAYOUT_FILES:
            read.fail("layout", f"does not list exactly {', '.join(LAYOUT_FILES)}")
        blobs = entries("blobs", BlobEntry.from_json)
        on_target = entries("onTarget", BlobEntry.from_json)
        charts = entries("charts", ChartEntry.from_json)
        files = entries("files", FileEntry.from_json)
        read.unique([b.digest for b in blobs + on_target], "blobs and onTarget")
        read.unique([c.file for c in charts] + [f.path for f in files], "charts and files")
        return cls(
            created=_created(read, document["created"], "created"),
            name=check_name(document["name"], f"{where}: name"),
            sequence=check_sequence(document["sequence"], f"{where}: sequence"),
            layout=layout,
            images=entries("images", ImageEntry.from_json),
            blobs=blobs,
            charts=charts,
            files=files,
            on_target=on_target,
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = MANIFEST_FILE) -> BundleManifest:
        """Parse `airgap-bundle.json`: strict JSON (offline.inputs.decode_strict_json), then
        every field as written."""
        return cls.from_json(decode_strict_json(data, where), where)

    def blob_sizes(self) -> dict[str, int]:
        return {b.digest: b.size for b in self.blobs}
