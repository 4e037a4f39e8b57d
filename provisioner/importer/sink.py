"""One target repository as `mirror_image` sees it during an import (`TargetSink`).

It answers existence from what this run learned from the target before asking the target (never
from the journal), defers tag-like writes (cosign tags, referrer listings) to the end so that no
image is tagged before every image is whole, mounts blobs this run already put in another
repository of the same registry (waiting, when another image is uploading one right now, for
that upload to be acknowledged: claims.py), and in a dry run writes nothing but records what
would happen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import IO, Literal, Protocol, cast

from offline.errors import UsageError
from offline.oci.blobstream import BlobReader, CheckedStream
from offline.oci.digests import is_digest, sha256_digest
from offline.oci.manifest import (
    Descriptor,
    Manifest,
    NotFound,
    Referrers,
    check_manifest,
    referrer_descriptor,
)
from offline.oci.referrers import filter_artifact_type
from offline.oci.registry import Repository
from offline.oci.store import (
    AbsentBlobPusher,
    BlobMounter,
    CheckedBlobPusher,
    ImageSource,
    Store,
)
from provisioner.importer.claims import BlobHomes
from provisioner.importer.journal import JournalKind
from provisioner.importer.report import ImportReport, TagMove


class SinkRun(Protocol):
    """What every target sink of one import shares with the run (run.ImportRun)."""

    dry_run: bool
    report: ImportReport
    lock: threading.Lock  # for counters updated by concurrent blob copies
    # A repository of the target known to hold each blob (where to mount it from), and the
    # uploads under way.
    homes: BlobHomes

    def record(self, repository: str, kind: JournalKind, digest: str) -> None: ...


@dataclass
class Deferred:
    """A tag-like write kept for the end: a cosign tag, or a referrer listing."""

    sink: TargetSink
    raw: bytes
    media_type: str
    tag: str | None  # None: a referrer


class TargetSink:
    """One target repository as `mirror_image` sees it.

    Existence answers come from what this run learned from the target (what it answered or
    acknowledged, blobs a delta bundle left out and that were checked, what a dry run would
    have pushed) before the target is asked; never from the journal, which only records what
    the target acknowledges. Tag-like writes (cosign tags,
    referrer listings) are deferred to the tag phase: their manifests are pushed by digest now.
    In a dry run nothing is written: writes are recorded as what would happen.
    """

    def __init__(
        self,
        store: Store,
        reader: ImageSource,
        key: str,
        run: SinkRun,
        blobs: set[str],
        manifests: set[str],
    ) -> None:
        self.store = store
        # Reads of tags and referrers while nothing is tagged (this import defers its tags).
        self.reader = reader
        self.key = key
        self.run = run
        # What this import knows the repository holds (shared by every repository of a
        # layout, whose blobs are).
        self.blobs = blobs
        self.manifests = manifests
        self.seen_tags: dict[str, str | None] = {}
        # Tag-like writes kept for the end, in the order they came (one image at a time per
        # repository: run.py).
        self.deferred: list[Deferred] = []
        self.planned_tags: dict[str, Descriptor] = {}
        self.planned_referrers: dict[str, dict[str, Descriptor]] = {}
        self.moves: list[TagMove] = []

    @property
    def location(self) -> str:
        return self.store.location

    # ------------------------------------------------------------------------ ImageSource
    def resolve(self, reference: str) -> Descriptor:
        descriptor = self.resolve_optional(reference)
        if descriptor is None:
            raise NotFound(f"{self.location}: no {reference}")
        return descriptor

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if reference in self.planned_tags:
            return self.planned_tags[reference]
        descriptor = self.reader.resolve_optional(reference)
        if not is_digest(reference):
            self.seen_tags[reference] = descriptor.digest if descriptor else None
        return descriptor

    def fetch_manifest(self, digest: str) -> Manifest:
        return self.store.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        return self.store.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        return self.store.list_tags()

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        listed = self.reader.referrers(digest, artifact_type)
        planned = self.planned_referrers.get(digest, {})
        if not planned:
            return listed
        known = {d.digest for d in listed.descriptors}
        extra = [d for d in planned.values() if d.digest not in known]
        return Referrers(
            digest, listed.descriptors + filter_artifact_type(extra, artifact_type), listed.via
        )

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return self.reader.cosign_attachments(digest)

    # -------------------------------------------------------------------------- ImageSink
    def blob_exists(self, digest: str) -> bool:
        """Whether the repository holds `digest` (after a mount, perhaps). False: this sink
        holds the claim to upload it (claims.py), until `push_blob` or `give_up`."""
        # What this run learned from the target itself; the journal is never asked here.
        if digest in self.blobs:
            self.run.homes.known(digest, self.key)
            return True
        # None: ours to upload (no other image is uploading it, and none holds it yet).
        home = self.run.homes.claim(digest, self.key)
        if self.store.blob_exists(digest):
            self.have("blob", digest)
            return True
        # Not mounted: uploaded after all, claimed or not (a second upload is only bytes).
        return home is not None and self._mount(digest, home)

    def _mount(self, digest: str, home: str) -> bool:
        """A blob this import already put in another repository of the same registry is
        mounted from there (one request, no bytes) instead of uploaded again: images sharing
        base layers cost their bytes once."""
        if home == self.key or not isinstance(self.store, BlobMounter):
            return False
        if not self.run.dry_run and not self.store.mount_blob(digest, home):
            return False
        with self.run.lock:
            self.run.report.blobs_mounted += 1
        self.have("blob", digest)
        return True

    def give_up(self) -> None:
        """Every claim of this repository ends (its image is done, or failed)."""
        self.run.homes.give_up(self.key)

    def manifest_exists(self, digest: str) -> bool:
        if digest in self.manifests:
            return True
        if self.store.manifest_exists(digest):
            self.have("manifest", digest)
            return True
        return False

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        self._push_blob(data, digest, size, None)

    def push_checked_blob(self, data: CheckedStream, digest: str, size: int) -> None:
        """`push_blob` of a stream that checks itself (the bundle's BlobReader): the target
        store does not hash it again where it can take it so."""
        self._push_blob(cast(IO[bytes], data), digest, size, data)

    def _push_blob(
        self, data: bytes | IO[bytes], digest: str, size: int, checked: CheckedStream | None
    ) -> None:
        self.run.homes.check_stopping()
        store = self.store
        try:
            if self.run.dry_run:  # a dry run does not even read the stream
                pass
            elif checked is not None and isinstance(store, Repository):
                # mirror_image asked blob_exists just before: the answer was no.
                store.push_checked_blob(checked, digest, size, checked_absent=True)
            elif checked is not None and isinstance(store, CheckedBlobPusher):
                store.push_checked_blob(checked, digest, size)
            elif isinstance(store, AbsentBlobPusher):
                store.push_absent_blob(data, digest, size)
            else:
                store.push_blob(data, digest, size)
        except BaseException:
            self.run.homes.give_up(self.key, digest)  # whoever waits for it tries itself
            raise
        self.have("blob", digest)

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        descriptor = self._push_content(raw, media_type)
        if reference is not None and not is_digest(reference):
            # cosign's tag: its manifest is there now, the tag comes with the others.
            self.note_move(reference, descriptor.digest)
            if reference not in self.planned_tags:
                self.planned_tags[reference] = descriptor
                self.deferred.append(Deferred(self, raw, media_type, reference))
        return descriptor

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        manifest = check_manifest(raw, sha256_digest(raw), self.location, media_type)
        subject = manifest.subject()
        if subject is None:
            raise UsageError(f"manifest {manifest.digest} has no subject: it cannot be a referrer")
        self._push_content(raw, media_type)
        listed = referrer_descriptor(manifest)
        planned = self.planned_referrers.setdefault(subject.digest, {})
        if manifest.digest not in planned:
            planned[manifest.digest] = listed
            self.deferred.append(Deferred(self, raw, media_type, None))
        return listed

    def _push_content(self, raw: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(raw)
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(raw))
        if digest in self.manifests:
            return descriptor
        self.run.homes.check_stopping()
        if not self.run.dry_run:
            descriptor = self.store.push_manifest(raw, media_type, None)
        self.have("manifest", digest)
        return descriptor

    def have(self, kind: Literal["blob", "manifest"], digest: str) -> None:
        (self.blobs if kind == "blob" else self.manifests).add(digest)
        if kind == "blob":
            self.run.homes.known(digest, self.key)
        self.run.record(self.key, kind, digest)

    # ------------------------------------------------------------------------------ tags
    def note_move(self, tag: str, digest: str) -> None:
        if tag not in self.seen_tags:
            current = self.reader.resolve_optional(tag)
            self.seen_tags[tag] = current.digest if current else None
        current_digest = self.seen_tags[tag]
        if current_digest is not None and current_digest != digest:
            self.moves.append(TagMove(self.location, tag, current_digest, digest))

    def push_tag(self, manifest: Manifest, tag: str) -> bool:
        """Point `tag` at `manifest` unless it does already; whether it was (would be) pushed."""
        current = self.store.resolve_optional(tag)
        self.seen_tags[tag] = current.digest if current else None
        if current is not None and current.digest == manifest.digest:
            return False
        self.note_move(tag, manifest.digest)
        if not self.run.dry_run:
            self.store.push_manifest(manifest.raw, manifest.media_type, tag)
        return True

    def finish(self, deferred: list[Deferred]) -> None:
        """The repository's cosign tags, then its referrer listings (on a registry, those of
        one subject in one write)."""
        if self.run.dry_run:
            return
        referrers = [(d.raw, d.media_type) for d in deferred if d.tag is None]
        for item in deferred:
            if item.tag is not None:
                self.store.push_manifest(item.raw, item.media_type, item.tag)
        if isinstance(self.store, Repository):
            # Pushed by digest with the image's content: only the listings are left to write.
            self.store.push_referrers(referrers, pushed=True)
        else:
            for raw, media_type in referrers:
                self.store.push_referrer(raw, media_type)
