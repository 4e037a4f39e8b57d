"""Verifying a bundle directory on disk before anything else is done with it.

    report = verify_bundle_dir(Path("bundle"), load_public_key("bundle.pub"))
    report.raise_for_failure()

A path that is not a bundle at all (missing, not a directory, or a directory with neither
`airgap-bundle.json` nor a signature of it) is bad input: a UsageError (exit 2). Otherwise the
order is fixed, and the first failure stops the check (nothing is looked at after it):

1. the detached signature over the exact bytes of `airgap-bundle.json`: an operator key's
   `airgap-bundle.json.sig`, or (with a KeylessTrust) the Sigstore bundle
   `airgap-bundle.json.sigstore.json` verified offline against a carried trusted root and the
   expected identity; the manifest is not even parsed before it verifies;
2. every blob the manifest lists, in `oci/blobs/sha256/`: present, a regular file, the listed
   size, the listed SHA-256 (streamed in chunks: memory stays flat whatever the size; a few
   blobs at once, the failure reported the first in the manifest's order);
   then no blob that the manifest does not list (all of them are reported);
3. every chart archive and plain file, and the layout's `oci/index.json` and `oci/oci-layout`:
   inside the bundle, a regular file, size and SHA-256;
4. nothing else: every other file, directory or link anywhere in the bundle is refused, all of
   them named (a signature of the other kind too: it would not be carried);
5. the graph: each image's digest and attachments are nodes of its graph, every node is a
   listed blob that parses as a manifest of the recorded media type, and references exactly
   the recorded digests, each of them a listed blob.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from offline.errors import AirgapError, UsageError, VerificationFailure, and_more
from offline.inputs import read_input
from offline.oci.manifest import MAX_MANIFEST_SIZE, check_manifest
from provisioner.bundle.detached import (
    ManifestTrust,
    is_keyless,
    other_kind_hint,
    signature_name,
    signature_names,
    verify_detached,
)
from provisioner.bundle.manifest import (
    MANIFEST_FILE,
    MAX_BUNDLE_MANIFEST_SIZE,
    OCI_DIR,
    BlobEntry,
    BundleManifest,
)

__all__ = ["CheckReport", "ManifestTrust", "short", "verify_bundle_dir"]

CHUNK_SIZE = 1024 * 1024
# Blobs hashed at once: the check before an import is CPU-bound on SHA-256.
HASH_JOBS = min(4, os.cpu_count() or 1)


def short(digest: str) -> str:
    """`sha256:` and the first 12 hex digits, for messages."""
    return f"{digest[:19]}…" if len(digest) > 19 else digest


def _size_difference(actual: int, expected: int) -> str:
    difference = actual - expected
    amount = abs(difference)
    unit = "byte" if amount == 1 else "bytes"
    return f"{amount} {unit} {'longer' if difference > 0 else 'shorter'} than the manifest says"


@dataclass
class CheckReport:
    """What was checked and the first thing that was wrong (`problem`; None when all is well)."""

    path: Path
    problem: str | None = None
    signature_ok: bool = False
    signer: str | None = None  # `key <key id>`, or the keyless signer's identity
    manifest: BundleManifest | None = None
    manifest_sha256: str | None = None  # hex, of the bytes the signature verified
    blobs_checked: int = 0
    blob_bytes_checked: int = 0
    extra_blobs: list[str] = field(default_factory=list)
    # Paths (relative to the bundle) the manifest does not account for: all are refused.
    unlisted: list[str] = field(default_factory=list)
    files_checked: int = 0
    charts_checked: int = 0
    manifests_checked: int = 0
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def raise_for_failure(self) -> None:
        if self.problem is not None:
            raise VerificationFailure(f"bundle {self.path}: {self.problem}")

    def summary(self) -> str:
        if self.problem is not None:
            return f"bundle {self.path} FAILED: {self.problem}"
        return (
            f"bundle {self.path} verified: signed by {self.signer}, "
            f"{self.blobs_checked} blobs ({self.blob_bytes_checked} bytes), "
            f"{self.charts_checked} charts, {self.files_checked} files, "
            f"{self.manifests_checked} manifests of {self.images_checked} images"
        )


class _Failed(Exception):
    """Internal: stops the check at the first problem."""


def verify_bundle_dir(path: str | Path, trust: ManifestTrust) -> CheckReport:
    """`trust`: the operator's public key, or a KeylessTrust (identity, issuer, trusted root)."""
    report = CheckReport(Path(path))
    require_bundle_dir(report.path)
    try:
        manifest = _check_signature(report, trust)
        _check_blobs(report, manifest)
        _check_files(report, manifest)
        _check_nothing_else(report, manifest, trust)
        _check_graph(report, manifest)
    except _Failed as failed:
        report.problem = str(failed)
    return report


def require_bundle_dir(path: Path) -> None:
    """A UsageError (bad input, exit 2) for what is not a bundle directory at all; a bundle
    with its manifest or signature missing is a damaged bundle (a failed check, exit 1)."""
    if not path.is_dir():
        what = "does not exist" if not os.path.lexists(path) else "is not a directory"
        raise UsageError(f"{path} {what}: give a bundle directory")
    if not any(os.path.lexists(path / n) for n in (MANIFEST_FILE, *signature_names(MANIFEST_FILE))):
        raise UsageError(f"{path} is not a bundle directory: it holds no {MANIFEST_FILE}")


# ---------------------------------------------------------------------------------- steps
def _check_signature(report: CheckReport, trust: ManifestTrust) -> BundleManifest:
    manifest_bytes = _read_small(report.path / MANIFEST_FILE, MANIFEST_FILE)
    name = signature_name(MANIFEST_FILE, trust)
    if not os.path.lexists(report.path / name):
        raise _Failed(f"{name} is missing{other_kind_hint(report.path, MANIFEST_FILE, trust)}")
    signature_bytes = _read_small(report.path / name, name)
    try:
        report.signer = verify_detached(manifest_bytes, signature_bytes, trust, MANIFEST_FILE)
    except VerificationFailure as exc:
        kind = "keyless signature" if is_keyless(trust) else "signature"
        raise _Failed(f"{kind}: {exc}") from None
    report.signature_ok = True
    report.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    try:
        manifest = BundleManifest.from_bytes(manifest_bytes)
    except AirgapError as exc:
        raise _Failed(str(exc)) from None
    report.manifest = manifest
    return manifest


def _read_small(path: Path, name: str) -> bytes:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise _Failed(f"{name} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise _Failed(f"{name} is not a regular file")
    if info.st_size > MAX_BUNDLE_MANIFEST_SIZE:
        raise _Failed(f"{name} is too large to be a bundle manifest ({info.st_size} bytes)")
    # Checked again on the open file (no link followed): it may have been swapped since.
    try:
        return read_input(path, name, MAX_BUNDLE_MANIFEST_SIZE, follow_symlinks=False)
    except UsageError as exc:
        raise _Failed(str(exc)) from None


def _blob_dir(report: CheckReport) -> Path:
    return report.path / OCI_DIR / "blobs" / "sha256"


def _check_blobs(report: CheckReport, manifest: BundleManifest) -> None:
    blob_dir = _blob_dir(report)

    def check(blob: BlobEntry) -> _Failed | None:
        try:
            _check_content(blob_dir / blob.hex, f"blob {short(blob.digest)}", blob.size, blob.hex)
        except _Failed as failed:
            return failed
        return None

    # Hashed HASH_JOBS at a time (hashlib and reads let go of the GIL), the outcomes taken
    # in the manifest's order: the failure reported is the first listed, as one at a time.
    pool = ThreadPoolExecutor(max_workers=HASH_JOBS)
    try:
        for blob, failed in zip(manifest.blobs, pool.map(check, manifest.blobs), strict=True):
            if failed is not None:
                raise failed
            report.blobs_checked += 1
            report.blob_bytes_checked += blob.size
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure, none more started
    listed = {b.hex for b in manifest.blobs}
    blobs_root = report.path / OCI_DIR / "blobs"
    extra: list[str] = []
    if blobs_root.is_dir():
        for entry in sorted(os.scandir(blobs_root), key=lambda e: e.name):
            if entry.name != "sha256":
                extra.append(f"blobs/{entry.name}")
        if blob_dir.is_dir():
            for entry in sorted(os.scandir(blob_dir), key=lambda e: e.name):
                if entry.name not in listed:
                    name = f"sha256:{entry.name}"
                    extra.append(name if len(entry.name) == 64 else f"blobs/sha256/{entry.name}")
    if extra:
        report.extra_blobs = extra
        more = and_more(len(extra))
        first = short(extra[0]) if extra[0].startswith("sha256:") else extra[0]
        raise _Failed(f"blob {first}{more} in the layout is not in the manifest")


def _check_files(report: CheckReport, manifest: BundleManifest) -> None:
    for chart in manifest.charts:
        what = f"chart {chart.name} {chart.version} ({chart.file})"
        path = _inside(report.path, chart.file, what)
        _check_content(path, what, None, chart.digest.split(":", 1)[1])
        report.charts_checked += 1
    for entry in manifest.files:
        what = f"file {entry.path}"
        path = _inside(report.path, entry.path, what)
        _check_content(path, what, entry.size, entry.sha256)
        report.files_checked += 1
    for entry in manifest.layout:
        # Not a blob, yet every OCI tool reads its tags from index.json: signed like the rest.
        path = _inside(report.path, entry.path, entry.path)
        _check_content(path, entry.path, entry.size, entry.sha256)


def _check_nothing_else(
    report: CheckReport, manifest: BundleManifest, trust: ManifestTrust
) -> None:
    """Refuse every path the manifest does not account for, naming them: the signature covers
    what the bundle holds only if the bundle holds nothing else."""
    try:
        unlisted = unlisted_paths(report.path, manifest, (signature_name(MANIFEST_FILE, trust),))
    except OSError as exc:
        raise _Failed(f"cannot list the bundle ({exc.strerror}: {exc.filename})") from None
    if unlisted:
        report.unlisted = unlisted
        raise _Failed(
            f"{name_paths(unlisted)} {'is' if len(unlisted) == 1 else 'are'} in the bundle but "
            f"not in {MANIFEST_FILE} (nothing unsigned is accepted: remove "
            f"{'it' if len(unlisted) == 1 else 'them'})"
        )


def name_paths(paths: list[str]) -> str:
    """The first five, and how many more."""
    return ", ".join(paths[:5]) + and_more(len(paths), 5)


def unlisted_paths(root: Path, manifest: BundleManifest, signatures: tuple[str, ...]) -> list[str]:
    """Every path below `root` (relative, sorted) that is neither the manifest, one of the
    `signatures`, a regular file the manifest lists, nor a directory leading to one; an
    unlisted directory is named, not entered. Raises OSError when `root` cannot be listed."""
    files = {MANIFEST_FILE, *signatures}
    files.update(f"{OCI_DIR}/blobs/sha256/{b.hex}" for b in manifest.blobs)
    files.update(c.file for c in manifest.charts)
    files.update(f.path for f in manifest.files)
    files.update(f.path for f in manifest.layout)
    dirs = {f"{OCI_DIR}/blobs/sha256", f"{OCI_DIR}/blobs", OCI_DIR}
    for name in files:
        parts = name.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    unlisted: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            name = prefix + entry.name
            if entry.is_dir(follow_symlinks=False) and name in dirs:
                walk(Path(entry.path), name + "/")
            elif name not in files or not entry.is_file(follow_symlinks=False):
                unlisted.append(name)

    walk(root, "")
    return unlisted


def _inside(root: Path, relative: str, what: str) -> Path:
    """`root/relative`, refusing symbolic links on the way (nothing may lead out of the
    bundle); the parser already refused `..` and absolute paths."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise _Failed(f"{what} is missing") from None
        if stat.S_ISLNK(info.st_mode):
            raise _Failed(f"{what}: {current.relative_to(root)} is a symbolic link")
    return current


def _check_content(path: Path, what: str, size: int | None, sha256_hex: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _Failed(f"{what} is missing") from None
    except OSError as exc:
        raise _Failed(f"{what} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _Failed(f"{what} is not a regular file")
        if size is not None and info.st_size != size:
            raise _Failed(f"{what} is {_size_difference(info.st_size, size)}")
        hasher = hashlib.sha256()
        read = 0
        while chunk := f.read(CHUNK_SIZE):
            read += len(chunk)
            hasher.update(chunk)
    if size is not None and read != size:  # changed while being read
        raise _Failed(f"{what} is {_size_difference(read, size)}")
    actual = hasher.hexdigest()
    if actual != sha256_hex:
        raise _Failed(
            f"{what} has content with digest sha256:{actual[:12]}…, "
            f"not the listed sha256:{sha256_hex[:12]}… (corrupted)"
        )


def _check_graph(report: CheckReport, manifest: BundleManifest) -> None:
    sizes = manifest.blob_sizes()
    # In a delta bundle, what the target holds is referenced but neither carried nor read.
    on_target = {b.digest: b.size for b in manifest.on_target}
    blob_dir = _blob_dir(report)
    checked: dict[str, tuple[str, tuple[str, ...]]] = {}
    for image in manifest.images:
        where = f"image {image.reference}"
        nodes = {node.digest: node for node in image.graph}
        if image.digest not in nodes:
            raise _Failed(f"{where}: digest {short(image.digest)} is not in its graph")
        for kind, digests in sorted(image.attachments.items()):
            for digest in digests:
                if digest not in nodes:
                    raise _Failed(f"{where}: {kind} attachment {short(digest)} is not in its graph")
        for node in image.graph:
            recorded = (node.media_type, tuple(sorted(set(node.references))))
            if node.digest in checked:
                if checked[node.digest] != recorded:
                    raise _Failed(
                        f"{where}: manifest {short(node.digest)} is recorded twice, differently"
                    )
                continue
            if node.digest not in on_target:
                _check_node(
                    blob_dir,
                    sizes | on_target,
                    where,
                    node.digest,
                    node.media_type,
                    node.references,
                )
            checked[node.digest] = recorded
            report.manifests_checked += 1
        report.images_checked += 1


def _check_node(
    blob_dir: Path,
    sizes: dict[str, int],
    where: str,
    digest: str,
    media_type: str,
    references: tuple[str, ...],
) -> None:
    what = f"{where}: manifest {short(digest)}"
    if digest not in sizes:
        raise _Failed(f"{what} is not a listed blob")
    if sizes[digest] > MAX_MANIFEST_SIZE:
        raise _Failed(f"{what} is larger than a manifest can be")
    raw = (blob_dir / digest.split(":", 1)[1]).read_bytes()
    try:
        parsed = check_manifest(raw, digest, what, media_type)
        actual_refs = [d.digest for d in parsed.children()]
        subject = parsed.subject()
    except AirgapError as exc:
        raise _Failed(f"{what} does not parse: {exc}") from None
    if parsed.media_type != media_type:
        raise _Failed(f"{what} is a {parsed.media_type}, recorded as {media_type}")
    if subject is not None:
        actual_refs.append(subject.digest)
    for reference in actual_refs:
        if reference not in sizes:
            raise _Failed(f"{what} references {short(reference)}, which is not in the bundle")
    actual, recorded = set(actual_refs), set(references)
    if actual != recorded:
        missing = sorted(actual - recorded) or sorted(recorded - actual)
        verb = "references" if actual - recorded else "does not reference"
        raise _Failed(f"{what} {verb} {short(missing[0])}, unlike its graph entry in the manifest")
