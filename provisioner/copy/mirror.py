"""Copying one image and its whole attachment graph from a store to another, digests unchanged.

    report = mirror_image(source, sink, "sha256:...", tags=("v1",))

Bundle create (registry -> OCI layout) and bundle import (layout -> registry) both call this.
What is copied, in the order that keeps anything from becoming visible before it is whole:

1. the image: an index and every manifest under it (kept whole, never platform-filtered), each
   manifest's config and layers (streamed, a blob the sink already has is skipped), manifests
   pushed children first, so a manifest arrives only after everything it references;
2. the attachments of the image and of every manifest under it: cosign's `sha256-<hex>.sig`,
   `.att` and `.sbom` tags (pushed under the same tag), and OCI 1.1 referrers (pushed with
   `push_referrer`, so a sink without the referrers API gets the fallback tag); attachments
   of attachments too (referrers of referrers);
3. the given tags, last.

Manifests are copied as the exact bytes fetched (each checked against its digest by the
source), blobs as the exact bytes streamed (hashed on the way through by the source reader, and
again by a sink that cannot take the reader's check; a layout takes it), so no digest changes.
Each manifest and blob is handled at most once per call. A failure to fetch an attachment
raises by default; `allow_missing=True` records it in the report instead, kept apart from "this
image has no attachments".
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from offline.errors import AirgapError
from offline.oci.blobstream import CHUNK_SIZE, BlobReader
from offline.oci.digests import COSIGN_SUFFIXES, cosign_tag, validate_digest
from offline.oci.manifest import MANIFEST_MEDIA_TYPES, Descriptor, Manifest
from offline.oci.store import (
    BlobClaimer,
    CheckedBlobPusher,
    ImageSink,
    ImageSource,
    IndexedStore,
    ManifestChecker,
)

AttachmentKind = Literal["cosign-sig", "cosign-att", "cosign-sbom", "referrer"]
ATTACHMENT_KINDS: tuple[AttachmentKind, ...] = (
    "cosign-sig",
    "cosign-att",
    "cosign-sbom",
    "referrer",
)
_COSIGN_KINDS: dict[str, AttachmentKind] = {
    "sig": "cosign-sig",
    "att": "cosign-att",
    "sbom": "cosign-sbom",
}

# progress(event, digest, amount), events:
#   "blob"     a blob starts to be copied (amount: its size)
#   "bytes"    bytes of that blob went through (amount: how many)
#   "present"  a blob or manifest the sink already had (amount: its size)
#   "manifest" a manifest was pushed (amount: its size)
Progress = Callable[[str, str, int], None]
# Blobs of one manifest copied at once (config and layers; manifests stay in order).
BLOB_JOBS = 4


class MirrorError(AirgapError):
    """Copying an image failed: one line naming the image and what could not be copied."""


class _SourceFailure(AirgapError):
    """The source could not deliver a manifest or blob (missing, corrupted, unreachable)."""


@dataclass(frozen=True)
class AttachmentRecord:
    """One attachment copied (or found present): what it is, what it is attached to."""

    kind: AttachmentKind
    subject: str
    digest: str
    artifact_type: str | None = None
    tag: str | None = None  # cosign's tag, for the cosign kinds

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"kind": self.kind, "subject": self.subject, "digest": self.digest}
        if self.artifact_type is not None:
            value["artifactType"] = self.artifact_type
        if self.tag is not None:
            value["tag"] = self.tag
        return value


@dataclass
class MirrorReport:
    """What one `mirror_image` call did. `manifests` and `blobs` map each digest of the graph
    (image and attachments) to "copied" or "present" (the sink had it already)."""

    digest: str
    source: str
    target: str
    manifests: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, str] = field(default_factory=dict)
    bytes_copied: int = 0
    attachments: list[AttachmentRecord] = field(default_factory=list)
    # Manifests whose attachments were listed without error and found to be none.
    no_attachments: list[str] = field(default_factory=list)
    # Attachments (or listings) that could not be fetched: never the same as "none exist".
    fetch_failures: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def manifests_copied(self) -> list[str]:
        return [d for d, state in self.manifests.items() if state == "copied"]

    @property
    def manifests_present(self) -> list[str]:
        return [d for d, state in self.manifests.items() if state == "present"]

    @property
    def blobs_copied(self) -> list[str]:
        return [d for d, state in self.blobs.items() if state == "copied"]

    @property
    def blobs_present(self) -> list[str]:
        return [d for d, state in self.blobs.items() if state == "present"]

    @property
    def copied_nothing(self) -> bool:
        return not self.manifests_copied and not self.blobs_copied

    def attachment_counts(self) -> dict[str, int]:
        """How many attachments of each kind were found, every kind listed (0 included)."""
        counts: dict[str, int] = dict.fromkeys(ATTACHMENT_KINDS, 0)
        for record in self.attachments:
            counts[record.kind] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "source": self.source,
            "target": self.target,
            "manifests": dict(self.manifests),
            "blobs": dict(self.blobs),
            "bytes_copied": self.bytes_copied,
            "attachments": [a.to_json() for a in self.attachments],
            "attachment_counts": self.attachment_counts(),
            "no_attachments": list(self.no_attachments),
            "fetch_failures": list(self.fetch_failures),
            "tags": list(self.tags),
        }


def mirror_image(
    source: ImageSource,
    sink: ImageSink,
    digest: str,
    *,
    tags: Iterable[str] = (),
    progress: Progress | None = None,
    allow_missing: bool = False,
    jobs: int = BLOB_JOBS,
) -> MirrorReport:
    """Copy the image `digest` with everything attached to it from `source` to `sink`, then
    point `tags` at it. Raises MirrorError (one line) when the image or, unless
    `allow_missing`, one of its attachments cannot be fetched; nothing is tagged then.
    The blobs of one manifest are copied `jobs` at a time (a registry answers each upload
    only after writing it: copying one at a time leaves the link idle)."""
    validate_digest(digest, "image digest")
    return _Mirror(source, sink, digest, progress, allow_missing, jobs).run(tuple(tags))


class _Mirror:
    def __init__(
        self,
        source: ImageSource,
        sink: ImageSink,
        digest: str,
        progress: Progress | None,
        allow_missing: bool,
        jobs: int = BLOB_JOBS,
    ) -> None:
        self.source = source
        self.sink = sink
        self.digest = digest
        self.progress = progress
        self.allow_missing = allow_missing
        self.jobs = max(1, jobs)
        # Guards the report while blobs are copied concurrently.
        self._lock = threading.Lock()
        target = getattr(sink, "location", None)
        self.report = MirrorReport(
            digest=digest,
            source=source.location,
            target=target if isinstance(target, str) else type(sink).__name__,
        )
        self._manifests: dict[str, Manifest] = {}
        self._sink_referrers: dict[str, set[str]] = {}
        self._discovered: set[str] = set()

    @property
    def image(self) -> str:
        return f"{self.source.location}@{self.digest}"

    # ------------------------------------------------------------------------------- phases
    def run(self, tags: tuple[str, ...]) -> MirrorReport:
        try:
            root = self._fetch(self.digest)
            subjects = self._copy_contents(root)
            self._push_root(root)
        except _SourceFailure as exc:
            raise MirrorError(
                f"copying {self.image}: {exc}; nothing was tagged in {self.report.target}"
            ) from exc
        pending = [self.digest, *subjects]
        while pending:
            subject = pending.pop(0)
            if subject in self._discovered:
                continue
            self._discovered.add(subject)
            pending.extend(self._copy_attachments(subject))
        for tag in tags:
            self._push_tag(root, tag)
        return self.report

    def _copy_contents(self, manifest: Manifest) -> list[str]:
        """Everything `manifest` references, into the sink, children first (the manifest itself
        is left to the caller). The digests of the manifests under it, in the order copied."""
        under: list[str] = []
        blobs: dict[str, Descriptor] = {}
        for child in manifest.children():
            if manifest.is_index and child.media_type in MANIFEST_MEDIA_TYPES:
                if child.digest in self.report.manifests:
                    continue
                sub = self._fetch(child.digest)
                under.extend(self._copy_contents(sub))
                self._push_manifest(sub, None)
                under.append(child.digest)
            else:
                blobs.setdefault(child.digest, child)
        self._copy_blobs(list(blobs.values()))
        return under

    def _copy_blobs(self, descriptors: list[Descriptor]) -> None:
        """Each blob once; several at a time when there are several. Every copy is waited
        for, and the first failure is raised after the others ended."""
        if self.jobs == 1 or len(descriptors) < 2:
            for descriptor in descriptors:
                self._copy_blob(descriptor)
            return
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(descriptors))) as pool:
            futures = [pool.submit(self._copy_blob, d) for d in descriptors]
        for future in futures:
            future.result()

    def _push_root(self, root: Manifest) -> None:
        if root.digest in self.report.manifests:
            return
        # A layout lists the image in index.json (untagged), so it is found and kept.
        listed = not isinstance(self.sink, IndexedStore) or any(
            e.digest == root.digest for e in self.sink.entries()
        )
        if listed and self._manifest_present(root.digest):
            self._mark_present("manifests", root.digest, root.descriptor.size)
            return
        self.sink.push_manifest(root.raw, root.media_type, root.digest)
        self._mark_copied_manifest(root)

    def _push_tag(self, root: Manifest, tag: str) -> None:
        if self._tag_points_to(tag, root.digest):
            self.report.tags.append(tag)
            return
        self.sink.push_manifest(root.raw, root.media_type, tag)
        self.report.tags.append(tag)

    # ---------------------------------------------------------------------------- attachments
    def _copy_attachments(self, subject: str) -> list[str]:
        """Copy the attachments of `subject`; the manifests copied, to look for theirs."""
        found_any = False
        failed = False
        next_subjects: list[str] = []
        try:
            cosign = self.source.cosign_attachments(subject)
        except AirgapError as exc:
            self._fetch_failed(f"cosign tags of {subject}", exc)
            failed, cosign = True, {}
        for suffix in COSIGN_SUFFIXES:
            if suffix not in cosign:
                continue
            found_any = True
            descriptor = cosign[suffix]
            tag = cosign_tag(subject, suffix)
            record = AttachmentRecord(_COSIGN_KINDS[suffix], subject, descriptor.digest, tag=tag)
            what = f"cosign .{suffix} attachment {descriptor.digest} of {subject}"
            copied = self._copy_attachment(descriptor, what, tag=tag)
            if copied is None:
                failed = True
                continue
            self.report.attachments.append(record)
            next_subjects.extend(copied)
        try:
            referrers = self.source.referrers(subject).descriptors
        except AirgapError as exc:
            self._fetch_failed(f"referrers of {subject}", exc)
            failed, referrers = True, ()
        for descriptor in referrers:
            found_any = True
            what = f"referrer {descriptor.digest} of {subject}"
            copied = self._copy_attachment(descriptor, what, subject=subject)
            if copied is None:
                failed = True
                continue
            self.report.attachments.append(
                AttachmentRecord("referrer", subject, descriptor.digest, descriptor.artifact_type)
            )
            next_subjects.extend(copied)
        if not found_any and not failed:
            self.report.no_attachments.append(subject)
        return next_subjects

    def _copy_attachment(
        self,
        descriptor: Descriptor,
        what: str,
        *,
        tag: str | None = None,
        subject: str | None = None,
    ) -> list[str] | None:
        """Copy one attachment's graph, then push its top manifest under `tag` or as a referrer
        of `subject`; the digests of its manifests, or None when the source could not deliver
        it (and allow_missing)."""
        try:
            manifest = self._fetch(descriptor.digest)
            if subject is not None:
                declared = manifest.subject()
                if declared is None or declared.digest != subject:
                    raise _SourceFailure(
                        f"{self.source.location}: manifest {descriptor.digest} is listed as a "
                        f"referrer of {subject} but its subject is "
                        f"{declared.digest if declared else 'missing'}"
                    )
            under = self._copy_contents(manifest)
        except _SourceFailure as exc:
            self._fetch_failed(what, exc)
            return None
        if tag is not None:
            self._tag(manifest, tag)
        elif subject is not None:
            self._refer(manifest, subject)
        return [manifest.digest, *under]

    def _tag(self, manifest: Manifest, tag: str) -> None:
        if self._tag_points_to(tag, manifest.digest):
            self._mark_present("manifests", manifest.digest, manifest.descriptor.size)
            return
        self.sink.push_manifest(manifest.raw, manifest.media_type, tag)
        self._mark_copied_manifest(manifest)

    def _refer(self, manifest: Manifest, subject: str) -> None:
        listed = self._listed_referrers(subject)
        if manifest.digest in listed and self._manifest_present(manifest.digest):
            self._mark_present("manifests", manifest.digest, manifest.descriptor.size)
            return
        self.sink.push_referrer(manifest.raw, manifest.media_type)
        listed.add(manifest.digest)
        self._mark_copied_manifest(manifest)

    def _fetch_failed(self, what: str, exc: AirgapError) -> None:
        message = f"{self.image}: could not fetch {what}: {exc}"
        if not self.allow_missing:
            raise MirrorError(message + " (allow missing attachments to carry on without it)")
        self.report.fetch_failures.append(message)

    # ------------------------------------------------------------------------ manifests, blobs
    def _fetch(self, digest: str) -> Manifest:
        manifest = self._manifests.get(digest)
        if manifest is None:
            try:
                manifest = self.source.fetch_manifest(digest)
            except AirgapError as exc:
                raise _SourceFailure(str(exc)) from exc
            self._manifests[digest] = manifest
        return manifest

    def _push_manifest(self, manifest: Manifest, reference: str | None) -> None:
        if manifest.digest in self.report.manifests:
            return
        if self._manifest_present(manifest.digest):
            self._mark_present("manifests", manifest.digest, manifest.descriptor.size)
            return
        self.sink.push_manifest(manifest.raw, manifest.media_type, reference)
        self._mark_copied_manifest(manifest)

    def _copy_blob(self, descriptor: Descriptor) -> None:
        digest = descriptor.digest
        with self._lock:
            if digest in self.report.blobs:
                return
        if isinstance(self.sink, BlobClaimer):
            with self.sink.claim_blob(digest):
                self._copy_absent_blob(descriptor)
        else:
            self._copy_absent_blob(descriptor)

    def _copy_absent_blob(self, descriptor: Descriptor) -> None:
        digest = descriptor.digest
        if self.sink.blob_exists(digest):
            self._mark_present("blobs", digest, descriptor.size)
            return
        if self.progress is not None:
            self.progress("blob", digest, descriptor.size)
        try:
            reader = self.source.open_blob(digest, descriptor.size)
        except AirgapError as exc:
            raise _SourceFailure(str(exc)) from exc
        with reader:
            stream = _SourceStream(reader, self.progress)
            try:
                if isinstance(self.sink, CheckedBlobPusher):
                    # Unbuffered, hashed once: as the source reader checks them.
                    self.sink.push_checked_blob(stream, digest, descriptor.size)
                else:
                    buffered = io.BufferedReader(stream, CHUNK_SIZE)
                    self.sink.push_blob(buffered, digest, descriptor.size)
            except AirgapError as exc:
                if stream.failure is not None:
                    raise _SourceFailure(str(stream.failure)) from exc
                raise
        with self._lock:
            self.report.blobs[digest] = "copied"
            self.report.bytes_copied += descriptor.size

    # ------------------------------------------------------------------------------ the sink
    def _manifest_present(self, digest: str) -> bool:
        if isinstance(self.sink, ManifestChecker):
            return self.sink.manifest_exists(digest)
        return False

    def _tag_points_to(self, tag: str, digest: str) -> bool:
        if not isinstance(self.sink, ImageSource):
            return False
        current = self.sink.resolve_optional(tag)
        return current is not None and current.digest == digest

    def _listed_referrers(self, subject: str) -> set[str]:
        listed = self._sink_referrers.get(subject)
        if listed is None:
            listed = set()
            if isinstance(self.sink, ImageSource):
                listed = {d.digest for d in self.sink.referrers(subject).descriptors}
            self._sink_referrers[subject] = listed
        return listed

    def _mark_present(self, what: Literal["manifests", "blobs"], digest: str, size: int) -> None:
        with self._lock:
            getattr(self.report, what).setdefault(digest, "present")
        if self.progress is not None:
            self.progress("present", digest, size)

    def _mark_copied_manifest(self, manifest: Manifest) -> None:
        self.report.manifests[manifest.digest] = "copied"
        self.report.bytes_copied += manifest.descriptor.size
        if self.progress is not None:
            self.progress("manifest", manifest.digest, manifest.descriptor.size)


class _SourceStream(io.RawIOBase):
    """A source blob as a file object for the sink, remembering a failure of the source (so a
    corrupt or truncated source is told apart from a sink that refused). Reads pass the
    reader's bytes through unchanged (short reads, as a socket gives them), so it is a
    CheckedStream: a sink that stores what it reads need not hash the bytes again. Seekable
    when the source is (a file): a sink can then stream it and read a part again to resume."""

    def __init__(self, reader: BlobReader, progress: Progress | None) -> None:
        super().__init__()
        self._reader = reader
        self._progress = progress
        self.failure: AirgapError | None = None
        self.digest = reader.digest
        self.size = reader.size

    @property
    def verified(self) -> bool:
        return self._reader.verified

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._reader.seekable()

    def tell(self) -> int:
        return self._reader.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._reader.seek(offset, whence)
        except AirgapError as exc:
            self.failure = exc
            raise

    def read(self, size: int | None = -1, /) -> bytes:
        try:
            data = self._reader.read(-1 if size is None else size)
        except AirgapError as exc:
            self.failure = exc
            raise
        if data and self._progress is not None:
            self._progress("bytes", self._reader.digest, len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        try:
            count = self._reader.readinto(buffer)
        except AirgapError as exc:
            self.failure = exc
            raise
        if count and self._progress is not None:
            self._progress("bytes", self._reader.digest, count)
        return count
