"""The published generation read back and checked against the root it was published under
(its newest served root, which must be the same bytes as roots/N.root.json), whatever its expiry: a
refresh must be able to renew an expired timestamp, so expiry is left to `status` and to
clients, while every signature, every version link and every target's bytes are checked. A
file changed in place (metadata or a target) is refused here, before anything is signed
over it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuf.api.exceptions import LengthOrHashMismatchError, UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from offline.errors import VerificationFailure
from offline.inputs import read_input
from provisioner.trust.files import T, read_metadata
from provisioner.trust.layout import RepoLayout, repository_dir
from provisioner.trust.targets import Target


@dataclass(frozen=True)
class Published:
    generation: Path
    root: Root  # the newest root the generation serves: its online keys signed the rest
    targets: Metadata[Targets]
    targets_bytes: bytes
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]
    files: tuple[Target, ...]


def read_published(layout: RepoLayout) -> Published | None:
    """The current generation, checked; None before the first build. The caller has checked
    the chain in roots/ (ceremony.load_root_chain)."""
    generation = layout.current_generation()
    if generation is None:
        return None
    repo = repository_dir(generation)
    served = sorted(int(p.name.split(".")[0]) for p in repo.glob("*.root.json"))
    if not served or served != list(range(1, len(served) + 1)):
        raise VerificationFailure(f"{repo}: served root versions {served} do not run 1, 2, ...")
    for version in served:
        if (repo / f"{version}.root.json").read_bytes() != layout.root_file(version).read_bytes():
            raise VerificationFailure(
                f"{repo}/{version}.root.json changed without a rebuild (it differs from "
                f"{layout.root_file(version)})"
            )
    root = read_metadata(layout.root_file(served[-1]), Root)[0].signed
    timestamp, _ = _role(repo / "timestamp.json", Timestamp, root, None)
    snapshot, _ = _role(
        repo / f"{timestamp.signed.snapshot_meta.version}.snapshot.json",
        Snapshot,
        root,
        timestamp.signed.snapshot_meta,
    )
    targets_meta = snapshot.signed.meta.get("targets.json")
    if targets_meta is None:
        raise VerificationFailure(f"{repo}: the snapshot lists no targets.json")
    targets, targets_bytes = _role(
        repo / f"{targets_meta.version}.targets.json", Targets, root, targets_meta
    )
    files = []
    for name, info in sorted(targets.signed.targets.items()):
        path = repo / "targets" / f"{info.hashes['sha256']}.{name}"
        data = read_input(path, "target")
        try:
            info.verify_length_and_hashes(data)
        except LengthOrHashMismatchError:
            raise VerificationFailure(
                f"target {name} in {repo} changed without a rebuild (its bytes no longer match "
                f"the signed targets metadata); run airgap trust build with the intended file"
            ) from None
        files.append(Target(name, data))
    return Published(generation, root, targets, targets_bytes, snapshot, timestamp, tuple(files))


def _role(
    path: Path, kind: type[T], root: Root, meta: MetaFile | None
) -> tuple[Metadata[T], bytes]:
    metadata, data = read_metadata(path, kind)
    try:
        root.verify_delegate(kind.type, metadata.signed_bytes, metadata.signatures)
        if meta is not None:
            meta.verify_length_and_hashes(data)
    except (UnsignedMetadataError, LengthOrHashMismatchError) as exc:
        raise VerificationFailure(
            f"{path} changed without a rebuild or is not signed by the {kind.type} key ({exc})"
        ) from None
    if meta is not None and metadata.signed.version != meta.version:
        raise VerificationFailure(
            f"{path} is version {metadata.signed.version}, not {meta.version}"
        )
    return metadata, data
