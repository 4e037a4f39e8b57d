"""Publishing a generation: sign what changed, check it with a TUF client, flip `current`.

    result = build(Path("repo"), sigstore_targets(trusted_root_bytes, rekor_pub=...))

A generation is written whole into generations/.partial-*, read back by python-tuf's client
pinned to the first root (every target fetched by its hash-prefixed name and compared), then
renamed into place and made current by replacing the `current` link, which is atomic: a build
that fails at any point leaves the published generation as it was.

Versions only go up: targets when the target set changed (or must be re-signed before it
expires), snapshot and timestamp on every publish. A build whose targets, root and online
metadata would not change publishes nothing and says "unchanged", so an install can run it on
every rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import UsageError, VerificationFailure
from provisioner.trust.ceremony import PRETTY, load_root_chain, online_signer
from provisioner.trust.client import fetch_all_targets
from provisioner.trust.layout import (
    RepoLayout,
    pinned_root,
    repository_dir,
    secret_file,
)
from provisioner.trust.policy import ExpiryPolicy, load_policy
from provisioner.trust.published import Published, read_published
from provisioner.trust.secret import repository_archive, tuf_root_secret
from provisioner.trust.targets import Target, check_targets


@dataclass(frozen=True)
class BuildResult:
    repository: Path
    generation: Path
    changed: bool
    versions: dict[str, int]
    expires: dict[str, datetime]
    targets: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        generation = self.generation
        return {
            "repository": str(self.repository),
            "changed": self.changed,
            "served": str(repository_dir(generation)),
            "root": str(pinned_root(generation)),
            "secret": str(secret_file(generation)),
            "roles": {
                role: {"version": version, "expires": _iso(self.expires[role])}
                for role, version in self.versions.items()
            },
            "targets": list(self.targets),
        }


def build(
    path: Path,
    targets: Sequence[Target] | None = None,
    *,
    resign_targets: bool = False,
    resign_online: bool = False,
    online_password: bytes | None = None,
    now: datetime | None = None,
) -> BuildResult:
    """Publish `targets` (None: keep the published ones). `resign_online` re-signs snapshot
    and timestamp even when nothing else changed (a refresh); `resign_targets` the targets."""
    layout = RepoLayout(path)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    load_root_chain(layout)  # a directory that is not a repository gets no lock file
    with layout.writing():
        return _build(layout, targets, resign_targets, resign_online, online_password, now)


def _build(
    layout: RepoLayout,
    targets: Sequence[Target] | None,
    resign_targets: bool,
    resign_online: bool,
    online_password: bytes | None,
    now: datetime,
) -> BuildResult:
    root_md = load_root_chain(layout)
    root = root_md.signed
    policy = load_policy(layout.policy)
    _clean_partials(layout)
    previous = read_published(layout)
    if targets is None:
        if previous is None:
            raise UsageError(
                f"{layout.path}: nothing is published yet; build with --target or --from"
            )
        targets = previous.files
    wanted = check_targets(targets)
    new_root = previous is None or previous.root.version != root.version
    new_targets = (
        previous is None
        or resign_targets
        or _target_set(previous.files) != _target_set(wanted)
        # The new root names another targets key: what the old one signed no longer counts.
        or previous.root.roles["targets"].keyids != root.roles["targets"].keyids
    )
    if previous is not None and not (new_root or new_targets or resign_online):
        return _result(layout, previous.generation, previous, changed=False)
    return _publish(layout, root_md, policy, previous, wanted, new_targets, online_password, now)


def _publish(
    layout: RepoLayout,
    root_md: Metadata[Root],
    policy: ExpiryPolicy,
    previous: Published | None,
    wanted: list[Target],
    new_targets: bool,
    online_password: bytes | None,
    now: datetime,
) -> BuildResult:
    root = root_md.signed
    signers = {
        role: online_signer(layout, root, role, online_password)
        for role in ("targets", "snapshot", "timestamp")
    }
    layout.generations.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=layout.generations, prefix=".partial-"))
    try:
        scratch.chmod(0o755)  # served as it is by a static web server
        repo = repository_dir(scratch)
        (repo / "targets").mkdir(parents=True)
        for version in layout.root_versions():
            shutil.copyfile(layout.root_file(version), repo / f"{version}.root.json")
        for target in wanted:
            digest = hashlib.sha256(target.data).hexdigest()
            (repo / "targets" / f"{digest}.{target.name}").write_bytes(target.data)

        if new_targets or previous is None:
            version = previous.targets.signed.version + 1 if previous else 1
            signed = Targets(version=version, expires=policy.expires("targets", now))
            for target in wanted:
                info = TargetFile.from_data(target.name, target.data, ["sha256"])
                if target.custom is not None:
                    info.unrecognized_fields["custom"] = target.custom
                signed.targets[target.name] = info
            targets_md = Metadata(signed)
            targets_md.sign(signers["targets"])
            targets_bytes = targets_md.to_bytes(PRETTY)
        else:
            targets_md, targets_bytes = previous.targets, previous.targets_bytes
        targets_version = targets_md.signed.version
        (repo / f"{targets_version}.targets.json").write_bytes(targets_bytes)

        snapshot = Metadata(
            Snapshot(
                version=previous.snapshot.signed.version + 1 if previous else 1,
                expires=policy.expires("snapshot", now),
                meta={
                    "targets.json": MetaFile.from_data(targets_version, targets_bytes, ["sha256"])
                },
            )
        )
        snapshot.sign(signers["snapshot"])
        snapshot_bytes = snapshot.to_bytes(PRETTY)
        (repo / f"{snapshot.signed.version}.snapshot.json").write_bytes(snapshot_bytes)

        timestamp = Metadata(
            Timestamp(
                version=previous.timestamp.signed.version + 1 if previous else 1,
                expires=policy.expires("timestamp", now),
                snapshot_meta=MetaFile.from_data(
                    snapshot.signed.version, snapshot_bytes, ["sha256"]
                ),
            )
        )
        timestamp.sign(signers["timestamp"])
        (repo / "timestamp.json").write_bytes(timestamp.to_bytes(PRETTY))

        root_bytes = layout.root_file(root.version).read_bytes()
        atomic_write(pinned_root(scratch), root_bytes)
        # What we publish, a client accepts: pinned to the first root, every target fetched.
        served = fetch_all_targets(repo, layout.root_file(1).read_bytes())
        if served != {t.name: t.data for t in wanted}:
            raise VerificationFailure(
                f"the built repository serves other targets than given: {sorted(served)}"
            )
        secret = tuf_root_secret(root_bytes, repository_archive(repo))
        atomic_write(
            secret_file(scratch), (json.dumps(secret, indent=2) + "\n").encode(), mode=0o600
        )
        _sync_tree(scratch)

        generation = layout.generation(timestamp.signed.version)
        if layout.current_generation() == generation:
            raise UsageError(f"{generation} is already current; timestamp versions went back")
        shutil.rmtree(
            generation, ignore_errors=True
        )  # a leftover of a build killed after its rename
        os.rename(scratch, generation)
        fsync_dir(layout.generations)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _make_current(layout, generation)
    published = read_published(layout)
    assert published is not None
    _prune(layout, keep={generation, previous.generation if previous else generation})
    return _result(layout, generation, published, changed=True)


def _make_current(layout: RepoLayout, generation: Path) -> None:
    link = layout.path / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(generation.relative_to(layout.path))
    os.replace(link, layout.current)
    fsync_dir(layout.path)


def _clean_partials(layout: RepoLayout) -> None:
    if layout.generations.is_dir():
        for leftover in layout.generations.glob(".partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _prune(layout: RepoLayout, keep: set[Path]) -> None:
    """Older generations go; the previous one stays, so a client between two fetches still
    finds the snapshot its timestamp named."""
    for generation in layout.generations.iterdir():
        if generation not in keep and not generation.name.startswith("."):
            shutil.rmtree(generation, ignore_errors=True)


def _sync_tree(top: Path) -> None:
    for directory, _, files in os.walk(top):
        for name in files:
            fd = os.open(Path(directory) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(directory))


def _target_set(targets: Sequence[Target]) -> dict[str, bytes]:
    return {t.name: t.data for t in targets}


def _result(
    layout: RepoLayout, generation: Path, published: Published, *, changed: bool
) -> BuildResult:
    roles = {
        "root": published.root,
        "targets": published.targets.signed,
        "snapshot": published.snapshot.signed,
        "timestamp": published.timestamp.signed,
    }
    return BuildResult(
        layout.path,
        generation,
        changed,
        {role: signed.version for role, signed in roles.items()},
        {role: signed.expires for role, signed in roles.items()},
        tuple(t.name for t in published.files),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
