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
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.oci.digests import SHA256_HEX, is_digest

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


def check_unicode(document: object, where: str) -> None:
    """Refuse a string holding an unpaired surrogate (a JSON "\\ud800" escape): it can be
    neither written back as UTF-8 nor used as a file name."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"{where}: a string holds an unpaired surrogate (\\ud800-\\udfff)"
        ) from None


# ----------------------------------------------------------------------------- field checks
def json_object(value: object, where: str, required: tuple[str, ...]) -> dict[str, Any]:
    """`value` as a JSON object with exactly the `required` keys."""
    if not isinstance(value, dict):
        raise UsageError(f"{where} is not a JSON object")
    for key in required:
        if key not in value:
            raise UsageError(f"{where}: missing field {key!r}")
    for key in value:
        if key not in required:
            raise UsageError(f"{where}: unknown field {key!r}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where} is not a non-empty string")
    return value


def json_size(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"{where} is not a non-negative integer")
    return value


def _digest(value: object, where: str) -> str:
    if not isinstance(value, str) or not is_digest(value):
        raise UsageError(f"{where} {value!r} is not sha256: followed by 64 lowercase hex digits")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise UsageError(f"{where} is not a list")
    return value


def check_bundle_path(value: object, where: str) -> str:
    """A relative POSIX path inside the bundle: no `..`, no absolute path, no empty part."""
    text = _str(value, where)
    if "\\" in text or "\x00" in text:
        raise UsageError(f"{where} {text!r} contains a backslash or NUL")
    path = PurePosixPath(text)
    if path.is_absolute() or str(path) != text:
        raise UsageError(f"{where} {text!r} is not a normalized relative path")
    if any(part in ("", ".", "..") for part in path.parts):
        raise UsageError(f"{where} {text!r} leaves the bundle directory")
    return text


def format_created(created: datetime) -> str:
    if created.tzinfo is None:
        raise UsageError("created time has no time zone")
    return created.astimezone(UTC).strftime(_CREATED_FORMAT)


def _parse_created(value: object, where: str) -> datetime:
    text = _str(value, where)
    try:
        parsed = datetime.strptime(text, _CREATED_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"{where} {text!r} is not a UTC time like 2026-01-31T12:00:00Z") from None
    return parsed


def require_unique(values: list[str], where: str) -> None:
    """A UsageError naming the first value listed twice (the spec and the manifest alike)."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise UsageError(f"{where}: {value!r} is listed twice")
        seen.add(value)


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
    def from_json(cls, value: object, where: str) -> GraphNode:
        document = json_object(value, where, ("digest", "mediaType", "references"))
        references = tuple(
            _digest(r, f"{where}.references[{i}]")
            for i, r in enumerate(_list(document["references"], f"{where}.references"))
        )
        return cls(
            digest=_digest(document["digest"], f"{where}.digest"),
            media_type=_str(document["mediaType"], f"{where}.mediaType"),
            references=references,
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
    def from_json(cls, value: object, where: str) -> ImageEntry:
        document = json_object(value, where, ("reference", "digest", "graph", "attachments"))
        graph = tuple(
            GraphNode.from_json(n, f"{where}.graph[{i}]")
            for i, n in enumerate(_list(document["graph"], f"{where}.graph"))
        )
        require_unique([n.digest for n in graph], f"{where}.graph")
        raw_attachments = document["attachments"]
        if not isinstance(raw_attachments, dict):
            raise UsageError(f"{where}.attachments is not a JSON object")
        attachments: dict[str, tuple[str, ...]] = {}
        for kind, digests in raw_attachments.items():
            here = f"{where}.attachments.{kind}"
            _str(kind, f"{where}.attachments kind")
            attachments[kind] = tuple(
                _digest(d, f"{here}[{i}]") for i, d in enumerate(_list(digests, here))
            )
        return cls(
            reference=_str(document["reference"], f"{where}.reference"),
            digest=_digest(document["digest"], f"{where}.digest"),
            graph=graph,
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
    def from_json(cls, value: object, where: str) -> BlobEntry:
        document = json_object(value, where, ("digest", "size"))
        return cls(
            digest=_digest(document["digest"], f"{where}.digest"),
            size=json_size(document["size"], f"{where}.size"),
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
    def from_json(cls, value: object, where: str) -> ChartEntry:
        document = json_object(value, where, ("name", "version", "digest", "file"))
        return cls(
            name=_str(document["name"], f"{where}.name"),
            version=_str(document["version"], f"{where}.version"),
            digest=_digest(document["digest"], f"{where}.digest"),
            file=check_bundle_path(document["file"], f"{where}.file"),
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
    def from_json(cls, value: object, where: str) -> FileEntry:
        document = json_object(value, where, ("path", "sha256", "size"))
        sha256 = document["sha256"]
        if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
            raise UsageError(f"{where}.sha256 {sha256!r} is not 64 lowercase hex digits")
        return cls(
            path=check_bundle_path(document["path"], f"{where}.path"),
            sha256=sha256,
            size=json_size(document["size"], f"{where}.size"),
        )


# ------------------------------------------------------------------------------ manifest
def check_name(value: object, where: str) -> str:
    text = _str(value, where)
    if not _NAME.fullmatch(text):
        raise UsageError(f"{where} {text!r} is not letters, digits, '.', '_' or '-'")
    return text


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
        document = json_object(
            value,
            where,
            (
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
            ),
        )
        if document["format"] != FORMAT:
            raise UsageError(f"{where}.format is {document['format']!r}, expected {FORMAT!r}")
        layout = tuple(
            FileEntry.from_json(v, f"{where}.layout[{i}]")
            for i, v in enumerate(_list(document["layout"], f"{where}.layout"))
        )
        if tuple(f.path for f in layout) != LAYOUT_FILES:
            raise UsageError(f"{where}.layout does not list exactly {', '.join(LAYOUT_FILES)}")
        images = tuple(
            ImageEntry.from_json(v, f"{where}.images[{i}]")
            for i, v in enumerate(_list(document["images"], f"{where}.images"))
        )
        blobs = tuple(
            BlobEntry.from_json(v, f"{where}.blobs[{i}]")
            for i, v in enumerate(_list(document["blobs"], f"{where}.blobs"))
        )
        charts = tuple(
            ChartEntry.from_json(v, f"{where}.charts[{i}]")
            for i, v in enumerate(_list(document["charts"], f"{where}.charts"))
        )
        files = tuple(
            FileEntry.from_json(v, f"{where}.files[{i}]")
            for i, v in enumerate(_list(document["files"], f"{where}.files"))
        )
        on_target = tuple(
            BlobEntry.from_json(v, f"{where}.onTarget[{i}]")
            for i, v in enumerate(_list(document["onTarget"], f"{where}.onTarget"))
        )
        require_unique([b.digest for b in blobs + on_target], f"{where}.blobs and onTarget")
        require_unique(
            [p for p in [c.file for c in charts] + [f.path for f in files]], f"{where} files"
        )
        return cls(
            created=_parse_created(document["created"], f"{where}.created"),
            name=check_name(document["name"], f"{where}.name"),
            sequence=check_sequence(document["sequence"], f"{where}.sequence"),
            layout=layout,
            images=images,
            blobs=blobs,
            charts=charts,
            files=files,
            on_target=on_target,
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = MANIFEST_FILE) -> BundleManifest:
        """Parse `airgap-bundle.json`; duplicate keys and non-finite numbers are refused."""
        try:
            document = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=no_duplicate_keys,
                parse_constant=_no_constant,
            )
        except UnicodeDecodeError:
            raise UsageError(f"{where} is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where} is not valid JSON ({exc})") from None
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        except RecursionError:
            raise UsageError(f"{where} is not valid JSON (nested too deeply)") from None
        check_unicode(document, where)
        return cls.from_json(document, where)

    def blob_sizes(self) -> dict[str, int]:
        return {b.digest: b.size for b in self.blobs}


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"field {key!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
