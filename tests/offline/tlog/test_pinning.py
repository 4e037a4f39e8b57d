"""`airgap verify-bundle` with a checkpoint store: an entry counts as logged only when its
inclusion proof reaches a tree the store has pinned.

Every test builds its own transparency log, signs an artifact with a managed key, logs it, and
verifies the bundle through the CLI's entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.cli.main import main
from tests.bundle_factory import KeySigner, LoggedSignature
from tests.conftest import REPO
from tests.tlog_fixture import TestLog, Witness


class Site:
    """One log, one signer, one signed artifact, and a checkpoint store on disk."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(4)
        self.signer = KeySigner()
        self.artifact = tmp_path / "artifact.bin"
        self.artifact.write_bytes(b"an artifact crossing the gap\n")
        self.entry: LoggedSignature = self.signer.log_artifact(self.log, self.artifact.read_bytes())
        self.log.extend(5)  # size 10
        self.key = tmp_path / "key.pub"
        self.key.write_bytes(self.signer.public_pem)
        self.trusted_root = tmp_path / "trusted_root.json"
        self.trusted_root.write_text(self.log.trusted_root_json())
        self.store = tmp_path / "checkpoints"
        self.store.mkdir()

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def pin(self, size: int, proof_from: int | None = None) -> int:
        """`airgap checkpoint add` of the log's checkpoint at `size`."""
        args = ["checkpoint", "add", str(self.write(f"cp-{size}.txt", self.log.checkpoint(size)))]
        if proof_from is not None:
            lo, hi = sorted((proof_from, size))
            proof = self.log.proof_json(lo, hi)
            args += ["--proof", str(self.write(f"proof-{lo}-{hi}.json", json.dumps(proof)))]
        args += ["--trusted-root", str(self.trusted_root), "--checkpoints", str(self.store)]
        return main(args)

    def verify(self, bundle: str, *extra: str) -> int:
        path = self.write("bundle.json", bundle)
        return main(
            [
                "verify-bundle",
                "--bundle",
                str(path),
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


def test_a_bundle_verifies_without_pinning_when_the_store_does_not_know_its_log(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.verify(site.entry.bundle_json(site.log), "--output", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pinning"][0]["status"] == "not-checked"


def test_an_entry_in_the_pinned_tree_is_pinned(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    capsys.readouterr()
    assert site.verify(site.entry.bundle_json(site.log), "--output", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pinning"][0]["status"] == "pinned"
    assert "size 10" in report["pinning"][0]["message"]


def test_a_good_chain_of_checkpoints_pins_bundles_from_every_link(site: Site) -> None:
    old_bundle = site.entry.bundle_json(site.log)  # checkpoint at 10
    site.log.extend(10)
    assert site.pin(10) == 0
    assert site.pin(20, proof_from=10) == 0
    assert site.verify(old_bundle) == 0
    assert site.verify(site.entry.bundle_json(site.log)) == 0  # checkpoint at 20


def test_an_entry_beyond_the_pinned_size_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    site.log.extend(10)
    capsys.readouterr()
    assert site.verify(site.entry.bundle_json(site.log)) == 1
    err = capsys.readouterr().err
    assert "size 20 is beyond the latest pinned checkpoint (size 10)" in err
    assert site.log.origin in err
    assert "airgap checkpoint" in err


def test_warn_mode_reports_an_unpinned_entry_and_passes(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    site.log.extend(10)
    capsys.readouterr()
    assert site.verify(site.entry.bundle_json(site.log), "--pinning", "warn") == 0
    assert "warning" in capsys.readouterr().err


def test_off_mode_does_not_consult_the_store(site: Site) -> None:
    assert site.pin(10) == 0
    site.log.extend(10)
    assert site.verify(site.entry.bundle_json(site.log), "--pinning", "off") == 0


def test_require_mode_refuses_a_log_the_store_does_not_know(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.verify(site.entry.bundle_json(site.log), "--pinning", "require") == 1
    assert "no pinned checkpoint" in capsys.readouterr().err


def test_an_older_tree_head_needs_a_consistency_proof_to_the_store(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.log.extend(10)
    assert site.pin(20) == 0
    bundle_at_15 = site.entry.bundle_json(site.log, size=15)
    capsys.readouterr()
    assert site.verify(bundle_at_15) == 1
    assert "consistency proof" in capsys.readouterr().err
    # Proving size 15 consistent with the pinned size 20 pins the bundle.
    assert site.pin(15, proof_from=20) == 0
    assert site.verify(bundle_at_15) == 0


def test_a_split_view_is_refused_and_kept_as_evidence(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    # The same log key serves another tree of the same size: a fork that contains our entry.
    fork = TestLog("rekor.airgap.test", key=site.log.key)
    for i in range(4):
        fork.append(f"other entry {i}".encode())
    fork.append(site.entry.body)
    fork.extend(5)
    forked = LoggedSignature(site.entry.digest, site.entry.signature, site.entry.body, 4)
    capsys.readouterr()
    assert site.verify(forked.bundle_json(fork), "--pinning", "warn") == 1
    err = capsys.readouterr().err
    assert "split view" in err.lower()
    evidence = list(site.store.rglob("evidence/*.json"))
    assert evidence, "the conflicting checkpoint must be kept as evidence"


def test_a_forged_bundle_checkpoint_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    impostor = TestLog("rekor.airgap.test")  # another key, same name
    impostor.tree = site.log.tree
    bundle = site.entry.bundle_json(
        site.log, checkpoint=impostor.checkpoint(10, key_id=site.log.key_id)
    )
    assert site.verify(bundle) == 1
    assert "does not verify" in capsys.readouterr().err


def test_a_corrupted_inclusion_proof_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = site.entry.bundle(site.log)
    hashes = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
    hashes[0] = hashes[1]
    assert site.verify(json.dumps(bundle)) == 1
    assert "is not in" in capsys.readouterr().err


def test_a_truncated_store_file_stops_verification_loudly(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    state = next(site.store.rglob("state.json"))
    state.write_bytes(state.read_bytes()[:40])
    capsys.readouterr()
    assert site.verify(site.entry.bundle_json(site.log)) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err
    assert len(err.strip().splitlines()) == 1


def test_a_tampered_artifact_fails_even_when_pinned(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.pin(10) == 0
    bundle = site.entry.bundle_json(site.log)
    site.artifact.write_bytes(b"something else\n")
    assert site.verify(bundle) == 1
    assert "another artifact" in capsys.readouterr().err


def test_a_witness_policy_requires_cosigned_checkpoints(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    witness = Witness("witness.airgap.test")
    policy = site.write("witnesses.txt", f"witness w {witness.vkey}\nquorum w\n")
    plain = site.entry.bundle_json(site.log)
    cosigned = site.entry.bundle_json(site.log, checkpoint=site.log.checkpoint(cosigners=[witness]))
    assert site.verify(cosigned, "--witness-policy", str(policy)) == 0
    capsys.readouterr()
    assert site.verify(plain, "--witness-policy", str(policy)) == 1
    assert "witness quorum w" in capsys.readouterr().err
    # Without a policy, the unknown cosignature is ignored, as C2SP requires.
    assert site.verify(cosigned) == 0


# -- default pinning fails closed (issue 8, finding 2) ------------------------------------------


def _set_only(bundle: dict[str, object]) -> str:
    """The bundle as cosign's legacy format has it: v0.1, a SET, the inclusion proof removed."""
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]  # type: ignore[index]
    return json.dumps(bundle)


def test_a_set_only_entry_of_a_pinned_log_is_refused_by_default_with_what_to_run(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    set_only = _set_only(site.entry.bundle(site.log))
    assert site.verify(set_only) == 0  # the store does not know the log yet: pinning is off
    assert site.pin(10) == 0
    capsys.readouterr()
    assert site.verify(set_only) == 1
    err = capsys.readouterr().err
    assert "has no inclusion proof" in err
    assert "airgap proofs fetch" in err
    assert len(err.strip().splitlines()) == 1
    assert site.verify(set_only, "--pinning", "warn") == 0
    assert site.verify(set_only, "--pinning", "off") == 0


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"tree_id": 42}, id="another-tree-id"),
        pytest.param({"hostname": "rekor.elsewhere.test"}, id="another-host-name"),
    ],
)
def test_the_pinned_key_signing_under_another_origin_is_refused_by_default(
    site: Site, capsys: pytest.CaptureFixture[str], other: dict[str, object]
) -> None:
    assert site.pin(10) == 0
    kwargs: dict[str, object] = {"hostname": site.log.hostname, **other}
    twin = TestLog(key=site.log.key, **kwargs)  # type: ignore[arg-type]
    twin.tree = site.log.tree  # the same entries, shown under an origin the store never saw
    capsys.readouterr()
    assert site.verify(site.entry.bundle_json(twin)) == 1
    err = capsys.readouterr().err
    assert f"log {twin.origin}: not pinned, but its key" in err
    assert site.log.origin in err
    assert not list(site.store.rglob("evidence/*.json"))


def test_another_trusted_logs_key_cannot_sign_under_a_pinned_origin(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two logs in the trusted root: the second signs a fork under the first one's origin. It
    must be refused, and it must not be able to file split-view evidence against the first."""
    intruder = TestLog(site.log.hostname, tree_id=site.log.tree_id)  # same origin, own key
    site.trusted_root.write_text(site.log.trusted_root_json(intruder))
    assert site.pin(10) == 0
    for i in range(4):
        intruder.append(f"intruder entry {i}".encode())
    logged = site.signer.log_artifact(intruder, site.artifact.read_bytes())
    intruder.extend(10 - intruder.size)  # size 10, another root than the pinned one
    capsys.readouterr()
    assert site.verify(logged.bundle_json(intruder)) == 1
    err = capsys.readouterr().err
    assert "another log's key cannot speak for a pinned log" in err
    assert not list(site.store.rglob("evidence/*.json"))


def test_a_misspelled_checkpoints_environment_variable_is_bad_input_not_pinning_off(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = site.write("bundle.json", site.entry.bundle_json(site.log))
    monkeypatch.setenv("AIRGAP_CHECKPOINTS", str(site.tmp / "checkpionts"))
    code = main(
        [
            "verify-bundle",
            "--bundle",
            str(path),
            "--key",
            str(site.key),
            "--trusted-root",
            str(site.trusted_root),
            str(site.artifact),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "checkpionts" in err
    assert "AIRGAP_CHECKPOINTS" in err


def test_the_readme_refused_example_stays_refused_without_its_inclusion_proof(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = REPO / "offline" / "examples"
    trusted_root = str(examples / "trusted_root.json")
    store = tmp_path / "checkpoints"
    store.mkdir()
    add = ["checkpoint", "add", str(examples / "rekor-checkpoint.txt")]
    assert main([*add, "--trusted-root", trusted_root, "--checkpoints", str(store)]) == 0
    bundle = json.loads((examples / "a.txt.older.sigstore.json").read_text())
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    stripped = tmp_path / "stripped.sigstore.json"
    stripped.write_text(json.dumps(bundle))
    capsys.readouterr()
    code = main(
        [
            "verify-bundle",
            "--bundle",
            str(stripped),
            "--certificate-identity",
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
            "--certificate-oidc-issuer",
            "https://token.actions.githubusercontent.com",
            "--trusted-root",
            trusted_root,
            "--checkpoints",
            str(store),
            str(examples / "a.txt"),
        ]
    )
    assert code == 1
    assert "airgap proofs fetch" in capsys.readouterr().err
