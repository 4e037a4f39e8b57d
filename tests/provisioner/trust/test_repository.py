"""provisioner.trust: the repository a TUF client (python-tuf's ngclient over HTTP on
127.0.0.1) accepts, across builds, refreshes and root rotations, and what it refuses."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.exceptions import (
    ExpiredMetadataError,
    LengthOrHashMismatchError,
    RepositoryError,
    UnsignedMetadataError,
)
from tuf.api.metadata import Metadata, Root, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from offline.errors import UsageError, VerificationFailure
from provisioner.trust.build import build
from provisioner.trust.ceremony import RootKeys, init_repository, rotate_root
from provisioner.trust.keys import load_signer
from provisioner.trust.layout import RepoLayout
from provisioner.trust.policy import ExpiryPolicy
from provisioner.trust.refresh import refresh
from provisioner.trust.status import trust_status
from provisioner.trust.targets import Target
from tests.provisioner.trust.material import client, fetch, serve, stack_targets


def served(repo: Path) -> Path:
    return repo / "current" / "repository"


def first_root(repo: Path) -> bytes:
    return (repo / "roots" / "1.root.json").read_bytes()


def timestamp_version(state: Path) -> int:
    return Metadata[Timestamp].from_file(str(state / "metadata" / "timestamp.json")).signed.version


# -- what a client gets ---------------------------------------------------------------------------


def test_a_client_pinned_to_the_first_root_fetches_every_target_with_its_bytes(
    repo: Path, tmp_path: Path
) -> None:
    with serve(served(repo)) as url:
        updater = client(url, tmp_path / "client", first_root(repo))
        for target in stack_targets():
            assert fetch(updater, target.name) == target.data
    names = {t.name for t in stack_targets()}
    assert names == {
        "trusted_root.json",
        "signing_config.v0.2.json",
        "rekor.pub",
        "ctfe.pub",
        "fulcio_v1.crt.pem",
        "fulcio_intermediate_v1.crt.pem",
        "tsa_leaf.crt.pem",
        "tsa_intermediate_0.crt.pem",
        "tsa_root.crt.pem",
    }


def test_the_repository_uses_consistent_snapshots_and_hash_prefixed_targets(repo: Path) -> None:
    root = Metadata[Root].from_file(str(served(repo) / "1.root.json")).signed
    assert root.consistent_snapshot
    files = {p.name for p in (served(repo) / "targets").iterdir()}
    assert files == {f"{hashlib.sha256(t.data).hexdigest()}.{t.name}" for t in stack_targets()}
    top = {p.name for p in served(repo).iterdir()}
    assert top == {"1.root.json", "1.targets.json", "1.snapshot.json", "timestamp.json", "targets"}


def test_legacy_targets_carry_their_sigstore_usage(repo: Path) -> None:
    targets = Metadata[Targets].from_file(str(served(repo) / "1.targets.json")).signed.targets
    usage = {
        name: (info.custom or {}).get("sigstore", {}).get("usage") for name, info in targets.items()
    }
    assert usage["rekor.pub"] == "Rekor"
    assert usage["ctfe.pub"] == "CTFE"
    assert usage["fulcio_v1.crt.pem"] == "Fulcio"
    assert usage["tsa_root.crt.pem"] == "TSA"
    assert usage["trusted_root.json"] is None


def test_root_keys_and_online_keys_are_private_and_apart(repo: Path) -> None:
    root_keys = sorted((repo / "keys" / "root").glob("*.key"))
    online = sorted((repo / "keys" / "online").glob("*.key"))
    assert [p.name for p in root_keys] == ["root-1.key", "root-2.key", "root-3.key"]
    assert [p.name for p in online] == ["snapshot.key", "targets.key", "timestamp.key"]
    for key in (*root_keys, *online):
        assert key.stat().st_mode & 0o777 == 0o600
    # What is served holds no private key, and no public key but the logs' targets.
    served_keys = [p.name.split(".", 1)[1] for p in (served(repo) / "targets").iterdir()]
    assert sorted(n for n in served_keys if n.endswith((".key", ".pub"))) == [
        "ctfe.pub",
        "rekor.pub",
    ]
    assert not [p for p in served(repo).iterdir() if p.name.endswith((".key", ".pub"))]


# -- builds and refreshes -------------------------------------------------------------------------


def test_an_unchanged_build_publishes_nothing_and_a_changed_one_bumps_versions(
    repo: Path, tmp_path: Path
) -> None:
    before = os.readlink(repo / "current")
    again = build(repo, stack_targets())
    assert not again.changed
    assert os.readlink(repo / "current") == before

    changed = [t for t in stack_targets() if t.name != "ctfe.pub"]
    result = build(repo, changed)
    assert result.changed
    assert result.versions == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 2}
    with serve(served(repo)) as url:
        updater = client(url, tmp_path / "client", first_root(repo))
        assert updater.get_targetinfo("ctfe.pub") is None
        assert fetch(updater, "rekor.pub") == next(t.data for t in changed if t.name == "rekor.pub")


def test_an_unchanged_build_signs_again_a_timestamp_with_under_half_its_period_left(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    init_repository(repo, policy=ExpiryPolicy(root=365, targets=180, snapshot=30, timestamp=14))
    build(repo, stack_targets(), now=datetime.now(UTC) - timedelta(days=6))
    assert not build(repo, stack_targets()).changed  # 8 days left
    build(repo, stack_targets(), resign_online=True, now=datetime.now(UTC) - timedelta(days=8))
    again = build(repo, stack_targets())  # 6 days left: not called unchanged
    assert again.changed
    assert (again.versions["targets"], again.versions["timestamp"]) == (1, 3)


def test_after_refresh_a_client_sees_new_versions_and_the_same_targets(
    repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "client"
    with serve(served(repo)) as url:
        client(url, state, first_root(repo))
        assert timestamp_version(state) == 1
        result = refresh(repo)
        # Targets are far from expiry: only snapshot and timestamp are signed again.
        assert result.versions == {"root": 1, "targets": 1, "snapshot": 2, "timestamp": 2}
        updater = client(url, state)  # the same client, from the metadata it trusts
        assert timestamp_version(state) == 2
        for target in stack_targets():
            assert fetch(updater, target.name) == target.data


def test_refresh_signs_targets_again_when_they_would_expire_before_the_snapshot(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    policy = ExpiryPolicy(root=365, targets=40, snapshot=30, timestamp=30)
    init_repository(repo, policy=policy)
    build(repo, stack_targets(), now=datetime.now(UTC) - timedelta(days=20))
    result = refresh(repo)
    assert result.versions["targets"] == 2
    assert result.expires["targets"] > datetime.now(UTC) + timedelta(days=39)


def test_an_expired_timestamp_is_refused_by_the_client_and_renewed_by_refresh(
    repo: Path, tmp_path: Path
) -> None:
    # A correctly signed timestamp whose time is up: only the clock makes it wrong.
    path = served(repo) / "timestamp.json"
    timestamp = Metadata[Timestamp].from_file(str(path))
    timestamp.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    timestamp.sign(load_signer(repo / "keys" / "online" / "timestamp.key", None))
    path.write_bytes(timestamp.to_bytes(JSONSerializer(compact=False)))

    with serve(served(repo)) as url:
        with pytest.raises(ExpiredMetadataError):
            client(url, tmp_path / "client", first_root(repo))
        report = trust_status(repo)
        assert not report.ok
        assert any("timestamp version 1 expired" in p for p in report.problems)

        refresh(repo)
        updater = client(url, tmp_path / "client-after", first_root(repo))
        trusted_root = next(t for t in stack_targets() if t.name == "trusted_root.json")
        assert fetch(updater, "trusted_root.json") == trusted_root.data
        assert timestamp_version(tmp_path / "client-after") == 2


def test_a_failed_build_leaves_the_published_repository_as_it_was(repo: Path) -> None:
    before = {p.relative_to(repo): p.read_bytes() for p in served(repo).rglob("*") if p.is_file()}
    link = os.readlink(repo / "current")
    # Two incompressible targets: the repository no longer fits the tuf-root Secret, which is
    # found only after the whole generation was written and checked.
    big = [Target(f"extra-{i}.bin", os.urandom(700_000)) for i in range(2)]
    with pytest.raises(UsageError, match="too large for the tuf-root Secret"):
        build(repo, [*stack_targets(), *big])
    assert os.readlink(repo / "current") == link
    after = {p.relative_to(repo): p.read_bytes() for p in served(repo).rglob("*") if p.is_file()}
    assert after == before
    assert not list((repo / "generations").glob(".partial-*"))


# -- root rotation --------------------------------------------------------------------------------


def test_a_client_pinned_to_the_old_root_follows_a_rotation_to_new_root_keys(
    repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "client"
    with serve(served(repo)) as url:
        client(url, state, first_root(repo))
        new_keys = RootKeys(tmp_path / "new-root-keys")
        rotated = rotate_root(
            repo, RootKeys(repo / "keys" / "root"), new_root_keys=new_keys, new_keys=2
        )
        assert rotated.signed.version == 2
        assert rotated.signed.roles["root"].threshold == 2
        assert build(repo, stack_targets()).changed  # a new root alone is worth publishing
        updater = client(url, state)
        trusted = Metadata[Root].from_file(str(state / "metadata" / "root.json")).signed
        assert trusted.version == 2
        assert set(trusted.roles["root"].keyids) == set(rotated.signed.roles["root"].keyids)
        assert fetch(updater, "rekor.pub")


def test_a_root_signed_only_by_new_keys_is_refused(repo: Path, tmp_path: Path) -> None:
    new_keys = RootKeys(tmp_path / "new-root-keys")
    rotate_root(repo, RootKeys(repo / "keys" / "root"), new_root_keys=new_keys, new_keys=1)
    forged = Metadata[Root].from_file(str(repo / "roots" / "2.root.json"))
    forged.signatures.clear()
    forged.sign(load_signer(new_keys.directory / "root-1.key", None))
    (repo / "roots" / "2.root.json").write_bytes(forged.to_bytes())
    with pytest.raises(VerificationFailure, match="threshold"):
        build(repo, stack_targets())


def test_root_keys_below_the_threshold_are_refused(repo: Path, tmp_path: Path) -> None:
    one = tmp_path / "one-key"
    one.mkdir()
    os.link(repo / "keys" / "root" / "root-1.key", one / "root-1.key")
    with pytest.raises(UsageError, match="1 of the root role's keys found, 2 needed"):
        rotate_root(repo, RootKeys(one))
    assert not (repo / "roots" / "2.root.json").exists()


def test_an_online_key_the_root_does_not_name_is_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_repository(other)
    key = repo / "keys" / "online" / "targets.key"
    key.unlink()
    os.link(other / "keys" / "online" / "targets.key", key)
    with pytest.raises(UsageError, match="is not the targets key the root names"):
        build(repo, [t for t in stack_targets() if t.name != "ctfe.pub"])


# -- tampering ------------------------------------------------------------------------------------


def test_target_bytes_changed_without_a_rebuild_are_refused_everywhere(
    repo: Path, tmp_path: Path
) -> None:
    target = next((served(repo) / "targets").glob("*.rekor.pub"))
    target.write_bytes(target.read_bytes().replace(b"-----END", b"-----end"))
    with serve(served(repo)) as url:
        updater = client(url, tmp_path / "client", first_root(repo))
        info = updater.get_targetinfo("rekor.pub")
        assert info is not None
        with pytest.raises(LengthOrHashMismatchError):
            updater.download_target(info)
    with pytest.raises(VerificationFailure, match=r"rekor\.pub .* changed without a rebuild"):
        refresh(repo)
    with pytest.raises(VerificationFailure, match=r"rekor\.pub .* changed without a rebuild"):
        trust_status(repo)


def test_metadata_changed_without_signing_is_refused(repo: Path, tmp_path: Path) -> None:
    path = served(repo) / "1.targets.json"
    document = json.loads(path.read_text())
    document["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(document))
    with serve(served(repo)) as url, pytest.raises(RepositoryError):
        client(url, tmp_path / "client", first_root(repo))
    with pytest.raises(VerificationFailure, match="changed without a rebuild"):
        refresh(repo)


def test_a_layout_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="run airgap trust init"):
        build(tmp_path, stack_targets())
    init_repository(tmp_path / "repo")
    with pytest.raises(UsageError, match="already holds a TUF repository"):
        init_repository(tmp_path / "repo")
    assert RepoLayout(tmp_path / "repo").current_generation() is None


def test_a_second_writer_is_refused_while_one_changes_the_repository(repo: Path) -> None:
    with RepoLayout(repo).writing():
        with pytest.raises(UsageError, match="being changed by another airgap trust command"):
            refresh(repo)
        with pytest.raises(UsageError, match="being changed by another airgap trust command"):
            rotate_root(repo, RootKeys(repo / "keys" / "root"))
    assert refresh(repo).changed


def test_a_threshold_above_the_new_keys_is_refused_before_any_key_is_made(
    repo: Path, tmp_path: Path
) -> None:
    new_keys = RootKeys(tmp_path / "new-root-keys")
    with pytest.raises(UsageError, match="--threshold 3: must be 1 to the number of root keys"):
        rotate_root(
            repo, RootKeys(repo / "keys" / "root"), new_root_keys=new_keys, new_keys=2, threshold=3
        )
    assert not new_keys.directory.exists()
    assert not (repo / "roots" / "2.root.json").exists()


def test_new_online_keys_retire_the_old_ones_and_every_role_is_signed_again(
    repo: Path, tmp_path: Path
) -> None:
    online = repo / "keys" / "online"
    old_targets_key = (online / "targets.key").read_bytes()
    state = tmp_path / "client"
    with serve(served(repo)) as url:
        client(url, state, first_root(repo))
        rotated = rotate_root(repo, RootKeys(repo / "keys" / "root"), new_online_keys=True)
        assert (online / "retired-1" / "targets.key").read_bytes() == old_targets_key
        assert (online / "targets.key").read_bytes() != old_targets_key
        result = build(repo, stack_targets())
        assert result.versions == {"root": 2, "targets": 2, "snapshot": 2, "timestamp": 2}
        updater = client(url, state)
        assert fetch(updater, "ctfe.pub") == next(
            t.data for t in stack_targets() if t.name == "ctfe.pub"
        )
    # What the retired key signs no longer counts for a client that trusts root 2.
    targets = Metadata[Targets].from_file(str(served(repo) / "2.targets.json"))
    targets.sign(load_signer(online / "retired-1" / "targets.key", None))
    with pytest.raises(UnsignedMetadataError):
        rotated.signed.verify_delegate("targets", targets.signed_bytes, targets.signatures)


def test_a_served_root_changed_in_place_is_refused(repo: Path) -> None:
    path = served(repo) / "1.root.json"
    path.write_bytes(path.read_bytes().replace(b'"version": 1', b'"version":1'))
    with pytest.raises(VerificationFailure, match=r"1\.root\.json changed without a rebuild"):
        refresh(repo)


def test_status_warns_by_default_when_a_role_has_under_half_its_period_left(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    init_repository(repo)  # the site defaults: a timestamp lasts one day
    build(repo, stack_targets(), now=datetime.now(UTC) - timedelta(hours=11))
    assert trust_status(repo).ok  # 13 hours left
    build(repo, stack_targets(), resign_online=True, now=datetime.now(UTC) - timedelta(hours=13))
    report = trust_status(repo)  # 11 hours left
    assert not report.problems
    assert [w.split(" expires")[0] for w in report.warnings] == ["timestamp version 2"]
