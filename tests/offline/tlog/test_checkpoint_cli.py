"""`airgap checkpoint add|list|export|import`, driven through the subcommand's own parser."""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from offline.cli import checkpoint as checkpoint_cli
from offline.errors import UsageError, VerificationFailure
from offline.tlog.checkpoint import CheckpointError
from offline.tlog.checkpoint_store import (
    CheckpointStore,
    ConsistencyProofRequired,
    InconsistentLogError,
    StaleProofError,
)
from tests.tlog_fixture import TestLog, Witness


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="airgap")
    checkpoint_cli.register(parser.add_subparsers())
    args = parser.parse_args(["checkpoint", *argv])
    code: int = args.handler(args)
    return code


class Site:
    """A log, its trusted root on disk, and a store directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(30)
        self.trusted_root = tmp_path / "trusted_root.json"
        self.trusted_root.write_text(self.log.trusted_root_json())
        self.store_dir = tmp_path / "store"

    def write(self, name: str, content: str | dict[str, Any] | list[Any]) -> Path:
        path = self.tmp / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    def add(self, *argv: str | Path) -> int:
        return run(
            "add",
            *map(str, argv),
            "--trusted-root",
            str(self.trusted_root),
            "--checkpoints",
            str(self.store_dir),
        )

    @property
    def store(self) -> CheckpointStore:
        from offline.trust.root import load_trusted_root

        return CheckpointStore(self.store_dir, trusted_root=load_trusted_root(self.trusted_root))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_add_pins_a_checkpoint_note_from_a_file(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.add(site.write("cp", site.log.checkpoint(10))) == 0
    assert capsys.readouterr().out.startswith(f"added: {site.log.origin} at size 10 (root ")
    assert (
        site.store.pin(site.log.log_id, site.log.origin, 10, site.log.root(10)).pinned_by
        == "checkpoint"
    )


def test_add_reads_a_checkpoint_from_stdin(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(site.log.checkpoint(7).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert site.add() == 0
    assert "added:" in capsys.readouterr().out
    assert site.store.knows(site.log.log_id, site.log.origin)


def test_add_takes_rekors_log_info_with_its_inactive_shards(site: Site) -> None:
    shard = TestLog("rekor.airgap.test", key=site.log.key, tree_id=77)
    shard.extend(4)
    info = site.log.log_info(12, inactive=[shard])
    assert site.add(site.write("loginfo.json", info), "--output", "json") == 0
    assert site.store.origins() == sorted([site.log.origin, shard.origin])


def test_add_with_a_rekor_consistency_proof_moves_the_store_forward(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add(site.write("old", site.log.checkpoint(8)))
    capsys.readouterr()
    proof = site.write("proof.json", site.log.proof_json(8, 21))
    new = site.write("new", site.log.checkpoint(21))
    assert site.add(new, "--proof", proof, "--output", "json") == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["size"], result["previous_latest_size"]) == ("added", 21, 8)
    assert result["log"] == "https://rekor.airgap.test"


def test_add_accepts_a_proof_as_a_list_of_base64_hashes_for_older_history(site: Site) -> None:
    site.add(site.write("latest", site.log.checkpoint(25)))
    hashes = [base64.b64encode(h).decode() for h in site.log.consistency_proof(9, 25)]
    older = site.write("older", site.log.checkpoint(9))
    assert site.add(older, "--proof", site.write("p", hashes)) == 0
    state = site.store.state(site.log.log_id, site.log.origin)
    assert state is not None and [c.size for c in state.checkpoints] == [9, 25]


def test_add_refuses_a_proof_that_ends_at_another_root(site: Site) -> None:
    site.add(site.write("old", site.log.checkpoint(8)))
    wrong = site.write("proof.json", site.log.proof_json(8, 20))
    with pytest.raises(StaleProofError, match="now needs a proof from size 8 to 21, ending at"):
        site.add(site.write("new", site.log.checkpoint(21)), "--proof", wrong)
    latest = site.store.latest(site.log.log_id, site.log.origin)
    assert latest is not None and latest.size == 8


def test_add_refuses_a_corrupted_proof_and_says_where_the_evidence_is(site: Site) -> None:
    site.add(site.write("old", site.log.checkpoint(8)))
    proof = site.log.proof_json(8, 21)
    proof["hashes"][0] = "ab" * 32
    with pytest.raises(InconsistentLogError, match=r"evidence saved to .*/evidence/.*\.json"):
        site.add(site.write("new", site.log.checkpoint(21)), "--proof", site.write("p", proof))


def test_add_without_a_needed_proof_says_which_proof_to_fetch(site: Site) -> None:
    site.add(site.write("old", site.log.checkpoint(8)))
    with pytest.raises(
        ConsistencyProofRequired,
        match=re.escape(f"/api/v1/log/proof?firstSize=8&lastSize=21&treeID={site.log.tree_id}"),
    ):
        site.add(site.write("new", site.log.checkpoint(21)))


def test_add_refuses_a_proof_nothing_needs(site: Site) -> None:
    proof = site.write("proof.json", site.log.proof_json(8, 21))
    with pytest.raises(UsageError, match="no checkpoint in the input needs a consistency proof"):
        site.add(site.write("cp", site.log.checkpoint(21)), "--proof", proof)


def test_add_refuses_a_forged_checkpoint(site: Site) -> None:
    impostor = TestLog(site.log.hostname, tree_id=site.log.tree_id)
    impostor.extend(3)
    with pytest.raises(CheckpointError, match="does not verify"):
        site.add(site.write("cp", impostor.checkpoint(key_id=site.log.key_id)))
    assert not site.store.knows(site.log.log_id, site.log.origin)


def test_add_refuses_log_info_whose_fields_disagree_with_its_signed_head(site: Site) -> None:
    info = site.log.log_info(12)
    info["treeSize"] = 13
    with pytest.raises(VerificationFailure, match="treeSize/rootHash disagree with the signed"):
        site.add(site.write("loginfo.json", info))


def test_add_enforces_a_witness_policy(site: Site) -> None:
    witness = Witness("witness.example")
    policy = site.write("policy", f"witness w {witness.vkey}\nquorum w\n")
    with pytest.raises(CheckpointError, match="witness quorum w not met"):
        site.add(site.write("cp", site.log.checkpoint(5)), "--witness-policy", policy)
    cosigned = site.write("cosigned", site.log.checkpoint(5, cosigners=[witness]))
    assert site.add(cosigned, "--witness-policy", policy) == 0


def test_add_without_any_trusted_root_says_how_to_give_one(site: Site) -> None:
    with pytest.raises(UsageError, match="no trusted root: give the command one"):
        run("add", str(site.write("cp", site.log.checkpoint(5))), "--checkpoints", "x")


def test_add_of_a_missing_file_is_a_usage_error(site: Site) -> None:
    with pytest.raises(UsageError, match=r"checkpoint file .*absent does not exist"):
        site.add(site.tmp / "absent")


def test_list_shows_each_log_with_its_latest_checkpoint(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add(site.write("a", site.log.checkpoint(4)))
    site.add(
        site.write("b", site.log.checkpoint(9)),
        "--proof",
        site.write("p", site.log.proof_json(4, 9)),
    )
    capsys.readouterr()
    trust = ("--trusted-root", str(site.trusted_root))
    assert run("list", "--checkpoints", str(site.store_dir), *trust) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ORIGIN", "CHECKPOINTS", "LATEST", "SIZE", "ROOT", "AGE"]
    assert row.startswith(site.log.origin)
    assert row.split()[-4:-1] == ["2", "9", site.log.root(9).hex()[:16] + "…"]
    assert run("list", "--checkpoints", str(site.store_dir), "--output", "json", *trust) == 0
    [entry] = json.loads(capsys.readouterr().out)["logs"]
    assert (entry["origin"], entry["checkpoints"], entry["latest_size"]) == (site.log.origin, 2, 9)
    assert entry["latest_root"] == site.log.root(9).hex()
    assert 0 <= entry["age_seconds"] < 60
    assert entry["verified"] is True


def test_list_without_a_trusted_root_says_the_signatures_were_not_checked(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add(site.write("a", site.log.checkpoint(4)))
    capsys.readouterr()
    assert run("list", "--checkpoints", str(site.store_dir)) == 0
    assert "signatures not re-checked" in capsys.readouterr().out
    assert run("list", "--checkpoints", str(site.store_dir), "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["logs"][0]["verified"] is False


def test_list_of_an_empty_store_says_so(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list", "--checkpoints", str(site.store_dir)) == 0
    assert capsys.readouterr().out == f"no checkpoints pinned in {site.store_dir}\n"


def test_export_then_import_moves_the_store_across_the_gap(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add(site.write("a", site.log.checkpoint(4)))
    out = site.tmp / "export.json"
    assert run("export", str(out), "--checkpoints", str(site.store_dir)) == 0
    other = site.tmp / "other"
    capsys.readouterr()
    code = run(
        "import", str(out), "--trusted-root", str(site.trusted_root), "--checkpoints", str(other)
    )
    assert code == 0
    assert capsys.readouterr().out == (
        f"{site.log.origin}: 1 checkpoint(s) and 0 anchor(s) added, latest size 4\n"
    )
    assert CheckpointStore(other).state(site.log.log_id, site.log.origin) == site.store.state(
        site.log.log_id, site.log.origin
    )


def test_export_to_stdout_writes_the_export_document(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add(site.write("a", site.log.checkpoint(4)))
    capsys.readouterr()
    assert run("export", "-", "--checkpoints", str(site.store_dir)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "airgap-checkpoint-export/v1"
    assert [log["origin"] for log in doc["logs"]] == [site.log.origin]


def test_checkpoint_needs_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        run()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not a checkpoint at all\n", id="no-signature-block"),
        pytest.param("origin\n12x\nAAAA\n\n— origin AAAAAAAAAAAA\n", id="size-not-a-number"),
        pytest.param("origin\n12\n!!!\n\n— origin AAAAAAAAAAAA\n", id="root-not-base64"),
        pytest.param("\x00\x01\x02", id="binary"),
    ],
)
def test_a_malformed_checkpoint_is_bad_input_exit_2(
    site: Site, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    from offline.cli.main import main

    path = site.write("bad.txt", text)
    argv = ["checkpoint", "add", str(path), "--trusted-root", str(site.trusted_root)]
    assert main([*argv, "--checkpoints", str(site.store_dir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1


def test_a_well_formed_checkpoint_with_a_bad_signature_fails_verification_exit_1(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    from offline.cli.main import main

    impostor = TestLog(site.log.hostname, tree_id=site.log.tree_id)
    impostor.extend(3)
    path = site.write("forged.txt", impostor.checkpoint(3, key_id=site.log.key_id))
    argv = ["checkpoint", "add", str(path), "--trusted-root", str(site.trusted_root)]
    assert main([*argv, "--checkpoints", str(site.store_dir)]) == 1
