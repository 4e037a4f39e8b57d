"""The checkpoint store: it only moves forward, accepts history only with proofs, never holds
two roots for one size, keeps evidence of every refused inconsistency, and refuses a damaged
state file instead of starting over."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError, VerificationFailure
from offline.tlog.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from offline.tlog.checkpoint_files import log_dir_name
from offline.tlog.checkpoint_store import (
    CheckpointStore,
    ConsistencyProofRequired,
    InconsistentLogError,
    LogMismatchError,
    SplitViewError,
    StaleProofError,
    StoreCorruptError,
    UnpinnedError,
    default_checkpoint_dir,
)
from offline.tlog.merkle import EMPTY_ROOT
from offline.trust.root import LogInstance, TrustedRoot
from tests.tlog_fixture import TestLog, trusted_root

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Setup:
    """A Rekor v1 style log with 20 entries, its trusted root, and an empty store."""

    def __init__(self, path: Path) -> None:
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(20)
        self.root: TrustedRoot = trusted_root(self.log)
        self.instance: LogInstance = self.root.tlogs[0]
        self.store = CheckpointStore(path / "store", clock=lambda: NOW, trusted_root=self.root)

    def checkpoint(self, size: int, log: TestLog | None = None) -> Checkpoint:
        log = log or self.log
        return verify_checkpoint(log.checkpoint(size), trusted_root(log).tlogs[0])

    def add(self, size: int, proof: list[bytes] | None = None) -> str:
        return self.store.add(self.checkpoint(size), self.instance, proof).outcome

    def evidence(self) -> list[dict[str, Any]]:
        directory = self.store.path / log_dir_name(self.log.log_id, self.log.origin) / "evidence"
        return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]

    @property
    def state_file(self) -> Path:
        return self.store.path / log_dir_name(self.log.log_id, self.log.origin) / "state.json"


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def _evidence_path(message: str) -> Path:
    match = re.search(r"evidence saved to (\S+\.json);", message)
    assert match, message
    return Path(match[1])


# -- moving forward ---------------------------------------------------------------------------


def test_the_first_checkpoint_of_a_log_is_pinned(setup: Setup) -> None:
    assert not setup.store.knows(setup.log.log_id, setup.log.origin)
    assert setup.add(5) == "added"
    assert setup.store.knows(setup.log.log_id, setup.log.origin)
    latest = setup.store.latest(setup.log.log_id, setup.log.origin)
    assert latest is not None
    assert (latest.size, latest.root, latest.added) == (5, setup.log.root(5), NOW)
    assert latest.note.startswith(setup.log.checkpoint_text(5) + "\n— rekor.airgap.test ")


def test_a_good_chain_of_checkpoints_moves_the_store_forward(setup: Setup) -> None:
    setup.add(3)
    setup.add(8, setup.log.consistency_proof(3, 8))
    setup.add(20, setup.log.consistency_proof(8, 20))
    state = setup.store.state(setup.log.log_id, setup.log.origin)
    assert state is not None
    assert [c.size for c in state.checkpoints] == [3, 8, 20]
    assert [(p.from_size, p.to_size) for p in state.proofs] == [(3, 8), (8, 20)]
    for size in (3, 8, 20):
        pinned = setup.store.pin(setup.log.log_id, setup.log.origin, size, setup.log.root(size))
        assert (pinned.pinned_by, pinned.latest_size) == ("checkpoint", 20)


def test_a_resigned_checkpoint_of_the_same_tree_changes_nothing(setup: Setup) -> None:
    setup.add(5)
    before = setup.state_file.read_bytes()
    again = setup.checkpoint(5)  # ECDSA is randomized: other signature bytes, same tree head
    assert again.note.signatures != setup.checkpoint(5).note.signatures
    assert setup.store.add(again, setup.instance).outcome == "unchanged"
    assert setup.state_file.read_bytes() == before


def test_a_newer_checkpoint_without_a_proof_is_refused_with_what_to_fetch(setup: Setup) -> None:
    setup.add(5)
    with pytest.raises(
        ConsistencyProofRequired,
        match=re.escape(
            f"log {setup.log.origin}: checkpoint at size 12 is newer than the latest pinned "
            "checkpoint (size 5); it needs a consistency proof from size 5 to 12 (`airgap "
            "checkpoint add --proof FILE` takes it; "
            f"GET /api/v1/log/proof?firstSize=5&lastSize=12&treeID={setup.log.tree_id}"
        ),
    ):
        setup.add(12)
    assert setup.store.proof_endpoints(setup.log.log_id, setup.log.origin, 12) == (5, 12)


def test_a_rollback_to_an_older_checkpoint_is_refused(setup: Setup) -> None:
    setup.add(5)
    setup.add(12, setup.log.consistency_proof(5, 12))
    with pytest.raises(
        ConsistencyProofRequired,
        match=re.escape(
            f"log {setup.log.origin}: checkpoint at size 9 is older than the latest pinned "
            "checkpoint (size 12); refused as a possible rollback unless a consistency proof "
            "from size 9 to 12 shows it is history"
        ),
    ):
        setup.add(9)
    latest = setup.store.latest(setup.log.log_id, setup.log.origin)
    assert latest is not None and latest.size == 12


def test_an_older_checkpoint_is_history_when_proven_consistent(setup: Setup) -> None:
    setup.add(5)
    setup.add(15, setup.log.consistency_proof(5, 15))
    assert setup.add(9, setup.log.consistency_proof(9, 15)) == "added"
    state = setup.store.state(setup.log.log_id, setup.log.origin)
    assert state is not None
    assert [c.size for c in state.checkpoints] == [5, 9, 15]
    assert state.latest.size == 15
    assert (
        setup.store.pin(setup.log.log_id, setup.log.origin, 9, setup.log.root(9)).pinned_by
        == "checkpoint"
    )


def test_the_empty_tree_pins_nothing(setup: Setup) -> None:
    empty = TestLog("rekor.airgap.test", key=setup.log.key, tree_id=setup.log.tree_id)
    checkpoint = setup.checkpoint(0, empty)
    assert checkpoint.root_hash == EMPTY_ROOT
    assert setup.store.add(checkpoint, setup.instance).outcome == "skipped-empty"
    assert not setup.store.knows(setup.log.log_id, setup.log.origin)


def test_a_checkpoint_of_the_same_origin_from_another_key_is_refused(setup: Setup) -> None:
    setup.add(5)
    rotated = TestLog(setup.log.hostname, tree_id=setup.log.tree_id)
    rotated.extend(6)
    checkpoint = setup.checkpoint(6, rotated)
    with pytest.raises(LogMismatchError, match="refusing to mix two keys under one origin"):
        setup.store.add(checkpoint, trusted_root(rotated).tlogs[0])


def test_rekor_v1_shards_are_stored_apart(setup: Setup) -> None:
    shard = TestLog(setup.log.hostname, key=setup.log.key, tree_id=42)
    shard.extend(3)
    setup.add(5)
    setup.store.add(setup.checkpoint(3, shard), setup.instance)
    assert setup.store.origins() == sorted([setup.log.origin, shard.origin])
    assert log_dir_name(setup.log.log_id, setup.log.origin) != log_dir_name(
        shard.log_id, shard.origin
    )


def test_log_directory_names_are_safe_and_distinct() -> None:
    names = {log_dir_name(b"key", o) for o in ("a/b", "a_b", "a b", "../..", "x" * 300)}
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{12}", name)
        assert not name.startswith(".") and len(name) <= 77


# -- split views and bad proofs -----------------------------------------------------------------


def _forked(setup: Setup) -> TestLog:
    """The same log key signing a tree that differs from entry 10 on: a split view."""
    fork = TestLog(setup.log.hostname, key=setup.log.key, tree_id=setup.log.tree_id)
    for i in range(20):
        fork.append(f"fork {i}".encode() if i >= 10 else f"entry {i} of {fork.origin}".encode())
    return fork


def test_a_split_view_is_refused_and_kept_as_evidence(setup: Setup) -> None:
    setup.add(15)
    before = setup.state_file.read_bytes()
    fork = _forked(setup)
    with pytest.raises(SplitViewError) as caught:
        setup.store.add(setup.checkpoint(15, fork), setup.instance)
    message = str(caught.value)
    assert message.startswith(
        f"log {setup.log.origin}: split view at size 15: the pinned checkpoint has root "
        f"{setup.log.root(15).hex()[:16]}… but the new checkpoint has root "
        f"{fork.root(15).hex()[:16]}…; evidence saved to "
    )
    assert message.endswith("stop trusting it and report the evidence to its operator")
    assert "\n" not in message
    evidence = json.loads(_evidence_path(message).read_text())
    assert evidence["kind"] == "split-view"
    assert evidence["stored"]["root"] == setup.log.root(15).hex()
    assert evidence["offered"]["root"] == fork.root(15).hex()
    assert "— rekor.airgap.test" in evidence["stored"]["note"]
    assert "— rekor.airgap.test" in evidence["offered"]["note"]
    assert setup.state_file.read_bytes() == before


def test_a_corrupted_consistency_proof_is_refused_and_kept_as_evidence(setup: Setup) -> None:
    setup.add(6)
    proof = setup.log.consistency_proof(6, 17)
    proof[1] = bytes(32)
    with pytest.raises(InconsistentLogError) as caught:
        setup.add(17, proof)
    message = str(caught.value)
    assert re.match(
        rf"log {re.escape(setup.log.origin)}: consistency proof from size 6 to 17 does not hold "
        r"\(consistency proof yields root .*\); refused; evidence saved to .*; fetch a fresh "
        r"consistency proof from the log; if it fails again, treat the log as compromised$",
        message,
    )
    evidence = json.loads(_evidence_path(message).read_text())
    assert evidence["kind"] == "inconsistent-proof"
    assert (evidence["older"]["size"], evidence["newer"]["size"]) == (6, 17)
    assert evidence["proof"]["hashes"][1] == "00" * 32
    assert evidence["newer"]["note"].startswith(setup.log.origin + "\n17\n")
    latest = setup.store.latest(setup.log.log_id, setup.log.origin)
    assert latest is not None and latest.size == 6


def test_a_fork_that_grows_past_the_pinned_checkpoint_cannot_be_proven(setup: Setup) -> None:
    setup.add(12)
    fork = _forked(setup)
    with pytest.raises(InconsistentLogError, match="consistency proof from size 12 to 20"):
        setup.store.add(setup.checkpoint(20, fork), setup.instance, fork.consistency_proof(12, 20))
    assert len(setup.evidence()) == 1


def test_a_proof_for_an_older_checkpoint_is_checked_too(setup: Setup) -> None:
    setup.add(16)
    fork = _forked(setup)
    checkpoint = setup.checkpoint(11, fork)
    with pytest.raises(InconsistentLogError, match="from size 11 to 16"):
        setup.store.add(checkpoint, setup.instance, fork.consistency_proof(11, 16))


def test_a_split_view_is_reported_even_when_evidence_cannot_be_saved(setup: Setup) -> None:
    setup.add(15)
    evidence_dir = setup.state_file.parent / "evidence"
    evidence_dir.write_text("a file where the evidence directory should be")
    fork = _forked(setup)
    with pytest.raises(SplitViewError, match=r"split view at size 15: .*could not save the"):
        setup.store.pin(setup.log.log_id, setup.log.origin, 15, fork.root(15))


# -- pinning ------------------------------------------------------------------------------------


def test_an_entry_beyond_the_pinned_size_is_unpinned(setup: Setup) -> None:
    setup.add(10)
    with pytest.raises(UnpinnedError) as caught:
        setup.store.pin(setup.log.log_id, setup.log.origin, 14, setup.log.root(14))
    assert str(caught.value) == (
        f"log {setup.log.origin}: bundle checkpoint at size 14 is beyond the latest pinned "
        "checkpoint (size 10); run `airgap checkpoint add` (or `airgap checkpoint fetch` where "
        "the log is reachable) to move the store forward"
    )


def test_an_older_tree_head_needs_a_stored_proof(setup: Setup) -> None:
    setup.add(4)
    setup.add(10, setup.log.consistency_proof(4, 10))
    with pytest.raises(UnpinnedError) as caught:
        setup.store.pin(setup.log.log_id, setup.log.origin, 7, setup.log.root(7))
    assert str(caught.value) == (
        f"log {setup.log.origin}: no stored consistency proof from size 7 to a pinned checkpoint "
        "(the next pinned checkpoint is at size 10); add one with `airgap checkpoint add --proof`"
    )


def test_a_log_the_store_does_not_know_is_unpinned(setup: Setup) -> None:
    with pytest.raises(UnpinnedError, match="no pinned checkpoint; run `airgap checkpoint add`"):
        setup.store.pin(bytes(32), "rekor.unknown.test - 1", 3, bytes(32))


def test_pinning_another_root_for_a_pinned_size_is_a_split_view(setup: Setup) -> None:
    setup.add(12)
    fork = _forked(setup)
    note = fork.checkpoint(12)
    with pytest.raises(SplitViewError, match="split view at size 12") as caught:
        setup.store.pin(setup.log.log_id, setup.log.origin, 12, fork.root(12), note)
    evidence = json.loads(_evidence_path(str(caught.value)).read_text())
    assert evidence["offered"]["note"] == note


def test_an_anchor_is_pinned_by_a_proof_to_a_stored_checkpoint(setup: Setup) -> None:
    setup.add(18)
    result = setup.store.add_anchor(
        setup.log.log_id,
        setup.log.origin,
        7,
        setup.log.root(7),
        setup.log.consistency_proof(7, 18),
        18,
    )
    assert result.outcome == "added"
    assert (
        setup.store.pin(setup.log.log_id, setup.log.origin, 7, setup.log.root(7)).pinned_by
        == "anchor"
    )
    state = setup.store.state(setup.log.log_id, setup.log.origin)
    assert state is not None
    assert [(a.size, a.root) for a in state.anchors] == [(7, setup.log.root(7))]
    assert [(p.from_size, p.to_size) for p in state.proofs] == [(7, 18)]


def test_an_anchor_with_a_bad_proof_is_refused_as_evidence(setup: Setup) -> None:
    setup.add(18)
    fork = _forked(setup)
    with pytest.raises(InconsistentLogError, match="from size 13 to 18"):
        setup.store.add_anchor(
            setup.log.log_id,
            setup.log.origin,
            13,
            fork.root(13),
            fork.consistency_proof(13, 18),
            18,
        )
    assert setup.evidence()[0]["kind"] == "inconsistent-proof"


def test_an_anchor_needs_a_pinned_checkpoint_to_prove_against(setup: Setup) -> None:
    setup.add(18)
    with pytest.raises(UnpinnedError, match="no pinned checkpoint at size 19"):
        setup.store.add_anchor(setup.log.log_id, setup.log.origin, 7, setup.log.root(7), [], 19)


def test_a_signed_checkpoint_can_join_an_anchor_of_the_same_tree(setup: Setup) -> None:
    setup.add(18)
    setup.store.add_anchor(
        setup.log.log_id,
        setup.log.origin,
        7,
        setup.log.root(7),
        setup.log.consistency_proof(7, 18),
        18,
    )
    assert setup.add(7) == "added"
    assert (
        setup.store.pin(setup.log.log_id, setup.log.origin, 7, setup.log.root(7)).pinned_by
        == "checkpoint"
    )


# -- the state file -----------------------------------------------------------------------------


def test_the_state_file_holds_checkpoints_proofs_and_a_checksum(setup: Setup) -> None:
    setup.add(4)
    setup.add(9, setup.log.consistency_proof(4, 9))
    doc = json.loads(setup.state_file.read_text())
    assert doc["format"] == "airgap-checkpoint-log/v1"
    assert doc["origin"] == setup.log.origin
    assert doc["log_id"] == setup.log.log_id.hex()
    assert [(c["size"], c["root"]) for c in doc["checkpoints"]] == [
        (4, setup.log.root(4).hex()),
        (9, setup.log.root(9).hex()),
    ]
    assert doc["checkpoints"][0]["added"] == "2026-03-01T12:00:00Z"
    assert doc["proofs"] == [
        {
            "from_size": 4,
            "to_size": 9,
            "hashes": [h.hex() for h in setup.log.consistency_proof(4, 9)],
        }
    ]
    assert doc["anchors"] == []
    assert re.fullmatch(r"[0-9a-f]{64}", doc["sha256"])
    assert stat.S_IMODE(setup.state_file.stat().st_mode) == 0o644
    assert not [p for p in setup.state_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_truncated_state_file_is_refused_loudly_and_left_alone(setup: Setup) -> None:
    setup.add(4)
    data = setup.state_file.read_bytes()
    setup.state_file.write_bytes(data[: len(data) // 2])
    expected = f"checkpoint store file {setup.state_file} is corrupt: not valid JSON"
    with pytest.raises(StoreCorruptError, match=re.escape(expected)):
        setup.store.pin(setup.log.log_id, setup.log.origin, 4, setup.log.root(4))
    with pytest.raises(StoreCorruptError, match="nothing was changed"):
        setup.add(4)
    assert setup.state_file.read_bytes() == data[: len(data) // 2]


def test_an_edited_state_file_fails_its_checksum(setup: Setup) -> None:
    setup.add(4)
    doc = json.loads(setup.state_file.read_text())
    doc["checkpoints"][0]["root"] = "00" * 32
    setup.state_file.write_text(json.dumps(doc))
    with pytest.raises(StoreCorruptError, match="checksum mismatch, the file was truncated or"):
        setup.store.latest(setup.log.log_id, setup.log.origin)


def test_a_state_file_moved_to_another_logs_directory_is_refused(setup: Setup) -> None:
    setup.add(4)
    elsewhere = setup.store.path / log_dir_name(setup.log.log_id, "rekor.other.test - 1")
    elsewhere.mkdir()
    (elsewhere / "state.json").write_bytes(setup.state_file.read_bytes())
    with pytest.raises(StoreCorruptError, match="not this directory's log"):
        setup.store.origins()


def test_the_default_store_is_in_the_user_data_dir_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert default_checkpoint_dir() == data_home / "airgap" / "checkpoints"
    assert CheckpointStore().path == data_home / "airgap" / "checkpoints"
    monkeypatch.setenv("AIRGAP_CHECKPOINTS", str(tmp_path / "elsewhere"))
    assert CheckpointStore().path == tmp_path / "elsewhere"
    assert CheckpointStore(tmp_path / "explicit").path == tmp_path / "explicit"


# -- export and import --------------------------------------------------------------------------


def test_export_and_import_carry_a_store_to_another_host(setup: Setup, tmp_path: Path) -> None:
    setup.add(4)
    setup.add(12, setup.log.consistency_proof(4, 12))
    setup.store.add_anchor(
        setup.log.log_id,
        setup.log.origin,
        2,
        setup.log.root(2),
        setup.log.consistency_proof(2, 12),
        12,
    )
    assert setup.store.export(tmp_path / "export.json") == 1
    other = CheckpointStore(tmp_path / "other", trusted_root=setup.root)
    [result] = other.import_(tmp_path / "export.json", setup.root)
    assert (result.checkpoints_added, result.anchors_added, result.latest_size) == (2, 1, 12)
    assert other.state(setup.log.log_id, setup.log.origin) == setup.store.state(
        setup.log.log_id, setup.log.origin
    )


def test_import_extends_an_older_local_store(setup: Setup, tmp_path: Path) -> None:
    other = CheckpointStore(tmp_path / "other", trusted_root=setup.root)
    other.add(setup.checkpoint(4), setup.instance)
    setup.add(4)
    setup.add(9, setup.log.consistency_proof(4, 9))
    setup.add(16, setup.log.consistency_proof(9, 16))
    setup.store.export(tmp_path / "export.json")
    [result] = other.import_(tmp_path / "export.json", setup.root)
    assert (result.checkpoints_added, result.latest_size) == (2, 16)
    assert other.pin(setup.log.log_id, setup.log.origin, 16, setup.log.root(16)).latest_size == 16


def test_import_refuses_a_split_view_with_the_local_store(setup: Setup, tmp_path: Path) -> None:
    fork = _forked(setup)
    local = CheckpointStore(tmp_path / "local", trusted_root=setup.root)
    local.add(setup.checkpoint(15, fork), setup.instance)
    before = local.state(setup.log.log_id, setup.log.origin)
    setup.add(15)
    setup.store.export(tmp_path / "export.json")
    with pytest.raises(SplitViewError, match="the imported tree head has root") as caught:
        local.import_(tmp_path / "export.json", setup.root)
    assert _evidence_path(str(caught.value)).exists()
    assert local.state(setup.log.log_id, setup.log.origin) == before


def test_import_re_verifies_every_checkpoint_signature(setup: Setup, tmp_path: Path) -> None:
    setup.add(4)
    setup.store.export(tmp_path / "export.json")
    doc = json.loads((tmp_path / "export.json").read_text())
    impostor = TestLog(setup.log.hostname, tree_id=setup.log.tree_id)
    impostor.extend(4)
    doc["logs"][0]["checkpoints"][0]["note"] = impostor.checkpoint(4, key_id=setup.log.key_id)
    (tmp_path / "export.json").write_text(json.dumps(doc))
    other = CheckpointStore(tmp_path / "other", trusted_root=setup.root)
    with pytest.raises(CheckpointError, match=r"checkpoint export .*: .* does not verify"):
        other.import_(tmp_path / "export.json", setup.root)
    assert other.origins() == []


def test_import_re_verifies_every_consistency_proof(setup: Setup, tmp_path: Path) -> None:
    setup.add(4)
    setup.add(9, setup.log.consistency_proof(4, 9))
    setup.store.export(tmp_path / "export.json")
    doc = json.loads((tmp_path / "export.json").read_text())
    doc["logs"][0]["proofs"][0]["hashes"][0] = "11" * 32
    (tmp_path / "export.json").write_text(json.dumps(doc))
    other = CheckpointStore(tmp_path / "other", trusted_root=setup.root)
    with pytest.raises(InconsistentLogError, match="from size 4 to 9 does not hold"):
        other.import_(tmp_path / "export.json", setup.root)
    assert not other.knows(setup.log.log_id, setup.log.origin)


def test_import_refuses_checkpoints_no_proof_links_to_the_store(
    setup: Setup, tmp_path: Path
) -> None:
    setup.add(4)
    setup.add(9, setup.log.consistency_proof(4, 9))
    setup.store.export(tmp_path / "export.json")
    doc = json.loads((tmp_path / "export.json").read_text())
    doc["logs"][0]["proofs"] = []
    (tmp_path / "export.json").write_text(json.dumps(doc))
    other = CheckpointStore(tmp_path / "other", trusted_root=setup.root)
    with pytest.raises(
        UnpinnedError, match=r"checkpoint at size 4 is not linked .* nothing changed"
    ):
        other.import_(tmp_path / "export.json", setup.root)
    assert not other.knows(setup.log.log_id, setup.log.origin)


def test_import_is_all_or_nothing_across_logs(setup: Setup, tmp_path: Path) -> None:
    second = TestLog("rekor2.airgap.test")
    second.extend(3)
    both = trusted_root(setup.log, second)
    setup.add(14)
    setup.store.add(setup.checkpoint(3, second), both.tlogs[1])
    setup.store.export(tmp_path / "export.json")
    local = CheckpointStore(tmp_path / "local", trusted_root=setup.root)
    local.add(setup.checkpoint(14, _forked(setup)), setup.instance)
    with pytest.raises(SplitViewError):
        local.import_(tmp_path / "export.json", both)
    assert not local.knows(second.log_id, second.origin)


def test_import_needs_the_logs_in_the_trusted_root(setup: Setup, tmp_path: Path) -> None:
    setup.add(4)
    setup.store.export(tmp_path / "export.json")
    with pytest.raises(VerificationFailure, match="is not in the trusted root"):
        CheckpointStore(tmp_path / "other", trusted_root=setup.root).import_(
            tmp_path / "export.json", trusted_root(TestLog("x.test"))
        )


# -- an edited store cannot pin (issue 8, finding 10) ------------------------------------------


def _rewrite_with_checksum(setup: Setup, edit: Any) -> None:
    """Edit the state file as an attacker would: change it, then recompute its checksum."""
    import hashlib

    doc = json.loads(setup.state_file.read_text())
    doc.pop("sha256")
    edit(doc)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    doc["sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    setup.state_file.write_text(json.dumps(doc))


def _chain(setup: Setup) -> None:
    setup.add(4)
    setup.add(12, setup.log.consistency_proof(4, 12))
    setup.store.add_anchor(
        setup.log.log_id,
        setup.log.origin,
        2,
        setup.log.root(2),
        setup.log.consistency_proof(2, 12),
        12,
    )


def test_a_checkpoint_root_edited_with_a_recomputed_checksum_cannot_pin(setup: Setup) -> None:
    _chain(setup)
    forged = bytes(32)

    def edit(doc: dict[str, Any]) -> None:
        doc["checkpoints"][1]["root"] = forged.hex()

    _rewrite_with_checksum(setup, edit)
    with pytest.raises(StoreCorruptError, match="checkpoint at size 12 holds a note for another"):
        setup.store.pin(setup.log.log_id, setup.log.origin, 12, forged)


def test_an_anchor_root_edited_with_a_recomputed_checksum_cannot_pin(setup: Setup) -> None:
    _chain(setup)

    def edit(doc: dict[str, Any]) -> None:
        doc["anchors"][0]["root"] = "ab" * 32

    _rewrite_with_checksum(setup, edit)
    with pytest.raises(StoreCorruptError, match="proof from size 2 to 12 does not hold"):
        setup.store.pin(setup.log.log_id, setup.log.origin, 2, bytes.fromhex("ab" * 32))


def test_a_checkpoint_added_by_hand_with_a_forged_note_cannot_pin(setup: Setup) -> None:
    _chain(setup)
    impostor = TestLog(setup.log.hostname, key=None, tree_id=setup.log.tree_id)
    impostor.extend(30)

    def edit(doc: dict[str, Any]) -> None:
        doc["checkpoints"].append(
            {
                "size": 30,
                "root": impostor.root(30).hex(),
                "note": impostor.checkpoint(30),
                "added": "2026-03-01T12:00:00Z",
            }
        )

    _rewrite_with_checksum(setup, edit)
    with pytest.raises(StoreCorruptError, match="checkpoint at size 30 does not verify"):
        setup.store.pin(setup.log.log_id, setup.log.origin, 30, impostor.root(30))


def test_a_stored_anchor_without_a_proof_linking_it_cannot_pin(setup: Setup) -> None:
    _chain(setup)

    def edit(doc: dict[str, Any]) -> None:
        doc["anchors"].append(
            {"size": 7, "root": setup.log.root(7).hex(), "added": "2026-03-01T12:00:00Z"}
        )

    _rewrite_with_checksum(setup, edit)
    with pytest.raises(StoreCorruptError, match="size 7 is not linked to the latest checkpoint"):
        setup.store.pin(setup.log.log_id, setup.log.origin, 7, setup.log.root(7))


def test_an_honest_store_read_again_still_pins(setup: Setup) -> None:
    _chain(setup)
    fresh = CheckpointStore(setup.store.path, trusted_root=setup.root)
    for size in (2, 4, 12):
        fresh.pin(setup.log.log_id, setup.log.origin, size, setup.log.root(size))


def test_pinning_without_a_trusted_root_to_recheck_the_store_is_refused(setup: Setup) -> None:
    _chain(setup)
    unchecked = CheckpointStore(setup.store.path)
    with pytest.raises(UsageError, match="pinning needs the trusted root"):
        unchecked.pin(setup.log.log_id, setup.log.origin, 12, setup.log.root(12))


# -- concurrent honest runs are not a lying log (issue 8, finding 10) ---------------------------


def test_a_proof_made_stale_by_another_run_is_refused_as_stale_without_evidence(
    setup: Setup,
) -> None:
    setup.add(4)
    # Run A read the store at size 4 and fetched the proof 4 -> 9; meanwhile run B moved the
    # store to 12 with its own proof 4 -> 12.
    sizes_a = setup.store.proof_endpoints(setup.log.log_id, setup.log.origin, 9)
    assert sizes_a == (4, 9)
    proof_a = setup.log.consistency_proof(4, 9)
    other_run = CheckpointStore(setup.store.path, trusted_root=setup.root)
    other_run.add(
        setup.checkpoint(12),
        setup.instance,
        setup.log.consistency_proof(4, 12),
        proof_sizes=(4, 12),
    )
    with pytest.raises(StaleProofError, match="the store moved while this ran"):
        setup.store.add(setup.checkpoint(9), setup.instance, proof_a, proof_sizes=sizes_a)
    assert setup.evidence() == []
    # Run A, told so, fetches the proof it now needs (9 is history before 12) and succeeds.
    assert setup.store.proof_endpoints(setup.log.log_id, setup.log.origin, 9) == (9, 12)
    setup.store.add(
        setup.checkpoint(9), setup.instance, setup.log.consistency_proof(9, 12), proof_sizes=(9, 12)
    )


def test_a_checkpoint_another_run_already_pinned_is_unchanged_not_stale(setup: Setup) -> None:
    setup.add(4)
    other_run = CheckpointStore(setup.store.path, trusted_root=setup.root)
    other_run.add(
        setup.checkpoint(9), setup.instance, setup.log.consistency_proof(4, 9), proof_sizes=(4, 9)
    )
    result = setup.store.add(
        setup.checkpoint(9), setup.instance, setup.log.consistency_proof(4, 9), proof_sizes=(4, 9)
    )
    assert result.outcome == "unchanged"


def test_concurrent_checkpoint_adds_never_file_evidence(setup: Setup, tmp_path: Path) -> None:
    """Many honest `checkpoint add` processes at once, each with the proof it read for: some
    may be told to fetch again, none may call the log a liar."""
    import subprocess
    import sys

    setup.log.extend(40)  # size 60
    root_file = tmp_path / "trusted_root.json"
    root_file.write_text(setup.log.trusted_root_json())
    first = tmp_path / "cp-4.txt"
    first.write_text(setup.log.checkpoint(4))
    base = ["--trusted-root", str(root_file), "--checkpoints", str(setup.store.path)]
    cli = [sys.executable, "-m", "offline.cli", "checkpoint", "add"]
    subprocess.run([*cli, str(first), *base], check=True, capture_output=True)
    runs = []
    for size in range(10, 61, 10):
        note = tmp_path / f"cp-{size}.txt"
        note.write_text(setup.log.checkpoint(size))
        proof = tmp_path / f"proof-{size}.json"
        proof.write_text(json.dumps(setup.log.proof_json(4, size)))
        runs.append(
            subprocess.Popen(
                [*cli, str(note), "--proof", str(proof), *base],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    codes = [(r.wait(timeout=120), r.stderr.read() if r.stderr else "") for r in runs]
    assert all(code in (0, 2) for code, _ in codes), codes
    assert any(code == 0 for code, _ in codes)
    for code, err in codes:
        if code == 2:
            assert "the store moved" in err or "did the store move" in err, err
    assert not list(setup.store.path.rglob("evidence/*.json"))


def test_a_proof_between_other_pinned_sizes_is_stale_not_evidence(setup: Setup) -> None:
    """A valid proof 4 -> 20 offered when the store is at 12 and needs 12 -> 20: honest, late."""
    setup.add(4)
    setup.add(12, setup.log.consistency_proof(4, 12))
    with pytest.raises(StaleProofError, match="the proof links sizes 4 and 20"):
        setup.add(20, setup.log.consistency_proof(4, 20))
    assert setup.evidence() == []
    assert not list(setup.store.path.rglob("evidence/*.json"))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
        (lambda d: d["checkpoints"][0].update(size=True), "checkpoints[0].size: expected an"),
        (lambda d: d["checkpoints"][0].update(root="AB" * 32), "checkpoints[0].root: expected 64"),
        (lambda d: d["checkpoints"][0].update(added="2026-03-01T12:00:00"), "has no offset"),
        (lambda d: d.update(proofs="none"), "proofs: expected a list"),
    ],
)
def test_a_state_file_is_read_field_by_field_by_the_strict_reader(
    setup: Setup, edit: Any, reason: str
) -> None:
    """Even with its checksum recomputed, a field of the wrong shape is named, never guessed."""
    _chain(setup)
    _rewrite_with_checksum(setup, edit)
    with pytest.raises(StoreCorruptError, match=re.escape(reason)):
        setup.store.states()


def test_a_store_written_before_logs_were_keyed_by_their_key_is_still_read(
    setup: Setup,
) -> None:
    """Directories named after the origin alone (the earlier layout) still pin."""
    from offline.tlog.checkpoint_files import legacy_dir_name

    _chain(setup)
    legacy = setup.store.path / legacy_dir_name(setup.log.origin)
    setup.state_file.parent.rename(legacy)
    fresh = CheckpointStore(setup.store.path, trusted_root=setup.root)
    assert fresh.pin(setup.log.log_id, setup.log.origin, 12, setup.log.root(12)).size == 12
    fresh.add(setup.checkpoint(20), setup.instance, setup.log.consistency_proof(12, 20))
    assert [p.parent for p in setup.store.path.glob("*/state.json")] == [legacy]
