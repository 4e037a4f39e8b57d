"""OCI image layout directories (image-spec image-layout.md): `oci-layout`, `index.json`,
`blobs/sha256/<hex>`. Read as an `ImageSource`, written as an `ImageSink`.

Reading is lenient, because tools disagree on what they write:
- `org.opencontainers.image.ref.name` may be a tag (oras, regclient), a full reference (Zarf,
  crane --annotate-ref) or a path with a tag (Hauler); a name is matched exactly first, then as
  a canonical image reference, then by its tag.
- referrers may be listed in index.json (oras-go: untagged entries; PR #1171: the
  `org.opencontainers.image.referrer.subject` annotation), kept under the fallback tag
  `sha256-<hex>` (regclient), or only present as blobs (cosign save); all are found.
- blobs may be missing (the spec allows it: a delta layout); that is NotFound, not corruption.

Writing is crash-safe: a blob is written to a temporary file, checked against its digest and
renamed into place; index.json is replaced atomically under a lock on the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import AirgapError, UsageError
from offline.inputs import open_regular
from offline.oci.blobstream import CHUNK_SIZE, BlobReader, CheckedStream
from offline.oci.digests import (
    DigestMismatch,
    fallback_tag,
    is_digest,
    sha256_digest,
    validate_digest,
)
from offline.oci.imageref import parse_image_ref
from offline.oci.manifest import (
    ANNOTATION_REF_NAME,
    ANNOTATION_REFERRER_SUBJECT,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    Manifest,
    NotFound,
    Referrers,
    check_manifest,
    complete_referrers,
    cosign_attachments_by_tag,
    parse_manifest_json,
    referrer_descriptor,
)
from offline.oci.referrers import fallback_descriptors, filter_artifact_type, with_referrer

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
# Fallback-tag indexes and cosign's tags (`sha256-<hex>[.sig|.att|.sbom]`), possibly after a
# repository name: attachments, not images.
_ATTACHMENT_TAG = re.compile(r"(^|:)sha256-[0-9a-f]{64}(\.[a-z]+)?$")
# Blobs larger than this are not manifests; the referrer scan does not open them.
_SCAN_LIMIT = 4 * 1024 * 1024
# oci-layout is {"imageLayoutVersion":"1.0.0"}; index.json lists the layout's images.
_SMALL_FILE_LIMIT = 64 * 1024
MAX_INDEX_SIZE = 64 * 1024 * 1024


class OCILayout:
    """One image layout directory; opening checks that it is one. A `Store`
    (offline.oci.store) that is also an `IndexedStore`."""

    def __init__(self, path: str | Path, *, scan_blobs: bool = True) -> None:
        self.path = Path(path)
        self.scan_blobs = scan_blobs
        layout_file = self.path / LAYOUT_FILE
        try:
            with open_regular(layout_file) as f:
                header = json.loads(f.read(_SMALL_FILE_LIMIT))
        except FileNotFoundError:
            raise UsageError(
                f"{self.path} is not an OCI image layout (no {LAYOUT_FILE} file)"
            ) from None
        except NotADirectoryError:
            raise UsageError(f"{self.path} is not a directory") from None
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
            raise UsageError(f"{layout_file} is not valid JSON") from None
        version = header.get("imageLayoutVersion") if isinstance(header, dict) else None
        if version != LAYOUT_VERSION:
            raise UsageError(
                f"{layout_file}: unsupported imageLayoutVersion {version!r}, "
                f"expected {LAYOUT_VERSION!r}"
            )
        if not (self.path / INDEX_FILE).is_file():
            raise UsageError(f"{self.path} is not an OCI image layout (no {INDEX_FILE})")
        self._parsed_entries: tuple[bytes, tuple[Descriptor, ...]] | None = None
        self._subjects: dict[str, dict[str, Descriptor]] | None = None
        self._subjects_stamp: tuple[int, int] | None = None

    @classmethod
    def create(cls, path: str | Path, *, scan_blobs: bool = True) -> OCILayout:
        """An empty layout at `path` (made if missing), or the layout already there."""
        path = Path(path)
        if (path / LAYOUT_FILE).exists():
            return cls(path, scan_blobs=scan_blobs)
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        atomic_write(
            path / INDEX_FILE, _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        )
        # oci-layout last: a directory with it is a complete layout.
        atomic_write(path / LAYOUT_FILE, _dumps({"imageLayoutVersion": LAYOUT_VERSION}))
        return cls(path, scan_blobs=scan_blobs)

    @property
    def location(self) -> str:
        return f"oci:{self.path}"

    def _blob_path(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / validate_digest(digest).split(":", 1)[1]

    # ------------------------------------------------------------------------ index.json
    def _read_index_bytes(self) -> bytes:
        index_path = self.path / INDEX_FILE
        try:
            with open_regular(index_path) as f:
                raw = f.read(MAX_INDEX_SIZE + 1)
        except FileNotFoundError:
            raise UsageError(f"{self.path} is not an OCI image layout (no {INDEX_FILE})") from None
        if len(raw) > MAX_INDEX_SIZE:
            raise UsageError(f"{index_path} is larger than {MAX_INDEX_SIZE} bytes")
        return raw

    def _parse_index(self, raw: bytes) -> dict[str, Any]:
        index_path = self.path / INDEX_FILE
        document = parse_manifest_json(raw, str(index_path))
        if not isinstance(document.get("manifests", []), list):
            raise UsageError(f"{index_path}: manifests is not a list")
        return document

    def _read_index(self) -> dict[str, Any]:
        return self._parse_index(self._read_index_bytes())

    def entries(self) -> list[Descriptor]:
        """The descriptors listed in index.json. The file is read every time, but parsed only
        when its bytes differ from the last parse: an import looks an image up hundreds of
        times in an index that does not change."""
        raw = self._read_index_bytes()
        parsed = self._parsed_entries
        if parsed is None or parsed[0] != raw:
            where = f"{self.path / INDEX_FILE}"
            listed = self._parse_index(raw).get("manifests", [])
            parsed = (raw, tuple(Descriptor.from_json(d, where) for d in listed))
            self._parsed_entries = parsed  # one assignment: threads see old or new, whole
        return list(parsed[1])

    # ------------------------------------------------------------------------- reading
    def resolve(self, reference: str) -> Descriptor:
        descriptor = self.resolve_optional(reference)
        if descriptor is None:
            raise NotFound(f"{self.location}: no image named {reference!r}")
        return descriptor

    def resolve_default(self) -> Descriptor:
        """The one image of a layout that holds one (`oci:DIR` without a name)."""
        images = [
            e
            for e in self.entries()
            if e.media_type in MANIFEST_MEDIA_TYPES
            and not self._is_referrer_entry(e)
            and not _ATTACHMENT_TAG.search(e.annotations.get(ANNOTATION_REF_NAME, ""))
        ]
        if len({e.digest for e in images}) != 1:
            names = sorted(e.annotations.get(ANNOTATION_REF_NAME, e.digest) for e in images)
            raise UsageError(
                f"{self.location} holds {len(images)} images ({', '.join(names[:5])}"
                f"{', ...' if len(names) > 5 else ''}): name one as oci:DIR:NAME"
            )
        return images[0]

    def _is_referrer_entry(self, entry: Descriptor) -> bool:
        """Whether an index.json entry is a referrer: its annotation says so and the manifest
        it lists has that subject. The annotation alone must not hide an image."""
        subject = entry.annotations.get(ANNOTATION_REFERRER_SUBJECT)
        if subject is None:
            return False
        try:
            actual = self.fetch_manifest(entry.digest).subject()
        except AirgapError:
            return False  # unreadable: counted as an image, so the choice is never silent
        return actual is not None and actual.digest == subject

    def resolve_optional(self, reference: str) -> Descriptor | None:
        entries = self.entries()
        if is_digest(reference):
            for entry in entries:
                if entry.digest == reference:
                    return entry
            if not self._blob_path(reference).is_file():
                return None
            return self.fetch_manifest(reference).descriptor
        matches = _match_ref_name(entries, reference)
        digests = {m.digest for m in matches}
        if len(digests) > 1:
            names = sorted(m.annotations[ANNOTATION_REF_NAME] for m in matches)
            raise UsageError(
                f"{self.location}: {reference!r} is ambiguous ({', '.join(names)}); "
                "use the full name"
            )
        return matches[0] if matches else None

    def fetch_manifest(self, digest: str) -> Manifest:
        declared = next((e.media_type for e in self.entries() if e.digest == digest), None)
        return self._read_manifest(digest, declared)

    def _read_manifest(self, digest: str, declared: str | None) -> Manifest:
        path = self._blob_path(digest)
        try:
            with open_regular(path, "manifest") as f:
                raw = f.read(MAX_MANIFEST_SIZE + 1)
        except FileNotFoundError:
            raise NotFound(f"{self.location}: manifest {digest} is not in the layout") from None
        if len(raw) > MAX_MANIFEST_SIZE:
            raise UsageError(f"{self.location}: manifest {digest} is larger than a manifest can be")
        return check_manifest(raw, digest, self.location, declared)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        path = self._blob_path(digest)
        try:
            f = open_regular(path, "blob")
        except FileNotFoundError:
            raise NotFound(f"{self.location}: blob {digest} is not in the layout") from None
        actual = os.fstat(f.fileno()).st_size
        if size is not None and actual != size:
            f.close()
            raise DigestMismatch(
                f"{self.location}: blob {digest} has {actual} bytes, the descriptor says {size}"
            )
        return BlobReader(f, digest, size if size is not None else actual, self.location)

    def blob_exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def manifest_exists(self, digest: str) -> bool:
        # Manifests are blobs here; whether index.json lists one is `entries()`.
        return self.blob_exists(digest)

    def list_tags(self) -> list[str]:
        """The ref names in index.json, as written (tags or full references)."""
        return [
            e.annotations[ANNOTATION_REF_NAME]
            for e in self.entries()
            if ANNOTATION_REF_NAME in e.annotations
        ]

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return cosign_attachments_by_tag(self.resolve_optional, digest)

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        validate_digest(digest)
        found = dict(self._subject_map().get(digest, {}))
        # Every fallback-tag index for the digest: a layout of several repositories may hold
        # one per repository (`repo:sha256-<hex>`).
        tag = fallback_tag(digest)
        for entry in self.entries():
            name = entry.annotations.get(ANNOTATION_REF_NAME, "")
            if name != tag and _tag_of(name) != tag:
                continue
            with contextlib.suppress(NotFound):
                for d in fallback_descriptors(self.fetch_manifest(entry.digest), digest):
                    found.setdefault(d.digest, d)
        ordered = complete_referrers(self, sorted(found.values(), key=lambda d: d.digest))
        return Referrers(digest, filter_artifact_type(ordered, artifact_type), "layout")

    def _subject_map(self) -> dict[str, dict[str, Descriptor]]:
        """subject digest -> referrers, from index.json entries and (if scan_blobs) from every
        manifest-shaped blob; rebuilt when index.json changes."""
        stat = (self.path / INDEX_FILE).stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._subjects is not None and self._subjects_stamp == stamp:
            return self._subjects
        subjects: dict[str, dict[str, Descriptor]] = {}
        candidates: dict[str, str | None] = {
            e.digest: e.media_type for e in self.entries() if e.media_type in MANIFEST_MEDIA_TYPES
        }
        if self.scan_blobs:
            for digest in self._manifest_shaped_blobs():
                candidates.setdefault(digest, None)
        for digest, declared in candidates.items():
            try:
                manifest = self._read_manifest(digest, declared)
                subject = manifest.subject()
            except (NotFound, UsageError, DigestMismatch):
                continue  # not a manifest, or not ours to judge here
            if subject is not None:
                subjects.setdefault(subject.digest, {})[digest] = referrer_descriptor(manifest)
        self._subjects, self._subjects_stamp = subjects, stamp
        return subjects

    def _manifest_shaped_blobs(self) -> Iterator[str]:
        """Blobs that could be manifests: small and starting with `{`."""
        directory = self.path / "blobs" / "sha256"
        if not directory.is_dir():
            return
        for entry in os.scandir(directory):
            if len(entry.name) != 64 or not entry.is_file():
                continue
            if entry.stat().st_size > _SCAN_LIMIT:
                continue
            with open_regular(entry.path, "blob") as f:
                if f.read(1) == b"{":
                    yield f"sha256:{entry.name}"

    # ------------------------------------------------------------------------- writing
    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        """Write a blob unless present: to a temporary file, checked, then renamed."""
        self._write_blob(data, digest, size, None)

    def push_checked_blob(self, data: CheckedStream, digest: str, size: int) -> None:
        """`push_blob` of a stream that checks itself against `digest` and `size` as it is
        read: the bytes are hashed once, by it, and kept only once it says they verified."""
        checked = data if (data.digest, data.size) == (digest, size) else None
        self._write_blob(data, digest, size, checked)

    def _write_blob(
        self,
        data: bytes | IO[bytes] | CheckedStream,
        digest: str,
        size: int,
        checked: CheckedStream | None,
    ) -> None:
        target = self._blob_path(digest)
        if target.is_file() and target.stat().st_size == size:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # only a layout that is written needs it (and shutil, which it loads)

        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".partial")
        try:
            hasher = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(data):
                    written += len(chunk)
                    if written > size:
                        raise DigestMismatch(
                            f"{self.location}: blob {digest} source is longer than {size}"
                        )
                    if checked is None:
                        hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if checked is not None:
                actual = digest if checked.verified else "(not verified by its stream)"
            else:
                actual = f"sha256:{hasher.hexdigest()}"
            if written != size or actual != digest:
                raise DigestMismatch(
                    f"{self.location}: blob {digest} source has {written} bytes and digest "
                    f"{actual}, expected {size} bytes"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        """Write a manifest blob. With a ref name, list it in index.json under that name
        (replacing the entry that had it); with its digest, list it untagged."""
        digest = sha256_digest(raw)
        manifest = check_manifest(raw, digest, self.location, media_type)
        if manifest.media_type != media_type:
            raise UsageError(
                f"manifest {digest} is a {manifest.media_type}, pushed as {media_type!r}"
            )
        self.push_blob(raw, digest, len(raw))
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(raw))
        if reference is not None:
            if is_digest(reference) and reference != digest:
                raise DigestMismatch(
                    f"{self.location}: manifest has digest {digest}, not {reference}"
                )
            self.add_to_index(descriptor, None if is_digest(reference) else reference)
        return descriptor

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        """Write a manifest with a subject, listed in index.json with the PR #1171 subject
        annotation (oras-go and cosign find it there) and in the subject's fallback-tag index
        (regclient finds it there)."""
        digest = sha256_digest(raw)
        manifest = check_manifest(raw, digest, self.location, media_type)
        subject = manifest.subject()
        if subject is None:
            raise UsageError(f"manifest {digest} has no subject: it cannot be a referrer")
        self.push_manifest(raw, media_type)
        listed = referrer_descriptor(manifest)
        entry = Descriptor(
            media_type=listed.media_type,
            digest=listed.digest,
            size=listed.size,
            artifact_type=listed.artifact_type,
            annotations=MappingProxyType({ANNOTATION_REFERRER_SUBJECT: subject.digest}),
        )
        self.add_to_index(entry, None)
        tag = fallback_tag(subject.digest)
        with self._locked():
            current = self.resolve_optional(tag)
            index = self.fetch_manifest(current.digest) if current is not None else None
            # In digest order: images carried at once may add a shared subject's referrers in
            # either order, and a bundle must be the same bytes whatever the order.
            updated = with_referrer(index, listed, in_digest_order=True)
            if updated is not None:
                index_digest = sha256_digest(updated)
                self.push_blob(updated, index_digest, len(updated))
                self._set_entry(Descriptor(OCI_INDEX, index_digest, len(updated)), tag)
        return listed

    def add_to_index(self, descriptor: Descriptor, ref_name: str | None) -> None:
        """List `descriptor` in index.json: under `ref_name` (moving the name if another entry
        had it), or untagged (once)."""
        with self._locked():
            self._set_entry(descriptor, ref_name)

    def sort_index(self) -> None:
        """Put the entries of index.json in one fixed order (untagged first, then by ref name;
        then by digest): entries added concurrently give the same file as one after another."""
        with self._locked():
            document = self._read_index()
            entries: list[Any] = list(document.get("manifests", []))
            ordered = sorted(entries, key=_entry_order)
            if ordered != entries:
                document["manifests"] = ordered
                atomic_write(self.path / INDEX_FILE, _dumps(document))

    def _set_entry(self, descriptor: Descriptor, ref_name: str | None) -> None:
        """index.json update; the caller holds the lock."""
        document = self._read_index()
        entries: list[Any] = list(document.get("manifests", []))
        value = descriptor.to_json()
        if ref_name is not None:
            value["annotations"] = {**value.get("annotations", {}), ANNOTATION_REF_NAME: ref_name}
            entries = [e for e in entries if _ref_name(e) != ref_name]
        elif any(e.get("digest") == descriptor.digest and _ref_name(e) is None for e in entries):
            return
        entries.append(value)
        document["manifests"] = entries
        atomic_write(self.path / INDEX_FILE, _dumps(document))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One index.json writer at a time, across processes (flock on the directory)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _ref_name(entry: object) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("annotations"), dict):
        return None
    name = entry["annotations"].get(ANNOTATION_REF_NAME)
    return name if isinstance(name, str) else None


def _entry_order(entry: object) -> tuple[str, str, str]:
    digest = entry.get("digest") if isinstance(entry, dict) else None
    return (
        _ref_name(entry) or "",
        digest if isinstance(digest, str) else "",
        json.dumps(entry, sort_keys=True),
    )


def _match_ref_name(entries: list[Descriptor], reference: str) -> list[Descriptor]:
    """Entries named `reference`: exactly, else as the same image reference, else by tag."""
    named = [e for e in entries if ANNOTATION_REF_NAME in e.annotations]
    exact = [e for e in named if e.annotations[ANNOTATION_REF_NAME] == reference]
    if exact:
        return exact
    wanted = _canonical(reference)
    if wanted is not None:
        same = [e for e in named if _canonical(e.annotations[ANNOTATION_REF_NAME]) == wanted]
        if same:
            return same
    if "/" in reference or ":" in reference:
        return []
    return [e for e in named if _tag_of(e.annotations[ANNOTATION_REF_NAME]) == reference]


def _canonical(name: str) -> str | None:
    if "/" not in name and ":" not in name:
        return None  # a bare tag, not a reference
    try:
        return str(parse_image_ref(name))
    except UsageError:
        return None


def _tag_of(name: str) -> str | None:
    head, sep, tag = name.rpartition(":")
    return tag if sep and "/" not in tag and head else None


def _chunks(data: bytes | IO[bytes] | CheckedStream) -> Iterator[bytes]:
    if isinstance(data, bytes):
        yield data
        return
    while chunk := data.read(CHUNK_SIZE):
        yield chunk


def _dumps(document: object) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"
