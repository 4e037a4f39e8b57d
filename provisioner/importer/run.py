"""The import run, once the bundle is verified: each image planned (source, tag, target
repository), a delta bundle's left-out blobs found or mounted on the target, every image
mirrored, the tags written last, and every attachment and tag found again in the target.
importer.py says the order and why; `import_bundle` there starts this run.

Into a registry, images of different repositories are mirrored several at a time (a
repository's own images one after the other, in the bundle's order): each image still pushes
its manifests only after everything under them is acknowledged, a blob two images share is
uploaded once and mounted by the other (claims.py), and the tags wait until every image is
whole. The first image to fail stops the others before their next write; the import then fails
with that image's error and writes no tag. The tags and referrer listings are written per
repository at once (each repository's in order), then the images' own tags likewise, and the
attachments are found again per image at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

from offline.errors import AirgapError, UsageError, VerificationFailure, and_more
from offline.oci.imageref import ImageRef, parse_image_ref
from offline.oci.layout import OCILayout
from offline.oci.registry import Registry
from offline.oci.sources import Sources
from offline.oci.store import ImageSource, ReferrersProber, Store
from provisioner.bundle.manifest import BundleManifest, ImageEntry
from provisioner.copy.inventory import Target
from provisioner.copy.layout import RepositoryView
from provisioner.copy.mirror import Progress, mirror_image
from provisioner.importer.claims import BlobHomes, ImportStopping
from provisioner.importer.discovery import discover_attachments, missing_attachments
from provisioner.importer.journal import ImportJournal, JournalKind
from provisioner.importer.record import RECORD_REPOSITORY
from provisioner.importer.report import ImageImport, ImportReport
from provisioner.importer.sink import TargetSink
from provisioner.importer.stores import AbsentLayout, SignedSource, TagListed

# How many repositories of the catalog are asked for a blob a delta bundle left out.
_MOUNT_SEARCH_LIMIT = 200
# Images mirrored at once into a registry (each copies BLOB_JOBS blobs at once), and
# repositories tagged or checked at once at the end. A layout target takes one at a time.
IMAGE_JOBS = 3
TAG_JOBS = 4


class ImportFailed(AirgapError):
    """The import stopped: one line naming the image and the cause; rerun to resume. Exit 1:
    the cause is material that does not verify."""

    exit_code = 1


class ImportInterrupted(ImportFailed):
    """The import stopped on bad input or its environment (a registry unreachable, a full disk),
    not on the material: exit 2, as the cause alone would."""

    exit_code = 2


def _stopped(message: str, cause: AirgapError) -> ImportFailed:
    """The import failure for `cause`: its exit code follows the cause's class."""
    kind = ImportFailed if cause.exit_code == VerificationFailure.exit_code else ImportInterrupted
    return kind(message)


@dataclass
class Planned:
    entry: ImageEntry
    ref: ImageRef
    tag: str | None
    source: SignedSource
    repository: str  # target repository name (registry), or the source name (layout)


def plan_images(manifest: BundleManifest, layout: OCILayout, target: Target) -> list[Planned]:
    """Each image's source, tag and target repository; refuses two images that would set one
    target tag to different digests, and attachments the bundle does not place."""
    carried = MappingProxyType(manifest.blob_sizes())
    plans: list[Planned] = []
    tags: dict[tuple[str, str], Planned] = {}
    for entry in manifest.images:
        # `REF [os/arch]`: a platform carried alone, untagged (as bundle create wrote it).
        name, _, platform = entry.reference.partition(" [")
        ref = parse_image_ref(name)
        tag = ref.tag if not platform else None
        repository = ref.name if target.is_layout else target.repository_for(ref.repository)
        source = SignedSource(RepositoryView(layout, ref.name), entry, carried)
        plan = Planned(entry, ref, tag, source, repository)
        if tag is not None:
            other = tags.setdefault((repository, tag), plan)
            if other.entry.digest != entry.digest:
                raise UsageError(
                    f"images {other.entry.reference} and {entry.reference} would both be "
                    f"{repository}:{tag} in {target} with different digests: import them into "
                    "different prefixes"
                )
        missing = missing_attachments(entry, discover_attachments(source, entry.digest))
        if missing:
            raise VerificationFailure(
                f"bundle image {entry.reference}: the layout does not place {missing[0]}"
                f"{_more(missing)} that the signed manifest lists (index.json was changed?)"
            )
        plans.append(plan)
    return plans


def _more(items: list[str]) -> str:
    return and_more(len(items))


class ImportRun:
    """One import into one target, in phases (`run`); the target's stores and sinks, opened
    once per repository; the journal records what the target acknowledged."""

    def __init__(
        self,
        target: Target,
        manifest: BundleManifest,
        plans: list[Planned],
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
        self.sinks: dict[str, TargetSink] = {}
        self.stores: dict[str, Store] = {}
        # A repository of the target known to hold each blob (where to mount it from), and
        # the uploads under way.
        self.homes = BlobHomes()
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
                return AbsentLayout(f"oci:{path} ({repository})")
            # Referrers are listed in index.json as they are written: no blob scan needed.
            self._layout = OCILayout.create(path, scan_blobs=False)
        return RepositoryView(self._layout, repository)

    def sink(self, repository: str) -> TargetSink:
        if repository not in self.sinks:
            shared = self.target.is_layout
            blobs = self._layout_blobs if shared else set()
            manifests = self._layout_manifests if shared else set()
            store = self.store(repository)
            self.sinks[repository] = TargetSink(
                store, self.reader(store), repository, self, blobs, manifests
            )
        return self.sinks[repository]

    def reader(self, store: Store) -> ImageSource:
        """Reads of `store` as they stand now (a layout's are local: read directly)."""
        if self.target.is_layout:
            return store
        return TagListed(store, self.referrers_api)

    @property
    def referrers_api(self) -> bool | None:
        """Whether the target registry has the referrers API, once known (None before)."""
        return None if self.target.is_layout else self.registry.referrers_api

    # -------------------------------------------------------------------------- phases
    @property
    def jobs(self) -> int:
        return 1 if self.target.is_layout else IMAGE_JOBS

    def run(self) -> None:
        self._check_on_target()
        self.report.images.extend(self._mirror_all())
        self._tag()
        if not self.dry_run:
            self._verify()

    def _mirror_all(self) -> list[ImageImport]:
        """Every image, those of different repositories at once; the first failure stops the
        rest (before their next write) and is raised once every image has stopped."""
        queues = self._by_repository()
        for repository in queues:
            self.sink(repository)  # opened here, not in the threads
        outcomes: dict[int, ImageImport] = {}
        failures: list[ImportFailed] = []

        def mirror_repository(numbers: list[int]) -> None:
            for number in numbers:
                if self.homes.stopping.is_set():
                    return
                try:
                    outcomes[number] = self._mirror(self.plans[number])
                except ImportStopping:
                    return
                except BaseException as exc:
                    with self.lock:
                        if isinstance(exc, ImportFailed):
                            failures.append(exc)
                        self.homes.stopping.set()
                    raise

        self._each(mirror_repository, queues.values(), self.jobs)
        if failures:
            raise failures[0]
        return [outcomes[number] for number in range(len(self.plans))]

    def _by_repository(self) -> dict[str, list[int]]:
        """The plans' numbers per target repository, each repository's in bundle order."""
        queues: dict[str, list[int]] = {}
        for number, plan in enumerate(self.plans):
            queues.setdefault(plan.repository, []).append(number)
        return queues

    def _each(
        self, work: Callable[[list[int]], None], items: Iterable[list[int]], jobs: int
    ) -> None:
        """`work` on each of `items`, `jobs` at a time; every one is waited for, then the
        first failure (if any) raised."""
        todo = list(items)
        if jobs == 1 or len(todo) < 2:
            for item in todo:
                work(item)
            return
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
            futures = [pool.submit(work, item) for item in todo]
        for future in futures:
            future.result()

    def _mirror(self, plan: Planned) -> ImageImport:
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
        except ImportStopping:
            raise
        except AirgapError as exc:
            if isinstance(exc.__cause__, ImportStopping):
                raise exc.__cause__ from None
            raise self._failed(plan, exc, "no image was tagged") from None
        finally:
            sink.give_up()
        outcome.tag_moves.extend(sink.moves)
        sink.moves.clear()
        self.record(plan.repository, "image", entry.digest)
        return outcome

    def _tag(self) -> None:
        """Cosign tags and referrer listings, then the images' own tags: last of all."""
        sinks = [self.sinks[r] for r in dict.fromkeys(p.repository for p in self.plans)]
        self.report.attachment_tags = sum(len(sink.deferred) for sink in sinks)
        numbers = {sink.key: [i] for i, sink in enumerate(sinks)}

        def finish(items: list[int]) -> None:
            sink = sinks[items[0]]
            sink.finish(sink.deferred)

        try:
            self._each(finish, numbers.values(), TAG_JOBS)
        except AirgapError as exc:
            raise _stopped(
                f"importing into {self.target}: {exc}; no image was tagged (rerun to resume)", exc
            ) from None
        # Then the images' own tags, per repository at once (each repository's in the bundle's
        # order): every cosign tag and referrer listing is written by now.
        queues = self._by_repository()
        failures: dict[int, ImportFailed] = {}

        def tag_repository(numbers: list[int]) -> None:
            for number in numbers:
                if failures:  # the first failure stops the others before their next tag
                    return
                try:
                    self._tag_image(self.plans[number], self.report.images[number])
                except ImportFailed as exc:
                    failures[number] = exc
                    return

        self._each(tag_repository, queues.values(), TAG_JOBS if self.jobs > 1 else 1)
        if failures:
            raise failures[min(failures)]

    def _tag_image(self, plan: Planned, outcome: ImageImport) -> None:
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

    def _failed(self, plan: Planned, exc: AirgapError, state: str) -> ImportFailed:
        return _stopped(
            f"importing {plan.entry.reference} into {self.store(plan.repository).location}: "
            f"{exc}; {state} (rerun to resume)",
            exc,
        )

    def _verify(self) -> None:
        """Every attachment the manifest lists, found again in the target; every tag in place
        (several images at once); the first image that fails raises."""
        failures: dict[int, VerificationFailure] = {}

        def verify(numbers: list[int]) -> None:
            try:
                self._verify_image(self.plans[numbers[0]])
            except VerificationFailure as exc:
                failures[numbers[0]] = exc

        jobs = 1 if self.target.is_layout else TAG_JOBS
        self._each(verify, ([i] for i in range(len(self.plans))), jobs)
        if failures:
            raise failures[min(failures)]
        for plan in self.plans:
            entry = plan.entry
            self.report.attachments_verified += sum(len(v) for v in entry.attachments.values())

    def _verify_image(self, plan: Planned) -> None:
        store = self.store(plan.repository)
        entry = plan.entry
        if isinstance(store, ReferrersProber):
            # Asked where the image now is: some registries answer 404 for a repository
            # they do not know, with the API or without.
            store.has_referrers_api(entry.digest)
        found = discover_attachments(self.reader(store), entry.digest)
        missing = missing_attachments(entry, found)
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
            more = and_more(len(unresolved))
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
        for sink in self.sinks.values():
            sink.give_up()  # what was found missing is mounted above, or refused

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
    def _repository_name(self, plan: Planned) -> str:
        if self.target.layout is not None:
            return plan.ref.name
        return f"{self.target.registry}/{plan.repository}"

    def _target_reference(self, plan: Planned) -> str:
        if self.target.layout is not None:
            return f"oci:{self.target.layout}@{plan.entry.digest}"
        return f"{self.target.registry}/{plan.repository}@{plan.entry.digest}"
