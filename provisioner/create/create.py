"""`airgap bundle create`: everything a spec names, into one signed bundle directory.

    result = create_bundle(load_spec("bundles/stack.yaml"), Path("out"), signing_key=key)

Order, so that nothing is carried that should not be and nothing claims to be complete early:

1. every image reference resolves to a digest (tags are recorded beside it);
2. with a `verify` section, every image is verified (by digest) against the policy before a
   byte is copied, and a failure stops the create;
3. charts are pulled and rendered, and every image they use must be in the spec;
4. files and trust material are copied, each checked against its SHA-256;
5. images are mirrored, with every attachment, into one OCI layout (`oci/`), each blob once;
   with an inventory (`since`), blobs the target already has are left out and recorded;
6. the manifest `airgap-bundle.json` (with the bundle's name, its sequence, and the SHA-256 of
   the layout's index.json and oci-layout) is signed, then written with its signature (with an
   operator key `airgap-bundle.json.sig`, keylessly `airgap-bundle.json.sigstore.json`), and
   the directory is renamed from `OUT.partial` to `OUT`.

A keyless signer is checked before anything is done (its token and trust config), since the
signature is only made at the end. A failed or interrupted create, signing included, leaves only
`OUT.partial` (no manifest, no signature: it claims nothing); running the same create again
resumes it, copying only what is not there yet.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import AirgapError, UsageError, VerificationFailure, and_more
from offline.inputs import open_regular
from offline.oci.blobstream import CHUNK_SIZE
from offline.oci.imageref import ImageRef
from offline.oci.layout import OCILayout
from offline.oci.manifest import MANIFEST_MEDIA_TYPES, Manifest
from offline.oci.sources import RegistryOptions, Sources
from provisioner.bundle.check import name_paths, unlisted_paths
from provisioner.bundle.detached import (
    ManifestSigner,
    preflight,
    sign_detached,
    signature_name,
    signature_names,
)
from provisioner.bundle.manifest import (
    MANIFEST_FILE,
    OCI_DIR,
    BlobEntry,
    BundleManifest,
    ChartEntry,
    FileEntry,
    GraphNode,
    ImageEntry,
    check_sequence,
    layout_files,
)
from provisioner.bundle.sequence import next_sequence
from provisioner.bundle.spec import BundleSpec, FileSpec, ImageSpec
from provisioner.copy.inventory import Inventory
from provisioner.copy.layout import BlobClaims, DeltaView, RepositoryView
from provisioner.copy.mirror import MirrorReport, Progress, mirror_image

# How a note about the create reaches the user (warnings; the CLI prints them on stderr).
Warn = Callable[[str], None]
# Images carried at once. One image waits on one round trip or fsync after another (its
# manifests, attachment listings and index entries go in order); several at once keep the
# link and the disk busy. The blobs of each manifest are copied mirror.BLOB_JOBS at a time.
IMAGE_JOBS = 4


class CreateError(AirgapError):
    """A create that could not be done: a source unreachable, a chart image missing from
    the spec, a full disk (a policy failure is a VerificationFailure, exit 1)."""

    exit_code = 2


@dataclass
class ImageOutcome:
    reference: str
    digest: str
    report: MirrorReport
    platform: str | None = None


@dataclass
class CreateResult:
    path: Path
    manifest: BundleManifest
    images: list[ImageOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def bundle_bytes(self) -> int:
        return sum(b.size for b in self.manifest.blobs) + sum(f.size for f in self.manifest.files)

    def to_json(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "bundle": str(self.path),
            "images": [
                {
                    "reference": o.reference,
                    "digest": o.digest,
                    **({"platform": o.platform} if o.platform else {}),
                    "attachments": o.report.attachment_counts(),
                    "noAttachments": list(o.report.no_attachments),
                    "fetchFailures": list(o.report.fetch_failures),
                }
                for o in self.images
            ],
            "blobs": len(manifest.blobs),
            "blobBytes": sum(b.size for b in manifest.blobs),
            "onTarget": len(manifest.on_target),
            "onTargetBytes": sum(b.size for b in manifest.on_target),
            "charts": [f"{c.name}-{c.version}" for c in manifest.charts],
            "files": [f.path for f in manifest.files],
            "warnings": list(self.warnings),
        }


def create_bundle(
    spec: BundleSpec,
    out: Path,
    *,
    signing_key: ManifestSigner,
    options: RegistryOptions | None = None,
    since: Inventory | None = None,
    helm: str | None = None,
    progress: Progress | None = None,
    warn: Warn | None = None,
    sequence: int | None = None,
) -> CreateResult:
    """`sequence`: this bundle's place among the bundles of its name (default: from the clock,
    larger than any this user made before; bundle_sequence.py)."""
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} already exists: choose another output or remove it")
    preflight(signing_key)  # a bad token fails now, not after the whole create
    if sequence is not None:
        check_sequence(sequence, "sequence")
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    try:
        result = _create(
            spec, out, partial, signing_key, options, since, helm, progress, note, sequence
        )
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:
        raise CreateError(
            f"writing {partial} failed: {exc.strerror or exc}; nothing claims to be complete: "
            "free the space (or fix the cause) and rerun the same command to resume"
        ) from None
    result.warnings = warnings
    return result


def _create(
    spec: BundleSpec,
    out: Path,
    partial: Path,
    signing_key: ManifestSigner,
    options: RegistryOptions | None,
    since: Inventory | None,
    helm: str | None,
    progress: Progress | None,
    note: Warn,
    sequence: int | None,
) -> CreateResult:
    with Sources(options) as sources:
        with ThreadPoolExecutor(max_workers=IMAGE_JOBS) as pool:
            # One round trip per tag, all at once; the first failure in spec order is raised.
            resolved = list(pool.map(lambda image: _resolve(sources, image), spec.images))
        if spec.verify is not None:
            _verify_images(spec, resolved, sources)
        charts = _charts(spec, resolved, partial, helm, options)
        files = [_copy_file(f, partial, "files") for f in spec.files]
        files += [_copy_file(f, partial, "trust") for f in spec.trust]
        # Referrers are listed in index.json as they are written: no need to scan every blob.
        layout = OCILayout.create(partial / OCI_DIR, scan_blobs=False)
        on_target = frozenset(since.blobs) if since is not None else frozenset()
        outcomes = _carry_all(sources, layout, spec, resolved, on_target, progress, note)
        # Written in the order the images' copies happened to end: the same content gives
        # the same index.json (and so the same manifest) whatever that order was.
        layout.sort_index()

    entries = [_image_entry(layout, o) for o in outcomes]
    blobs, left_out = _blob_lists(layout, entries, since)
    manifest = BundleManifest(
        created=datetime.now(UTC).replace(microsecond=0),
        name=spec.name,
        # Taken last, once all else worked: a failed create uses up no number.
        sequence=next_sequence(spec.name, sequence),
        layout=layout_files(partial),
        images=tuple(entries),
        blobs=tuple(blobs),
        charts=tuple(charts),
        files=tuple(files),
        on_target=tuple(left_out),
    )
    _check_leftovers(partial, manifest)
    data = manifest.to_bytes()
    # Signed before either is written: a signing failure (Sigstore unreachable, the token
    # refused) leaves OUT.partial with no manifest, as any other failure does.
    signature = sign_detached(data, signing_key)
    for stale in signature_names(MANIFEST_FILE):  # from an earlier attempt, maybe another kind
        (partial / stale).unlink(missing_ok=True)
    atomic_write(partial / MANIFEST_FILE, data)
    atomic_write(partial / signature_name(MANIFEST_FILE, signing_key), signature)
    os.rename(partial, out)
    fsync_dir(out.parent)
    return CreateResult(out, manifest, outcomes)


def _check_leftovers(partial: Path, manifest: BundleManifest) -> None:
    """What a resumed create finds in OUT.partial that this one did not make: blob writes cut
    short by a kill are removed; anything else (another spec's file or chart) is refused, since
    the bundle would hold a file its manifest does not sign, which every check refuses."""
    blob_dir = partial / OCI_DIR / "blobs" / "sha256"
    leftovers = []
    for name in unlisted_paths(partial, manifest, signature_names(MANIFEST_FILE)):
        path = partial / name
        if path.parent == blob_dir and name.rsplit("/", 1)[-1].startswith(".tmp-"):
            path.unlink()  # OCILayout's own partial write
        else:
            leftovers.append(name)
    if leftovers:
        them = "it" if len(leftovers) == 1 else "them"
        raise CreateError(
            f"{partial} holds {name_paths(leftovers)}, which this create does not make (left "
            f"by an earlier create of another spec?): remove {them} or {partial.name}, and run "
            "the create again"
        )


# ------------------------------------------------------------------------------ images
def _resolve(sources: Sources, image: ImageSpec) -> ImageRef:
    ref = image.ref
    try:
        descriptor = sources.repository(ref).resolve(ref.reference)
    except AirgapError as exc:
        raise CreateError(f"image {image.reference}: {exc}") from None
    if ref.digest is not None and descriptor.digest != ref.digest:
        raise CreateError(f"image {image.reference}: the registry serves {descriptor.digest}")
    # The tag stays beside the digest: recorded, and tagged again on import.
    return ref.with_digest(descriptor.digest)


def _verify_images(spec: BundleSpec, resolved: list[ImageRef], sources: Sources) -> None:
    """Every image, by the digest that will be carried, against the spec's policy (through the
    create's own registry connections)."""
    from offline.policy.policy_file import load_policy_file
    from offline.verifier import Verifier

    assert spec.verify is not None
    policy_file = load_policy_file(spec.verify.policy)
    verifier = Verifier.open(
        trusted_root=spec.verify.trusted_root, checkpoints=spec.verify.checkpoints
    )
    failures = []
    for ref in resolved:
        name = f"{ref.name}@{ref.digest}"
        policy = policy_file.for_image(name)
        if policy is None:
            failures.append(f"{ref}: no policy in {spec.verify.policy} matches it")
            continue
        result = verifier.verify_image(sources, name, policy)
        if not result.verified:
            failures.append(f"{ref}: {result.first_failure()}")
    if failures:
        more = and_more(len(failures))
        raise VerificationFailure(
            f"image verification before export failed: {failures[0]}{more}; nothing was carried"
        )


def _carry_all(
    sources: Sources,
    layout: OCILayout,
    spec: BundleSpec,
    resolved: list[ImageRef],
    on_target: frozenset[str],
    progress: Progress | None,
    note: Warn,
) -> list[ImageOutcome]:
    """Every image of the spec into `layout`, IMAGE_JOBS images at a time; the outcomes and
    notes in spec order. Images of one digest are carried by one job, one after the other, so
    no two jobs write the same attachments (a fallback index lists them in the order one job
    found them). After a failure no further image is started; the running ones end, and the
    failure of the first image in spec order is raised."""
    groups: dict[str, list[int]] = {}
    for position, ref in enumerate(resolved):
        assert ref.digest is not None
        groups.setdefault(ref.digest, []).append(position)
    results: dict[int, tuple[list[ImageOutcome], list[str]]] = {}
    failures: dict[int, BaseException] = {}
    stop = threading.Event()
    claims = BlobClaims()  # a blob two images share is fetched by one, found by the other

    def carry_group(positions: list[int]) -> None:
        for position in positions:
            if stop.is_set():
                return
            notes: list[str] = []
            try:
                outcomes = _carry(
                    sources,
                    layout,
                    spec.images[position],
                    resolved[position],
                    on_target,
                    spec,
                    progress,
                    notes.append,
                    claims,
                )
            except BaseException as exc:
                failures[position] = exc
                stop.set()
                return
            results[position] = (outcomes, notes)

    with ThreadPoolExecutor(max_workers=IMAGE_JOBS) as pool:
        futures = [pool.submit(carry_group, positions) for positions in groups.values()]
        try:
            for future in futures:
                future.result()
        except BaseException:  # interrupted (Ctrl-C): start no further image
            stop.set()
            pool.shutdown(cancel_futures=True)
            raise
    if failures:
        raise failures[min(failures)]
    outcomes: list[ImageOutcome] = []
    for position in range(len(resolved)):
        carried, notes = results[position]
        outcomes += carried
        for message in notes:
            note(message)
    return outcomes


def _carry(
    sources: Sources,
    layout: OCILayout,
    image: ImageSpec,
    ref: ImageRef,
    on_target: frozenset[str],
    spec: BundleSpec,
    progress: Progress | None,
    note: Warn,
    claims: BlobClaims,
) -> list[ImageOutcome]:
    assert ref.digest is not None
    source = sources.repository(ref)
    view: RepositoryView = (
        DeltaView(layout, ref.name, on_target, claims)
        if on_target
        else RepositoryView(layout, ref.name, claims)
    )
    roots: list[tuple[str, str | None]] = [(ref.digest, None)]
    if image.platforms:
        roots = _platform_roots(source.fetch_manifest(ref.digest), image, note)
    outcomes = []
    for digest, platform in roots:
        tags = (ref.tag,) if ref.tag is not None and platform is None else ()
        try:
            report = mirror_image(
                source,
                view,
                digest,
                tags=tags,
                progress=progress,
                allow_missing=spec.allow_missing_attachments,
            )
        except AirgapError as exc:
            raise CreateError(str(exc)) from None
        for failure in report.fetch_failures:
            note(f"left out (allowMissingAttachments): {failure}")
        root = layout.fetch_manifest(digest)
        layout.add_to_index(root.descriptor, None)
        outcomes.append(ImageOutcome(image.reference, digest, report, platform))
    return outcomes


def _platform_roots(root: Manifest, image: ImageSpec, note: Warn) -> list[tuple[str, str | None]]:
    if not root.is_index:
        note(f"{image.reference} is a single-platform image: platforms {image.platforms} ignored")
        return [(root.digest, None)]
    chosen: list[tuple[str, str | None]] = []
    for child in root.children():
        platform = _platform_of(root, child.digest)
        if platform in image.platforms:
            chosen.append((child.digest, platform))
    missing = set(image.platforms) - {p for _, p in chosen}
    if missing:
        raise CreateError(f"image {image.reference} has no {', '.join(sorted(missing))} manifest")
    note(
        f"{image.reference}: carrying only {', '.join(image.platforms)} of index "
        f"{root.digest[:19]}…; signatures and attestations made on the index digest do not "
        "cover what is carried and stay behind (remove `platforms` to keep the index whole)"
    )
    return chosen


def _platform_of(index: Manifest, digest: str) -> str | None:
    for entry in index.json().get("manifests", []):
        if isinstance(entry, dict) and entry.get("digest") == digest:
            platform = entry.get("platform") or {}
            parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
            return "/".join(p for p in parts if p) or None
    return None


def _image_entry(layout: OCILayout, outcome: ImageOutcome) -> ImageEntry:
    """The digest graph of one carried image and its attachments, from the layout."""
    nodes: dict[str, GraphNode] = {}

    def walk(digest: str) -> None:
        if digest in nodes:
            return
        manifest = layout.fetch_manifest(digest)
        references = [c.digest for c in manifest.children()]
        subject = manifest.subject()
        if subject is not None:
            references.append(subject.digest)
        nodes[digest] = GraphNode(digest, manifest.media_type, tuple(references))
        if manifest.is_index:
            for child in manifest.children():
                if child.media_type in MANIFEST_MEDIA_TYPES:
                    walk(child.digest)

    walk(outcome.digest)
    attachments: dict[str, list[str]] = {}
    for record in outcome.report.attachments:
        walk(record.digest)
        attachments.setdefault(record.kind, [])
        if record.digest not in attachments[record.kind]:
            attachments[record.kind].append(record.digest)
    reference = outcome.reference
    if outcome.platform is not None:
        reference = f"{reference} [{outcome.platform}]"
    return ImageEntry(
        reference=reference,
        digest=outcome.digest,
        graph=tuple(nodes.values()),
        attachments={k: tuple(v) for k, v in attachments.items()},
    )


def _blob_lists(
    layout: OCILayout, entries: list[ImageEntry], since: Inventory | None
) -> tuple[list[BlobEntry], list[BlobEntry]]:
    """Every blob file of the layout; and, for a delta, what the graphs reference that was
    left out because the target has it."""
    carried = {}
    blob_dir = layout.path / "blobs" / "sha256"
    for entry in sorted(os.scandir(blob_dir), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith("."):
            carried[f"sha256:{entry.name}"] = entry.stat().st_size
    left_out: dict[str, int] = {}
    if since is not None:
        for image in entries:
            for node in image.graph:
                for reference in node.references:
                    if reference not in carried and reference in since.blobs:
                        left_out[reference] = since.blobs[reference]
    missing = [
        reference
        for image in entries
        for node in image.graph
        for reference in node.references
        if reference not in carried and reference not in left_out
    ]
    if missing:
        raise CreateError(f"blob {missing[0]} is referenced but was not carried (internal error)")
    return (
        [BlobEntry(d, s) for d, s in carried.items()],
        [BlobEntry(d, s) for d, s in sorted(left_out.items())],
    )


# ------------------------------------------------------------------------- charts, files
def _charts(
    spec: BundleSpec,
    resolved: list[ImageRef],
    partial: Path,
    helm: str | None,
    options: RegistryOptions | None,
) -> list[ChartEntry]:
    """Pull every chart into `charts/`, render it with its values, and require every image
    it runs to be in the spec."""
    if not spec.charts:
        return []
    from provisioner.create.chart_images import compare_images
    from provisioner.create.charts import ChartSource, pull_chart, render_images, resolve_helm

    program = resolve_helm(helm)
    options = options or RegistryOptions()
    spec_images = [str(ref) for ref in resolved]
    entries: list[ChartEntry] = []
    missing: list[str] = []
    for chart in spec.charts:
        source = ChartSource(
            name=chart.name,
            version=chart.version,
            repo=chart.repo,
            oci=chart.oci,
            path=chart.path,
            values_files=chart.values,
            values=chart.set_values,
            namespace=chart.namespace,
            digest=chart.digest,
        )
        host = chart.oci.removeprefix("oci://").split("/", 1)[0] if chart.oci else None
        pulled = pull_chart(
            source,
            partial / "charts",
            helm=program,
            ca_file=None if options.ca_bundle is None else Path(options.ca_bundle),
            plain_http=host is not None and host in options.insecure_http_hosts,
        )
        missing += compare_images(render_images(pulled.path, source, helm=program), spec_images)
        entries.append(
            ChartEntry(
                name=pulled.name,
                version=pulled.version,
                digest=pulled.digest,
                file=pulled.path.relative_to(partial).as_posix(),
            )
        )
    if missing:
        more = and_more(len(missing))
        raise CreateError(f"{missing[0]}{more}: add it to the spec's images")
    return entries


def _copy_file(file: FileSpec, partial: Path, under: str) -> FileEntry:
    """Copy `file.source` into the bundle, checking its SHA-256 on the way."""
    relative = f"{under}/{file.path}"
    target = partial / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    hasher = hashlib.sha256()
    size = 0
    try:
        # A regular file only: a FIFO would block, a device (/dev/zero) never end.
        source = open_regular(file.source, f"{under} entry {file.path}: source")
        with source as src, open(temporary, "wb") as dst:
            while chunk := src.read(CHUNK_SIZE):
                hasher.update(chunk)
                dst.write(chunk)
                size += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except FileNotFoundError:
        temporary.unlink(missing_ok=True)
        raise UsageError(
            f"{under} entry {file.path}: source {file.source} does not exist"
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if hasher.hexdigest() != file.sha256:
        temporary.unlink()
        raise VerificationFailure(
            f"{under} entry {file.path}: {file.source} has sha256 {hasher.hexdigest()}, "
            f"the spec says {file.sha256}"
        )
    shutil.copymode(file.source, temporary)
    os.replace(temporary, target)
    return FileEntry(relative, file.sha256, size)
