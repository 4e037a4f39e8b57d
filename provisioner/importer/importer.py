"""`airgap bundle import`: a verified bundle into a registry or an OCI layout, digests unchanged.

    report = import_bundle(Path("bundle"), load_public_key("operator.pub"),
                           "registry.internal:5000/mirror", options=RegistryOptions(...))

Where images land. A target `REGISTRY[/PREFIX]` receives each image under its source repository
path with the source registry host dropped: `ghcr.io/sigstore/fulcio:v1.8.8` becomes
`registry.internal:5000/mirror/sigstore/fulcio:v1.8.8` (`docker.io/library/nginx` becomes
`mirror/library/nginx`). A target `oci:DIR` is an image layout (made if missing) with ref names
`REPOSITORY:TAG` exactly like the bundle's own, so it is a complete target without a registry.
The mapping file written at the end records where each image went, for what deploys from it.

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
   the bundle), manifests children first, attachment manifests by digest. Into a registry,
   images of different repositories go at once (run.py); a blob they share is uploaded once
   and mounted by the others once acknowledged (claims.py).
4. Then every tag, last: cosign's `.sig/.att/.sbom` tags and the referrers (`push_referrer`,
   which writes the `sha256-<hex>` fallback tag where the registry has no referrers API), then
   the images' own tags. An import that fails before this point leaves no tag of any image.
5. Every attachment is discovered again in the target (cosign tags and referrers, recursively;
   several images at once) and compared with the manifest; one missing is a
   VerificationFailure naming it.

Before anything is pushed, the bundle's sequence is checked against the highest of its name
the target imported (record.py): an older bundle, or another one with the same
sequence, is refused (`allow_rollback` lets it through); after a verified import the sequence
is recorded. `expected_manifest_sha256` (from a signed parts list) must be the SHA-256 of the
manifest the signature verified: a directory unpacked earlier is checked like any other.

The journal (journal.py: JSON lines, fsync'd line by line, default in the user state
directory keyed by target and manifest, never in the bundle) records each blob and manifest
the target acknowledged, per repository. It is never a reason to skip anything: every blob and
manifest is asked of the target, so a rerun after a kill ends exactly like a clean import, and a
journal that lies (or a registry garbage-collected since) costs nothing but an upload. It says
which images a rerun resumes, and is removed after a successful import.

`dry_run=True` contacts the target read-only (HEAD and GET) and reports, per image, what exists
and what would be pushed, the bytes to push, and every tag that exists and would move to
another digest; it writes nothing, not even the journal.

The parts, in provisioner/importer/: stores.py (the bundle's signed view of an image, the dry-run
stand-in for a layout not made yet, registry reads through the tag list), sink.py (one target
repository as the copy sees it), claims.py (which repository holds or is uploading each blob),
discovery.py (attachments found again), run.py (the run once the bundle is verified),
journal.py, record.py and report.py.
"""

from __future__ import annotations

from pathlib import Path

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.oci.layout import OCILayout
from offline.oci.sources import RegistryOptions, Sources
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.detached import ManifestTrust
from provisioner.bundle.manifest import MANIFEST_FILE, OCI_DIR
from provisioner.copy.inventory import Target, parse_target
from provisioner.copy.mirror import Progress
from provisioner.importer.discovery import discover_attachments
from provisioner.importer.journal import (
    ImportJournal,
    default_journal_path,
    default_mapping_path,
    target_key,
)
from provisioner.importer.record import ImportRecords, RollbackRefused
from provisioner.importer.report import ImageImport, ImportReport, TagMove, write_mapping
from provisioner.importer.run import ImportFailed, ImportInterrupted, ImportRun, plan_images


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
    plans = plan_images(manifest, layout, destination)
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
            run = ImportRun(destination, manifest, plans, sources, report, journal, progress)
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


__all__ = [
    "ImageImport",
    "ImportFailed",
    "ImportInterrupted",
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
