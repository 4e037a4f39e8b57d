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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import UsageError, VerificationFailure
from provisioner.trust.ceremony import PRETTY, load_root_chain, online_signer
from provisioner.trust.client import fetch_all_targets
from provisioner.trust.layout import (
    ONLINE_ROLES,
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
    if previous is None:
        return _publish(layout, root_md, policy, None, wanted, True, online_password, now)
    new_targets = (
        resign_targets
        or _target_set(previous.files) != _target_set(wanted)
        # The new root names another targets key: what the old one signed no longer counts.
        or previous.root.roles["targets"].keyids != root.roles["targets"].keyids
        # A snapshot must never outlive the targets it names.
        or previous.targets.signed.expires <= policy.expires("snapshot", now)
    )
    new_root = previous.root.version != root.version
    if not (new_root or new_targets or resign_online or _stale(previous, policy, now)):
        return _result(layout, previous.generation, previous, changed=False)
    return _publish(layout, root_md, policy, previous, wanted, new_targets, online_password, now)


def _stale(previous: Published, policy: ExpiryPolicy, now: datetime) -> bool:
    """Published online metadata with less than half a timestamp period left: a build signs
    it again rather than call an about-to-expire repository unchanged."""
    horizon = now + timedelta(days=policy.timestamp / 2)
    return min(previous.timestamp.signed.expires, previous.snapshot.signed.expires) <= horizon


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
    signers = {role: online_signer(layout, root, role, online_password) for role in ONLINE_ROLES}
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
        if new_targets:
            targets = _targets(wanted, previous, policy.expires("targets", now), signers["targets"])
        else:
            assert previous is not None
            targets = previous.targets_bytes
        timestamp_version = _snapshot_and_timestamp(repo, targets, previous, policy, now, signers)
        _export(layout, scratch, wanted)
        generation = layout.generation(timestamp_version)
        if layout.current_generation() == generation:
            raise UsageError(f"{generation} is already current; timestamp versions went back")
        # A leftover of a build killed between its rename and the flip of `current`.
        shutil.rmtree(generation, ignore_errors=True)
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


def _targets(
    wanted: list[Target], previous: Published | None, expires: datetime, signer: Signer
) -> bytes:
    signed = Targets(
        version=previous.targets.signed.version + 1 if previous else 1, expires=expires
    )
    for target in wanted:
        info = TargetFile.from_data(target.name, target.data, ["sha256"])
        if target.custom is not None:
            info.unrecognized_fields["custom"] = target.custom
        signed.targets[target.name] = info
    metadata = Metadata(signed)
    metadata.sign(signer)
    return metadata.to_bytes(PRETTY)


def _snapshot_and_timestamp(
    repo: Path,
    targets: bytes,
    previous: Published | None,
    policy: ExpiryPolicy,
    now: datetime,
    signers: Mapping[str, Signer],
) -> int:
    """Writes N.targets.json, the snapshot naming it and the timestamp naming that; returns
    the timestamp's version."""
    targets_version = Metadata[Targets].from_bytes(targets).signed.version
    (repo / f"{targets_version}.targets.json").write_bytes(targets)
    snapshot = Metadata(
        Snapshot(
            version=previous.snapshot.signed.version + 1 if previous else 1,
            expires=policy.expires("snapshot", now),
            meta={"targets.json": MetaFile.from_data(targets_version, targets, ["sha256"])},
        )
    )
    snapshot.sign(signers["snapshot"])
    snapshot_bytes = snapshot.to_bytes(PRETTY)
    (repo / f"{snapshot.signed.version}.snapshot.json").write_bytes(snapshot_bytes)
    timestamp = Metadata(
        Timestamp(
            version=previous.timestamp.signed.version + 1 if previous else 1,
            expires=policy.expires("timestamp", now),
            snapshot_meta=MetaFile.from_data(snapshot.signed.version, snapshot_bytes, ["sha256"]),
        )
    )
    timestamp.sign(signers["timestamp"])
    (repo / "timestamp.json").write_bytes(timestamp.to_bytes(PRETTY))
    return timestamp.signed.version


def _export(layout: RepoLayout, scratch: Path, wanted: list[Target]) -> None:
    """Checked by a client, then the root to pin and the tuf-root Secret beside it."""
    repo = repository_dir(scratch)
    # What we publish, a client accepts: pinned to the first root, every target fetched.
    served = fetch_all_targets(repo, layout.root_file(1).read_bytes())
    if served != _target_set(wanted):
        raise VerificationFailure(
            f"the built repository serves other targets than given: {sorted(served)}"
        )
    root_bytes = layout.root_file(layout.root_versions()[-1]).read_bytes()
    atomic_write(pinned_root(scratch), root_bytes)
    secret = tuf_root_secret(root_bytes, repository_archive(repo))
    atomic_write(secret_file(scratch), (json.dumps(secret, indent=2) + "\n").encode(), mode=0o600)
    _sync_tree(scratch)


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
    """Older generations go; the previous one stays, for a web server or an installer that
    resolved the old link a moment ago."""
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
