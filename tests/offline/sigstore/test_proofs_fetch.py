"""`airgap proofs fetch`: entries that carry only a SET (cosign's legacy format) or a proof to an
unpinned tree get a fresh inclusion proof to a pinned checkpoint, after which verification needs
no Rekor at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from offline.cli.main import main
from tests.bundle_factory import KeySigner, legacy_bundle, rekor_entry
from tests.fake_rekor import FakeRekor, serve
from tests.tlog_fixture import TestLog


class Site:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(3)
        signer = KeySigner()
        self.artifact = tmp_path / "artifact.bin"
        self.artifact.write_bytes(b"signed before the gap\n")
        self.logged = signer.log_artifact(self.log, self.artifact.read_bytes())
        self.log.extend(6)
        self.key = tmp_path / "key.pub"
        self.key.write_bytes(signer.public_pem)
        self.trusted_root = tmp_path / "trusted_root.json"
        self.trusted_root.write_text(self.log.trusted_root_json())
        self.store = tmp_path / "checkpoints"
        self.rekor = FakeRekor(self.log)
        self.rekor.entries[self.logged.index] = lambda: rekor_entry(self.logged, self.log)
        self.bundle = tmp_path / "artifact.sigstore.json"

    def write_bundle(self, bundle: dict[str, Any]) -> None:
        self.bundle.write_text(json.dumps(bundle))

    def fetch(self, url: str, *extra: str) -> int:
        return main(
            [
                "proofs",
                "fetch",
                "--rekor",
                url,
                "--trusted-root",
                str(self.trusted_root),
                "--checkpoints",
                str(self.store),
                *extra,
                str(self.bundle),
            ]
        )

    def verify(self, *extra: str) -> int:
        return main(
            [
                "verify-bundle",
                "--bundle",
                str(self.bundle),
                "--key",
                str(self.key),
                "--trusted-root",
                str(self.trusted_root),
                "--checkpoints",
                str(self.store),
                *extra,
                str(self.artifact),
            ]
        )


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_a_set_only_entry_cannot_be_pinned(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    site.store.mkdir()
    assert site.verify("--pinning", "off") == 0
    capsys.readouterr()
    assert site.verify("--pinning", "require") == 1
    assert "airgap proofs fetch" in capsys.readouterr().err


def test_a_fetched_proof_makes_the_entry_verifiable_offline_and_pinned(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
    assert f"entry {site.logged.index} added (tree size 10)" in capsys.readouterr().out
    # Rekor is gone now.
    assert site.verify("--pinning", "require", "--output", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pinning"][0]["status"] == "pinned"


def test_a_proof_to_an_unpinned_tree_is_replaced_and_the_store_moves_forward(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0  # pins size 10 on first use
        assert site.fetch(url) == 0  # the proof now reaches a pinned tree: kept
        assert "kept (tree size 10)" in capsys.readouterr().out.splitlines()[-1]
        site.log.extend(5)
        site.write_bundle(site.logged.bundle(site.log, size=4))  # an older, unpinned tree
        assert site.fetch(url) == 0
    assert "added (tree size 15)" in capsys.readouterr().out
    assert site.verify("--pinning", "require") == 0


def test_a_rekor_that_records_another_body_is_refused_and_the_bundle_left_alone(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    before = site.bundle.read_bytes()

    def lying_entry() -> dict[str, Any]:
        entry = rekor_entry(site.logged, site.log)
        next(iter(entry.values()))["body"] = "e30="  # {}
        return entry

    site.rekor.entries[site.logged.index] = lying_entry
    with serve(site.rekor) as url:
        assert site.fetch(url) == 1
    assert "another body" in capsys.readouterr().err
    assert site.bundle.read_bytes() == before


def test_a_bad_inclusion_proof_from_rekor_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    before = site.bundle.read_bytes()

    def bad_proof() -> dict[str, Any]:
        entry = rekor_entry(site.logged, site.log)
        hashes = next(iter(entry.values()))["verification"]["inclusionProof"]["hashes"]
        hashes[0] = hashes[-1]
        return entry

    site.rekor.entries[site.logged.index] = bad_proof
    with serve(site.rekor) as url:
        assert site.fetch(url) == 1
    assert "does not hold" in capsys.readouterr().err
    assert site.bundle.read_bytes() == before


def test_proofs_can_be_written_to_another_directory(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    out = tmp_path / "completed"
    out.mkdir()
    with serve(site.rekor) as url:
        assert site.fetch(url, "--out", str(out)) == 0
    completed = json.loads((out / site.bundle.name).read_text())
    assert "inclusionProof" in completed["verificationMaterial"]["tlogEntries"][0]
    assert (
        "inclusionProof"
        not in json.loads(site.bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
    )


def test_the_first_entry_of_a_log_written_without_zero_fields_gets_its_proof(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cosign (protojson) leaves out zero values: the entry at index 0 has no logIndex, and its
    # proof to an early tree neither logIndex nor hashes.
    log = TestLog("rekor.airgap.test")
    signer = KeySigner()
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"the log's first entry\n")
    logged = signer.log_artifact(log, artifact.read_bytes())
    assert logged.index == 0
    bundle = logged.bundle(log)  # a proof at size 1: no hashes
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    del entry["logIndex"], entry["inclusionProof"]["logIndex"]
    entry["inclusionProof"].pop("hashes")
    log.extend(4)
    (tmp_path / "trusted_root.json").write_text(log.trusted_root_json())
    (tmp_path / "key.pub").write_bytes(signer.public_pem)
    bundle_path = tmp_path / "artifact.sigstore.json"
    bundle_path.write_text(json.dumps(bundle))
    rekor = FakeRekor(log)
    rekor.entries[0] = lambda: rekor_entry(logged, log)
    common = ["--trusted-root", str(tmp_path / "trusted_root.json")]
    common += ["--checkpoints", str(tmp_path / "checkpoints")]
    with serve(rekor) as url:
        assert main(["checkpoint", "fetch", "--rekor", url, *common]) == 0
        assert main(["proofs", "fetch", "--rekor", url, *common, str(bundle_path)]) == 0
    assert "entry 0 added (tree size 5)" in capsys.readouterr().out
    verify = ["verify-bundle", "--bundle", str(bundle_path), "--key", str(tmp_path / "key.pub")]
    assert main([*verify, *common, "--pinning", "require", str(artifact)]) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("treeSize", "not a number"),
        ("logIndex", ["a", "list"]),
        ("rootHash", 42),
        ("hashes", "not a list"),
        ("checkpoint", None),
    ],
)
def test_a_malformed_answer_from_rekor_is_one_line_and_the_bundle_left_alone(
    site: Site, capsys: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    site.write_bundle(legacy_bundle(site.logged, site.log))
    before = site.bundle.read_bytes()

    def malformed() -> dict[str, Any]:
        entry = rekor_entry(site.logged, site.log)
        next(iter(entry.values()))["verification"]["inclusionProof"][field] = value
        return entry

    site.rekor.entries[site.logged.index] = malformed
    with serve(site.rekor) as url:
        assert site.fetch(url) in (1, 2)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert site.bundle.read_bytes() == before
