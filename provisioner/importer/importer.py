"""`airgap bundle import`: a verified bundle into a registry or an OCI layout, digests unchanged.

    report = import_bundle(Path("bundle"), load_public_key("operator.pub"),
                           "registry.internal:5000/mirror", options=RegistryOptions(...))

Where images land. A target `REGISTRY[/PREFIX]` receives each image under its source repository
path with the source registry host dropped: `ghcr.io/sigstore/fulcio:v1.8.8` becomes
`registry.internal:5000/mirror/sigstore/fulcio:v1.8.8` (`docker.io/library/nginx` becomes
`mirror/library/nginx`). A target `oci:DIR` is an image layout (made if missing) with ref names
`REPOSITORY:TAG` exactly like the bundle's own, so it is a complete target without a registry.
The mapping file written at the end records where each image went, for `airgap install`.

The order, so that nothing is contacted before the bundle is proved whole and nothing becomes
visible before it is complete:

1. `verify_bundle_dir`: signature, every blob and file (index.json included), nothing unlisted,
   the graph. A bundle that fails is refused and the target is not contacted. From then on the
   signed manifest is the only authority: images, digests, tags and attachments come from it.
   index.json (signed through its SHA-256) is only used to find cosign tags, and only those the
   manifest lists count; every attachment the manifest lists must be found in the bundle before
   anything is pushed. Then the bundle's sequence is checked against the target's records.
2. A delta bundle (one with `onTarget` blobs) checks that every left-out blob is in each target
   repository that needs it, or mounts it there from another repository of the same registry
   (named in the bundle or found through the catalog under the prefix); one that is missing
   everywhere refuses the import, naming it: import the base bundle first.
3. Each image with `mirror_image`: blobs (streamed; those the target has are never read from
   the bundle), manifests children first, attachment manifests by digest.
4. Then every tag, last: cosign's `.sig/.att/.sbom` tags and the referrers (`push_referrer`,
   which writes the `sha256-<hex>` fallback tag where the registry has no referrers API), then
   the images' own tags. An import that fails before this point leaves no tag of any image.
5. Every attachment is discovered again in the target (cosign tags and referrers, recursively)
   and compared with the manifest; one missing is a VerificationFailure naming it.

Before anything is pushed, the bundle's sequence is checked against the highest of its name
the target imported (import_record.py): an older bundle, or another one with the same
sequence, is refused (`allow_rollback` lets it through); after a verified import the sequence
is recorded. `expected_manifest_sha256` (from a signed parts list) must be the SHA-256 of the
manifest the signature verified: a directory unpacked earlier is checked like any other.

The journal (import_journal.py: JSON lines, fsync'd line by line, default in the user state
directory keyed by target and manifest, never in the bundle) records each blob and manifest
the target acknowledged, per repository. It is never a reason to skip anything: every blob and
manifest is asked of the target, so a rerun after a kill ends exactly like a clean import, and a
journal that lies (or a registry garbage-collected since) costs nothing but an upload. It says
which images a rerun resumes, and is removed after a successful import.

`dry_run=True` contacts the target read-only (HEAD and GET) and reports, per image, what exists
and what would be pushed, the bytes to push, and every tag that exists and would move to
another digest; it writes nothing, not even the journal.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.oci.blobstream import BlobReader
from offline.oci.digests import fallback_tag, is_digest, sha256_digest
from offline.oci.imageref import ImageRef, parse_image_ref
from offline.oci.layout import OCILayout
from offline.oci.manifest import (
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    Manifest,
    NotFound,
    Referrers,
    check_manifest,
    cosign_attachments_by_tag,
    referrer_descriptor,
)
from offline.oci.referrers import filter_artifact_type
from offline.oci.registry import Registry
from offline.oci.sources import RegistryOptions, Sources
from offline.oci.store import (
    AbsentBlobPusher,
    BlobMounter,
    ImageSource,
    ReferrersProber,
    Store,
)
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.detached import ManifestTrust
from provisioner.bundle.manifest import MANIFEST_FILE, OCI_DIR, BundleManifest, ImageEntry
from provisioner.copy.inventory import Target, parse_target
from provisioner.copy.layout import RepositoryView
from provisioner.copy.mirror import ATTACHMENT_KINDS, Progress, mirror_image
from provisioner.importer.journal import (
    ImportJournal,
    JournalKind,
    default_journal_path,
    default_mapping_path,
    target_key,
)
from provisioner.importer.record import RECORD_REPOSITORY, ImportRecords, RollbackRefused
from provisioner.importer.report import (
    ImageImport,
    ImportReport,
    TagMove,
    write_mapping,
)

# How many repositories of the catalog are asked for a blob a delta bundle left out.
_MOUNT_SEARCH_LIMIT = 200


class ImportFailed(AirgapError):
    """The import stopped: one line naming the image and the cause; rerun to resume."""

    exit_code = 1


# ------------------------------------------------------------------------- stores and views
class _SignedSource:
    """One image of the bundle as the signed manifest describes it, read from the bundle's
    layout: only its graph's manifests, only blobs the bundle carries, referrers from the
    graph, and cosign tags of index.json only when the manifest lists what they name."""

    def __init__(self, view: RepositoryView, entry: ImageEntry, carried: Mapping[str, int]):
        self.view = view
        self.entry = entry
        self.nodes = {node.digest: node for node in entry.graph}
        self.carried = carried

    @property
    def location(self) -> str:
        return self.view.location

    def resolve(self, reference: str) -> Descriptor:
        descriptor = self.resolve_optional(reference)
        if descriptor is None:
            raise NotFound(f"{self.location}: {reference} is not in the signed bundle manifest")
        return descriptor

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if not is_digest(reference) or reference not in self.nodes:
            return None
        return self.fetch_manifest(reference).descriptor

    def fetch_manifest(self, digest: str) -> Manifest:
        if digest not in self.nodes:
            raise NotFound(f"{self.location}: manifest {digest} is not in the signed manifest")
        return self.view.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        if digest not in self.carried:
            raise NotFound(
                f"{self.location}: blob {digest} is not carried by this bundle (a delta bundle "
                "leaves out what the target holds)"
            )
        return self.view.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        return self.view.list_tags()

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        found = []
        for candidate in self.entry.attachments.get("referrer", ()):
            node = self.nodes.get(candidate)
            if node is None or digest not in node.references:
                continue
            manifest = self.fetch_manifest(candidate)
            subject = manifest.subject()
            if subject is not None and subject.digest == digest:
                found.append(referrer_descriptor(manifest))
        found.sort(key=lambda d: d.digest)
        return Referrers(digest, filter_artifact_type(found, artifact_type), "layout")

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        if digest not in self.nodes:
            return {}
        return {
            suffix: descriptor
            for suffix, descriptor in self.view.cosign_attachments(digest).items()
            if descriptor.digest in self.entry.attachments.get(f"cosign-{suffix}", ())
        }


class _EmptyStore:
    """A layout target that does not exist yet, for a dry run (which must not create it)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def resolve(self, reference: str) -> Descriptor:
        raise NotFound(f"{self.location}: no {reference}")

    def resolve_optional(self, reference: str) -> Descriptor | None:
        return None

    def fetch_manifest(self, digest: str) -> Manifest:
        raise NotFound(f"{self.location}: no manifest {digest}")

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        raise NotFound(f"{self.location}: no blob {digest}")

    def list_tags(self) -> list[str]:
        return []

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        return Referrers(digest, (), "layout")

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return {}

    def blob_exists(self, digest: str) -> bool:
        return False

    def manifest_exists(self, digest: str) -> bool:
        return False

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        raise AssertionError("a dry run writes nothing")

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        raise AssertionError("a dry run writes nothing")

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        raise AssertionError("a dry run writes nothing")


class _TagListed:
    """Reads of a registry repository that consult its tag list first (one request), so the
    many tags an import asks about that do not exist (cosign's, the referrers fallback tags on
    a registry without the referrers API) cost no request each. The list is read once: only
    for a phase in which this import writes no tag."""

    def __init__(self, store: Store, referrers_api: bool | None) -> None:
        self.store = store
        self.referrers_api = referrers_api
        self._tags: set[str] | None = None

    @property
    def location(self) -> str:
        return self.store.location

    def tags(self) -> set[str]:
        if self._tags is None:
            try:
                self._tags = set(self.store.list_tags())
            except NotFound:
                self._tags = set()  # no such repository yet
        return self._tags

    def resolve(self, reference: str) -> Descriptor:
        return self.store.resolve(reference)

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if not is_digest(reference) and reference not in self.tags():
            return None
        return self.store.resolve_optional(reference)

    def fetch_manifest(self, digest: str) -> Manifest:
        return self.store.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        return self.store.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        return sorted(self.tags())

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        if self.referrers_api is False and fallback_tag(digest) not in self.tags():
            return Referrers(digest, (), "fallback-tag")
        return self.store.referrers(digest, artifact_type)

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return cosign_attachments_by_tag(self.resolve_optional, digest)


@dataclass
class _Deferred:
    """A tag-like write kept for the end: a cosign tag, or a referrer listing."""

    sink: _TargetSink
    raw: bytes
    media_type: str
    tag: str | None  # None: a referrer


class _TargetSink:
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
        run: _Import,
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
        # What this run learned from the target itself; the journal is never asked here.
        if digest in self.blobs:
            self.run.blob_homes.setdefault(digest, self.key)
            return True
        if self.store.blob_exists(digest):
            self.have("blob", digest)
            return True
        return self._mount(digest)

    def _mount(self, digest: str) -> bool:
        """A blob this import already put in another repository of the same registry is
        mounted from there (one request, no bytes) instead of uploaded again: images sharing
        base layers cost their bytes once."""
        home = self.run.blob_homes.get(digest)
        if home is None or home == self.key or not isinstance(self.store, BlobMounter):
            return False
        if not self.run.dry_run and not self.store.mount_blob(digest, home):
            return False
        with self.run.lock:
            self.run.report.blobs_mounted += 1
        self.have("blob", digest)
        return True

    def manifest_exists(self, digest: str) -> bool:
        if digest in self.manifests:
            return True
        if self.store.manifest_exists(digest):
            self.have("manifest", digest)
            return True
        return False

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        if not self.run.dry_run:  # a dry run does not even read the stream
            if isinstance(self.store, AbsentBlobPusher):
                # mirror_image asked blob_exists just before: the answer was no.
                self.store.push_absent_blob(data, digest, size)
            else:
                self.store.push_blob(data, digest, size)
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
                self.run.deferred.append(_Deferred(self, raw, media_type, reference))
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
            self.run.deferred.append(_Deferred(self, raw, media_type, None))
        return listed

    def _push_content(self, raw: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(raw)
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(raw))
        if digest in self.manifests:
            return descriptor
        if not self.run.dry_run:
            descriptor = self.store.push_manifest(raw, media_type, None)
        self.have("manifest", digest)
        return descriptor

    def have(self, kind: Literal["blob", "manifest"], digest: str) -> None:
        (self.blobs if kind == "blob" else self.manifests).add(digest)
        if kind == "blob":
            self.run.blob_homes.setdefault(digest, self.key)
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

    def finish(self, deferred: _Deferred) -> None:
        if self.run.dry_run:
            return
        if deferred.tag is not None:
            self.store.push_manifest(deferred.raw, deferred.media_type, deferred.tag)
        else:
            self.store.push_referrer(deferred.raw, deferred.media_type)


# ----------------------------------------------------------------------------- discovery
def discover_attachments(source: ImageSource, digest: str) -> dict[str, set[str]]:
    """Every attachment of the image `digest` in `source`, by kind (`cosign-sig`, `cosign-att`,
    `cosign-sbom`, `referrer`): those of the image and of every manifest under it, and of every
    attachment and what is under it (referrers of referrers), as mirror_image copies them."""
    found: dict[str, set[str]] = {kind: set() for kind in ATTACHMENT_KINDS}
    seen: set[str] = set()
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        manifest = source.fetch_manifest(current)
        if manifest.is_index:
            pending.extend(
                c.digest for c in manifest.children() if c.media_type in MANIFEST_MEDIA_TYPES
            )
        for suffix, descriptor in source.cosign_attachments(current).items():
            found[f"cosign-{suffix}"].add(descriptor.digest)
            pending.append(descriptor.digest)
        for descriptor in source.referrers(current).descriptors:
            found["referrer"].add(descriptor.digest)
            pending.append(descriptor.digest)
    return found


def _missing_attachments(entry: ImageEntry, found: Mapping[str, set[str]]) -> list[str]:
    return [
        f"{kind} attachment {digest}"
        for kind, digests in sorted(entry.attachments.items())
        for digest in digests
        if digest not in found.get(kind, set())
    ]


# --------------------------------------------------------------------------------- import
@dataclass
class _Planned:
    entry: ImageEntry
    ref: ImageRef
    tag: str | None
    source: _SignedSource
    repository: str  # target repository name (registry), or the source name (layout)


def import_bundle(
    bundle_dir: str | Path,
    public_key: ManifestTrust,
    target: str | Target,
    *,
    options: RegistryOptions | None = None,
    dry_run: bool = False,
    journal_path: str | Path | None = None,
    mapping_path: str | Path | None = None,
    progress: Progress | None = None,
    allow_rollback: bool = False,
    expected_manifest_sha256: str | None = None,
) -> ImportReport:
    """Verify the bundle at `bundle_dir` with `public_key`, then import it into `target`
    (`REGISTRY[/PREFIX]` or `oci:DIR`). Raises VerificationFailure for a bundle that does not
    verify (nothing contacted) or attachments that did not arrive, UsageError for a delta
    bundle whose base is not on the target (nothing pushed), ImportFailed (one line) when a
    push fails (rerun to resume; no image was tagged), RollbackRefused (exit 1) for a bundle
    older than the newest of its name the target imported, unless `allow_rollback`."""
    bundle = Path(bundle_dir)
    destination = parse_target(target) if isinstance(target, str) else target
    check = verify_bundle_dir(bundle, public_key)
    check.raise_for_failure()
    assert check.manifest is not None and check.manifest_sha256 is not None
    manifest, manifest_sha256 = check.manifest, check.manifest_sha256
    if expected_manifest_sha256 is not None and manifest_sha256 != expected_manifest_sha256:
        raise VerificationFailure(
            f"bundle {bundle} is not the bundle its parts list names (its {MANIFEST_FILE} has "
            f"SHA-256 {manifest_sha256[:12]}…, the signed parts list "
            f"{expected_manifest_sha256[:12]}…): remove it, and it is unpacked again"
        )
    for given, what in ((journal_path, "journal"), (mapping_path, "mapping")):
        # Written into the bundle, it would be an unsigned file there: the next check refuses it.
        if given is not None and Path(given).resolve().is_relative_to(bundle.resolve()):
            raise UsageError(f"the import {what} {given} is inside the bundle: put it elsewhere")
    layout = OCILayout(bundle / OCI_DIR, scan_blobs=False)
    plans = _plan(manifest, layout, destination)
    report = ImportReport(
        bundle=bundle,
        target=str(destination),
        dry_run=dry_run,
        name=manifest.name,
        sequence=manifest.sequence,
    )
    journal: ImportJournal | None = None
    if not dry_run:
        path = (
            Path(journal_path)
            if journal_path
            else default_journal_path(destination, manifest_sha256)
        )
        journal = ImportJournal(path, target_key(destination), manifest_sha256).open()
        report.journal = path
        report.journal_records = journal.loaded
    try:
        with Sources(options) as sources:
            registry = sources.registry(destination.registry) if destination.registry else None
            records = ImportRecords(destination, registry)
            # Before anything is pushed; a dry run says so too.
            records.check(manifest, manifest_sha256, allow_rollback)
            run = _Import(destination, manifest, plans, sources, report, journal, progress)
            run.run()
            if not dry_run:
                if destination.layout is not None:
                    # A bundle of files alone still makes the layout: it holds the record.
                    OCILayout.create(destination.layout, scan_blobs=False)
                # Whole and verified: the target now holds this bundle's sequence.
                records.remember(manifest, manifest_sha256)
    except AirgapError:
        if journal is not None and not journal.loaded and not journal.written:
            journal.remove()  # refused before the target acknowledged anything
        raise
    finally:
        if journal is not None:
            journal.close()
    if dry_run:
        return report
    mapping = Path(mapping_path) if mapping_path else default_mapping_path(bundle, destination)
    write_mapping(mapping, report)
    report.mapping = mapping
    assert journal is not None
    journal.remove()
    report.journal = None
    return report


def _plan(manifest: BundleManifest, layout: OCILayout, target: Target) -> list[_Planned]:
    """Each image's source, tag and target repository; refuses two images that would set one
    target tag to different digests, and attachments the bundle does not place."""
    carried = MappingProxyType(manifest.blob_sizes())
    plans: list[_Planned] = []
    tags: dict[tuple[str, str], _Planned] = {}
    for entry in manifest.images:
        # `REF [os/arch]`: a platform carried alone, untagged (as bundle create wrote it).
        name, _, platform = entry.reference.partition(" [")
        ref = parse_image_ref(name)
        tag = ref.tag if not platform else None
        repository = ref.name if target.is_layout else target.repository_for(ref.repository)
        source = _SignedSource(RepositoryView(layout, ref.name), entry, carried)
        plan = _Planned(entry, ref, tag, source, repository)
        if tag is not None:
            other = tags.setdefault((repository, tag), plan)
            if other.entry.digest != entry.digest:
                raise UsageError(
                    f"images {other.entry.reference} and {entry.reference} would both be "
                    f"{repository}:{tag} in {target} with different digests: import them into "
                    "different prefixes"
                )
        missing = _missing_attachments(entry, discover_attachments(source, entry.digest))
        if missing:
            raise VerificationFailure(
                f"bundle image {entry.reference}: the layout does not place {missing[0]}"
                f"{_more(missing)} that the signed manifest lists (index.json was changed?)"
            )
        plans.append(plan)
    return plans


def _more(items: list[str]) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


class _Import:
    def __init__(
        self,
        target: Target,
        manifest: BundleManifest,
        plans: list[_Planned],
        sources: Sources,
        report: ImportReport,
        journal: ImportJournal | None,
        progress: Progress | None,
    ) -> None:
        self.target = target
        self.manifest = manifest
        self.plans = plans
        self.sources = sources
        self.report = report
        self.journal = journal
        self.progress = progress
        self.dry_run = report.dry_run
        self.deferred: list[_Deferred] = []
        self.sinks: dict[str, _TargetSink] = {}
        self.stores: dict[str, Store] = {}
        # A repository of the target known to hold each blob: where to mount it from.
        self.blob_homes: dict[str, str] = {}
        self.lock = threading.Lock()  # for counters updated by concurrent blob copies
        self._layout: OCILayout | None = None
        self._layout_blobs: set[str] = set()
        self._layout_manifests: set[str] = set()
        self._catalog: list[str] | None = None

    # ------------------------------------------------------------------------ journal
    def journaled(self, repository: str, kind: JournalKind, digest: str) -> bool:
        return self.journal is not None and self.journal.done(repository, kind, digest)

    def record(self, repository: str, kind: JournalKind, digest: str) -> None:
        if self.journal is not None and not self.dry_run:
            self.journal.record(repository, kind, digest)

    # ------------------------------------------------------------------------- stores
    @property
    def registry(self) -> Registry:
        assert self.target.registry is not None
        return self.sources.registry(self.target.registry)

    def store(self, repository: str) -> Store:
        if repository not in self.stores:
            self.stores[repository] = self._open_store(repository)
        return self.stores[repository]

    def _open_store(self, repository: str) -> Store:
        if self.target.layout is None:
            return self.registry.repository(repository)
        if self._layout is None:
            path = self.target.layout
            if self.dry_run and not (path / "oci-layout").exists():
                return _EmptyStore(f"oci:{path} ({repository})")
            # Referrers are listed in index.json as they are written: no blob scan needed.
            self._layout = OCILayout.create(path, scan_blobs=False)
        return RepositoryView(self._layout, repository)

    def sink(self, repository: str) -> _TargetSink:
        if repository not in self.sinks:
            shared = self.target.is_layout
            blobs = self._layout_blobs if shared else set()
            manifests = self._layout_manifests if shared else set()
            store = self.store(repository)
            self.sinks[repository] = _TargetSink(
                store, self.reader(store), repository, self, blobs, manifests
            )
        return self.sinks[repository]

    def reader(self, store: Store) -> ImageSource:
        """Reads of `store` as they stand now (a layout's are local: read directly)."""
        if self.target.is_layout:
            return store
        return _TagListed(store, self.referrers_api)

    @property
    def referrers_api(self) -> bool | None:
        """Whether the target registry has the referrers API, once known (None before)."""
        return None if self.target.is_layout else self.registry.referrers_api

    # -------------------------------------------------------------------------- phases
    def run(self) -> None:
        self._check_on_target()
        for plan in self.plans:
            self.report.images.append(self._mirror(plan))
        self._tag()
        if not self.dry_run:
            self._verify()

    def _mirror(self, plan: _Planned) -> ImageImport:
        entry = plan.entry
        sink = self.sink(plan.repository)
        outcome = ImageImport(
            reference=entry.reference,
            digest=entry.digest,
            repository=self._repository_name(plan),
            target=self._target_reference(plan),
            tag=plan.tag,
            attachments={k: len(v) for k, v in sorted(entry.attachments.items())},
            resumed=self.journaled(plan.repository, "image", entry.digest),
        )
        try:
            outcome.mirror = mirror_image(plan.source, sink, entry.digest, progress=self.progress)
        except AirgapError as exc:
            raise self._failed(plan, exc, "no image was tagged") from None
        outcome.tag_moves.extend(sink.moves)
        sink.moves.clear()
        self.record(plan.repository, "image", entry.digest)
        return outcome

    def _tag(self) -> None:
        """Cosign tags and referrer listings, then the images' own tags: last of all."""
        self.report.attachment_tags = len(self.deferred)
        try:
            for deferred in self.deferred:
                deferred.sink.finish(deferred)
        except AirgapError as exc:
            raise ImportFailed(
                f"importing into {self.target}: {exc}; no image was tagged (rerun to resume)"
            ) from None
        for plan, outcome in zip(self.plans, self.report.images, strict=True):
            sink = self.sink(plan.repository)
            root = plan.source.fetch_manifest(plan.entry.digest)
            try:
                if plan.tag is not None:
                    outcome.tag_pushed = sink.push_tag(root, plan.tag)
                elif self._layout is not None and not self.dry_run:
                    # An untagged image is listed in index.json, so tools find it.
                    self._layout.add_to_index(root.descriptor, None)
            except AirgapError as exc:
                raise self._failed(plan, exc, "its tag was not written") from None
            outcome.tag_moves.extend(sink.moves)
            sink.moves.clear()

    def _failed(self, plan: _Planned, exc: AirgapError, state: str) -> ImportFailed:
        failed = ImportFailed(
            f"importing {plan.entry.reference} into {self.store(plan.repository).location}: "
            f"{exc}; {state} (rerun to resume)"
        )
        failed.exit_code = exc.exit_code
        return failed

    def _verify(self) -> None:
        """Every attachment the manifest lists, found again in the target; every tag in place."""
        for plan in self.plans:
            store = self.store(plan.repository)
            entry = plan.entry
            if isinstance(store, ReferrersProber):
                # Asked where the image now is: some registries answer 404 for a repository
                # they do not know, with the API or without.
                store.has_referrers_api(entry.digest)
            found = discover_attachments(self.reader(store), entry.digest)
            missing = _missing_attachments(entry, found)
            if missing:
                raise VerificationFailure(
                    f"after the import, {store.location}@{entry.digest} lacks {missing[0]}"
                    f"{_more(missing)}: the target did not keep it (rerun the import)"
                )
            if plan.tag is not None:
                current = store.resolve_optional(plan.tag)
                if current is None or current.digest != entry.digest:
                    raise VerificationFailure(
                        f"after the import, {store.location}:{plan.tag} names "
                        f"{current.digest if current else 'nothing'}, not {entry.digest}"
                    )
            self.report.attachments_verified += sum(len(v) for v in entry.attachments.values())

    # ------------------------------------------------------------------- delta bundles
    def _check_on_target(self) -> None:
        """Every blob a delta bundle left out, in each target repository that needs it (or
        mounted there from a repository that has it), before anything is pushed."""
        on_target = {b.digest: b.size for b in self.manifest.on_target}
        if not on_target:
            return
        needs: dict[str, set[str]] = {}
        for plan in self.plans:
            for node in plan.entry.graph:
                for digest in node.references:
                    if digest in on_target:
                        needs.setdefault(plan.repository, set()).add(digest)
        holders: dict[str, list[str]] = {}
        missing: list[tuple[str, str]] = []
        for repository, digests in sorted(needs.items()):
            sink = self.sink(repository)
            for digest in sorted(digests):
                if sink.blob_exists(digest):
                    holders.setdefault(digest, []).append(repository)
                    self._on_target(repository, digest, "present")
                else:
                    missing.append((repository, digest))
        mounts: list[tuple[str, str, str]] = []
        unresolved: list[tuple[str, str]] = []
        for repository, digest in missing:
            known = holders.get(digest)
            donor = known[0] if known else self._find_holder(digest, needs)
            if donor is None:
                unresolved.append((repository, digest))
                self._on_target(repository, digest, "missing")
            else:
                holders.setdefault(digest, []).append(donor)
                mounts.append((repository, digest, donor))
                self._on_target(repository, digest, f"mounted from {donor}")
        if unresolved and not self.dry_run:
            repository, digest = unresolved[0]
            more = f" (and {len(unresolved) - 1} more)" if len(unresolved) > 1 else ""
            raise UsageError(
                f"this delta bundle leaves out blob {digest} ({on_target[digest]} bytes), which "
                f"{self.store(repository).location} does not hold{more}: import the base bundle "
                "first (the one whose target inventory this delta was made from); nothing was "
                "pushed"
            )
        for repository, digest, donor in mounts:
            sink = self.sink(repository)
            if not self.dry_run:
                mounted = self.registry.repository(repository).mount_blob(digest, donor)
                if not mounted:
                    raise UsageError(
                        f"{sink.location} lacks blob {digest}, left out of this delta bundle, "
                        f"and the registry would not mount it from {donor}: import the base "
                        "bundle into this repository first"
                    )
            sink.have("blob", digest)
        # A dry run goes on as if the missing blobs were there, to report the rest.
        for repository, digest in unresolved:
            self.sink(repository).blobs.add(digest)

    def _on_target(self, repository: str, digest: str, state: str) -> None:
        location = self.store(repository).location
        self.report.on_target.setdefault(location, {})[digest] = state

    def _find_holder(self, digest: str, exclude: Mapping[str, object]) -> str | None:
        """Another repository under the target's prefix that holds `digest`, from the catalog
        (registries mount only within themselves); None when there is none or no catalog."""
        if self.target.is_layout:
            return None
        if self._catalog is None:
            from provisioner.copy.catalog import list_repositories

            try:
                self._catalog = list_repositories(self.registry, prefix=self.target.prefix)
            except AirgapError:
                self._catalog = []
        # The record of imported sequences holds no image's blobs (only the empty one).
        records = self.target.repository_for(RECORD_REPOSITORY)
        candidates = [n for n in self._catalog if n not in exclude and n != records]
        for name in candidates[:_MOUNT_SEARCH_LIMIT]:
            if self.registry.repository(name).blob_exists(digest):
                return name
        return None

    # --------------------------------------------------------------------------- names
    def _repository_name(self, plan: _Planned) -> str:
        if self.target.layout is not None:
            return plan.ref.name
        return f"{self.target.registry}/{plan.repository}"

    def _target_reference(self, plan: _Planned) -> str:
        if self.target.layout is not None:
            return f"oci:{self.target.layout}@{plan.entry.digest}"
        return f"{self.target.registry}/{plan.repository}@{plan.entry.digest}"


__all__ = [
    "ImageImport",
    "ImportFailed",
    "ImportJournal",
    "ImportReport",
    "RollbackRefused",
    "TagMove",
    "default_journal_path",
    "default_mapping_path",
    "discover_attachments",
    "import_bundle",
    "write_mapping",
]
