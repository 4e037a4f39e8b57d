"""Checkpoints: parsing, verification against a log of the trusted root, witness policies, and
the real checkpoints of the Sigstore conformance suite."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from offline.errors import UsageError, VerificationFailure
from offline.tlog.checkpoint import (
    CheckpointError,
    find_log_for_checkpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from offline.tlog.witness import WitnessPolicy, load_witness_policy, parse_witness_policy
from offline.trust.root import LogInstance, load_trusted_root
from tests.conftest import TESTDATA
from tests.tlog_fixture import TestLog, Witness, note_text, note_with_line, signature_line
from tests.tlog_fixture import trusted_root as make_trusted_root

CONFORMANCE = TESTDATA / "conformance"
ROOT_B64 = base64.b64encode(bytes(range(32))).decode()
SIG = "— example.com AQIDBAU=\n"


def _log(log: TestLog) -> LogInstance:
    return make_trusted_root(log).tlogs[0]


def _v1(entries: int = 5) -> TestLog:
    log = TestLog("rekor.airgap.test")
    log.extend(entries)
    return log


def _v2(entries: int = 5) -> TestLog:
    log = TestLog("log.airgap.test", v2=True)
    log.extend(entries)
    return log


# -- parsing ----------------------------------------------------------------------------------


def test_a_rekor_v1_checkpoint_parses_with_its_timestamp_extension() -> None:
    text = f"rekor.sigstore.dev - 2605736670972794746\n23083062\n{ROOT_B64}\n"
    note = f"{text}Timestamp: 1689177396617352539\n\n{SIG}"
    checkpoint = parse_checkpoint(note)
    assert checkpoint.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert checkpoint.size == 23083062
    assert checkpoint.root_hash == bytes(range(32))
    assert checkpoint.extensions == ("Timestamp: 1689177396617352539",)
    assert checkpoint.is_rekor_v1
    assert checkpoint.signer_name == "rekor.sigstore.dev"
    assert checkpoint.tree_id == 2605736670972794746


def test_a_c2sp_checkpoint_signs_under_its_origin() -> None:
    checkpoint = parse_checkpoint(f"log2025-1.rekor.sigstore.dev\n0\n{ROOT_B64}\n\n{SIG}")
    assert not checkpoint.is_rekor_v1
    assert checkpoint.signer_name == checkpoint.origin
    assert checkpoint.tree_id is None
    assert checkpoint.size == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("origin\n10\n", "2 text lines, needs origin, tree size and root hash"),
        (f"\n10\n{ROOT_B64}\n", "empty origin"),
        (f"origin\n010\n{ROOT_B64}\n", "tree size '010' is not a decimal number"),
        (f"origin\n+10\n{ROOT_B64}\n", "tree size '+10' is not a decimal number"),
        (f"origin\n-1\n{ROOT_B64}\n", "tree size '-1'"),
        (f"origin\n 10\n{ROOT_B64}\n", "tree size ' 10'"),
        (f"origin\n{1 << 64}\n{ROOT_B64}\n", "is not a decimal number"),
        ("origin\n10\nnot base64!\n", "root hash is not base64"),
        ("origin\n10\nAAAA\n", "root hash is 3 bytes, expected 32"),
    ],
)
def test_malformed_checkpoints_are_rejected_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=re.escape(message)):
        parse_checkpoint(text + "\n" + SIG)


def test_a_checkpoint_whose_note_is_malformed_is_rejected() -> None:
    with pytest.raises(CheckpointError, match="no blank line"):
        parse_checkpoint(f"origin\n10\n{ROOT_B64}\n")


# -- verification -----------------------------------------------------------------------------


def test_a_rekor_v1_checkpoint_verifies_against_its_log() -> None:
    log = _v1()
    checkpoint = verify_checkpoint(log.checkpoint(extensions=["Timestamp: 1"]), _log(log))
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (
        log.origin,
        5,
        log.root(),
    )


def test_a_rekor_v2_ed25519_checkpoint_verifies_against_its_log() -> None:
    log = _v2()
    assert verify_checkpoint(log.checkpoint(), _log(log)).size == 5


def test_a_rekor_v2_ecdsa_checkpoint_verifies_against_its_log() -> None:
    log = TestLog("log.airgap.test", v2=True, key=ec.generate_private_key(ec.SECP256R1()))
    log.extend(2)
    assert verify_checkpoint(log.checkpoint(), _log(log)).size == 2


def test_a_forged_checkpoint_signature_is_caught() -> None:
    log = _v1()
    impostor = TestLog(log.hostname, tree_id=log.tree_id)
    impostor.extend(5)
    forged = impostor.checkpoint(key_id=log.key_id)  # the log's key hint, another key
    with pytest.raises(
        CheckpointError,
        match=rf"checkpoint {log.origin} at size 5: signature by rekor.airgap.test "
        rf"\(key ID {log.key_id.hex()}\) does not verify",
    ):
        verify_checkpoint(forged, _log(log))


def test_an_edited_root_breaks_the_signature() -> None:
    log = _v1()
    note = log.checkpoint()
    edited = note.replace(base64.b64encode(log.root()).decode(), ROOT_B64)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(edited, _log(log))


def test_a_wrong_key_hint_leaves_no_signature_from_the_log() -> None:
    log = _v1()
    note = log.checkpoint(key_id=b"\xde\xad\xbe\xef")
    with pytest.raises(
        CheckpointError,
        match=rf"checkpoint {log.origin} at size 5: no signature from a known key "
        rf"\(rekor.airgap.test with key ID {log.key_id.hex()}\); the note is signed by "
        r"rekor.airgap.test \(key ID deadbeef\)",
    ):
        verify_checkpoint(note, _log(log))


def test_a_rekor_v1_signature_under_another_name_is_not_the_logs() -> None:
    log = _v1()
    with pytest.raises(CheckpointError, match="no signature from a known key"):
        verify_checkpoint(log.checkpoint(name="rekor.elsewhere.test"), _log(log))


def test_a_v1_checkpoint_with_a_witness_cosignature_still_verifies() -> None:
    log = _v1()
    note = Witness("witness.example").cosign(log.checkpoint())
    assert len(parse_checkpoint(note).note.signatures) == 2
    assert verify_checkpoint(note, _log(log)).size == 5


def test_unknown_signature_lines_are_ignored_wherever_they_are() -> None:
    log = _v2()
    note = log.checkpoint()
    text = note_text(note)
    stranger = signature_line("stranger.example", b"\x01\x02\x03\x04", b"x" * 64)
    same_name = signature_line(log.origin, b"\x09\x09\x09\x09", b"y" * 70)
    reordered = f"{text}\n{stranger}\n{note[len(text) + 1 :]}{same_name}\n"
    assert verify_checkpoint(reordered, _log(log)).size == 5


def test_a_rekor_v2_origin_must_be_the_logs_hostname() -> None:
    log = TestLog("log.airgap.test", v2=True, base_url="https://rekor.internal.test:8443/api")
    log.extend(1)
    with pytest.raises(
        CheckpointError,
        match=re.escape("origin does not match the log's hostname 'rekor.internal.test'"),
    ):
        verify_checkpoint(log.checkpoint(), _log(log))


def test_a_rekor_v2_checkpoint_needs_the_logs_own_signature() -> None:
    log = _v2()
    witness = Witness("witness.example")
    only_witness = witness.cosign(log.checkpoint(key_id=b"\x00\x00\x00\x00"))
    policy = parse_witness_policy(f"witness w {witness.vkey}\nquorum w\n")
    with pytest.raises(
        CheckpointError, match=re.escape("not signed by the log https://log.airgap.test")
    ):
        verify_checkpoint(only_witness, _log(log), policy)


def test_checkpoint_errors_are_verification_failures() -> None:
    assert issubclass(CheckpointError, VerificationFailure)


# -- choosing the log -------------------------------------------------------------------------


def test_the_log_is_selected_among_several_by_key_hint() -> None:
    first, second, third = _v1(), TestLog("other.airgap.test"), _v2()
    second.extend(7)
    root = make_trusted_root(first, second, third)
    checkpoint, log = find_log_for_checkpoint(second.checkpoint(), root)
    assert (log.base_url, checkpoint.size) == ("https://other.airgap.test", 7)
    checkpoint, log = find_log_for_checkpoint(third.checkpoint(), root)
    assert log.base_url == "https://log.airgap.test"


def test_a_checkpoint_from_a_log_outside_the_trusted_root_is_refused() -> None:
    log, stranger = _v1(), TestLog("stranger.airgap.test")
    stranger.extend(3)
    with pytest.raises(CheckpointError, match="no log in the trusted root matches its key IDs"):
        find_log_for_checkpoint(stranger.checkpoint(), make_trusted_root(log))


def test_a_forged_checkpoint_is_refused_when_the_log_is_found_by_hint() -> None:
    log = _v1()
    impostor = TestLog(log.hostname, tree_id=log.tree_id)
    impostor.extend(5)
    with pytest.raises(CheckpointError, match="does not verify"):
        find_log_for_checkpoint(impostor.checkpoint(key_id=log.key_id), make_trusted_root(log))


# -- witnesses --------------------------------------------------------------------------------


def _witnesses() -> list[Witness]:
    return [Witness(f"witness{i}.example") for i in range(3)]


def _two_of_three(witnesses: list[Witness]) -> WitnessPolicy:
    lines = [f"witness w{i} {w.vkey} https://w{i}.example" for i, w in enumerate(witnesses)]
    return parse_witness_policy("\n".join([*lines, "group g 2 w0 w1 w2", "quorum g", ""]))


def test_a_two_of_three_witness_quorum_is_met_by_two_cosignatures() -> None:
    log, witnesses = _v2(), _witnesses()
    note = log.checkpoint(cosigners=witnesses[:2])
    checkpoint = verify_checkpoint(note, _log(log), _two_of_three(witnesses))
    assert [(c.witness, c.key_name) for c in checkpoint.cosignatures] == [
        ("w0", "witness0.example"),
        ("w1", "witness1.example"),
    ]
    assert checkpoint.cosignatures[0].timestamp == 1_700_000_000
    assert checkpoint.cosignatures[0].time.year == 2023


def test_a_two_of_three_witness_quorum_is_not_met_by_one_cosignature() -> None:
    log, witnesses = _v1(), _witnesses()
    note = log.checkpoint(cosigners=witnesses[2:])
    with pytest.raises(
        CheckpointError,
        match=r"witness quorum g \(2 of w0, w1, w2\) not met \(valid cosignatures from: w2\)",
    ):
        verify_checkpoint(note, _log(log), _two_of_three(witnesses))


def test_a_bad_cosignature_from_a_policy_witness_rejects_the_checkpoint() -> None:
    log, witnesses = _v2(), _witnesses()
    note = log.checkpoint(cosigners=witnesses[:2])
    bad = signature_line(
        witnesses[2].name,
        witnesses[2].key_id,
        witnesses[2].cosignature(log.checkpoint(size=4), timestamp=1_700_000_000),
    )
    with pytest.raises(CheckpointError, match=r"signature by witness2.example .* does not verify"):
        verify_checkpoint(note_with_line(note, bad), _log(log), _two_of_three(witnesses))


def test_cosignatures_from_witnesses_outside_the_policy_do_not_count() -> None:
    log, witnesses = _v2(), _witnesses()
    note = log.checkpoint(cosigners=[witnesses[0], Witness("stranger.example")])
    with pytest.raises(CheckpointError, match="not met"):
        verify_checkpoint(note, _log(log), _two_of_three(witnesses))


def test_nested_groups_combine_any_and_all() -> None:
    log, (a, b, c) = _v2(), _witnesses()
    policy = parse_witness_policy(
        f"witness a {a.vkey}\nwitness b {b.vkey}\nwitness c {c.vkey}\n"
        "group ab any a b\ngroup both all ab c\nquorum both\n"
    )
    assert verify_checkpoint(log.checkpoint(cosigners=[b, c]), _log(log), policy)
    with pytest.raises(CheckpointError, match="not met"):
        verify_checkpoint(log.checkpoint(cosigners=[a, b]), _log(log), policy)


def test_quorum_none_needs_no_cosignature() -> None:
    log = _v2()
    policy = parse_witness_policy("# no witnesses yet\nquorum none\n")
    assert verify_checkpoint(log.checkpoint(), _log(log), policy).cosignatures == ()


def test_a_policy_loads_from_a_file_with_comments_and_log_lines(tmp_path: Path) -> None:
    witness = Witness("witness.example")
    path = tmp_path / "policy"
    path.write_text(
        "# the log itself comes from the trusted root\nlog ignored+00000000+AA==\n\n"
        f"  witness\tw  {witness.vkey}  https://witness.example/\n"
        "quorum w\n"
    )
    policy = load_witness_policy(path)
    assert list(policy.witnesses) == ["w"]
    assert policy.satisfied({"w"}) and not policy.satisfied(set())


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("group g any w\nquorum g\n", "line 1: group g: member 'w' is not defined above"),
        ("witness w {vkey}\nwitness w {vkey2}\nquorum w\n", "line 2: 'w' is already defined"),
        ("witness w {vkey}\nwitness v {vkey}\nquorum w\n", "the same key is already listed"),
        ("witness w {vkey}\ngroup g 2 w\nquorum g\n", "threshold '2' must be any, all or 1..1"),
        ("witness w {vkey}\ngroup g 0 w\nquorum g\n", "threshold '0'"),
        ("witness w {vkey}\ngroup g any w w\nquorum g\n", "listed twice"),
        ("witness w {vkey}\n", "no quorum line"),
        ("witness w {vkey}\nquorum w\nquorum none\n", "exactly one quorum line"),
        ("quorum x\n", "quorum 'x' is not defined"),
        ("witness none {vkey}\nquorum none\n", "'none' is reserved"),
        ("witness w {edkey}\nquorum w\n", "not a cosignature (type 0x04) key"),
        ("witness w bad-vkey\nquorum w\n", "line 1: vkey 'bad-vkey'"),
        ("trust everything\nquorum none\n", "unknown keyword 'trust'"),
        ("quorum none\x0b\n", "control character"),
    ],
)
def test_malformed_witness_policies_are_rejected_with_the_line(policy: str, message: str) -> None:
    first, second = Witness("a.example"), Witness("b.example")
    text = policy.format(vkey=first.vkey, vkey2=second.vkey, edkey=first.ed25519_vkey)
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_witness_policy(text, "policy.txt")


def test_a_missing_witness_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_witness_policy(tmp_path / "absent")


# -- real checkpoints from the conformance suite ----------------------------------------------


def _conformance_cases() -> list[Path]:
    cases = []
    for case in sorted(p for p in CONFORMANCE.iterdir() if p.is_dir()):
        try:
            bundle = json.loads((case / "bundle.sigstore.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        entry = bundle["verificationMaterial"]["tlogEntries"][0]
        if (entry.get("inclusionProof") or {}).get("checkpoint"):
            cases.append(case)
    assert len(cases) > 30, f"conformance cases missing under {CONFORMANCE}"
    return cases


def _envelope_and_log(case: Path) -> tuple[str, LogInstance | None]:
    bundle = json.loads((case / "bundle.sigstore.json").read_text())
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    root_path = case / "trusted_root.json"
    if not root_path.exists():
        root_path = CONFORMANCE / "trusted_root.production.json"
    root = load_trusted_root(root_path)
    log = root.tlog_by_id(base64.b64decode(entry["logId"]["keyId"]))
    return entry["inclusionProof"]["checkpoint"]["envelope"], log


MUST_FAIL = re.compile(r"invalid-checkpoint-signature_fail|rekor2-checkpoint-missing-.*_fail")


@pytest.mark.parametrize("case", _conformance_cases(), ids=lambda p: p.name)
def test_conformance_checkpoints_verify_unless_the_case_breaks_them(case: Path) -> None:
    """Other `_fail` cases break something else (certificate, inclusion proof, artifact...):
    their checkpoints are genuine and must verify."""
    envelope, log = _envelope_and_log(case)
    if case.name == "bundle-from-wrong-instance_fail":
        assert log is None  # signed by staging, checked against production
        return
    assert log is not None
    if MUST_FAIL.fullmatch(case.name):
        with pytest.raises(CheckpointError):
            verify_checkpoint(envelope, log)
    else:
        checkpoint = verify_checkpoint(envelope, log)
        assert checkpoint.size > 0


def test_every_must_fail_checkpoint_case_is_present() -> None:
    names = {p.name for p in _conformance_cases()}
    assert {
        "invalid-checkpoint-signature_fail",
        "rekor2-checkpoint-missing-log-signature_fail",
        "rekor2-checkpoint-missing-origin_fail",
        "rekor2-checkpoint-missing-size_fail",
    } <= names


def test_a_checkpoint_from_another_sigstore_instance_matches_no_trusted_log() -> None:
    envelope, _ = _envelope_and_log(CONFORMANCE / "bundle-from-wrong-instance_fail")
    production = load_trusted_root(CONFORMANCE / "trusted_root.production.json")
    with pytest.raises(CheckpointError, match="no log in the trusted root matches"):
        find_log_for_checkpoint(envelope, production)


def test_real_witness_cosignatures_on_a_sigstage_checkpoint_meet_a_three_of_three_quorum() -> None:
    # The published cosigning keys of three witnesses of the public witness network.
    policy = parse_witness_policy(
        "witness geomys witness.navigli.sunlight.geomys.org+a3e00fe2+"
        "BNy/co4C1Hn1p+INwJrfUlgz7W55dSZReusH/GhUhJ/G\n"
        "witness mullvad witness.stagemole.eu+67f7aea0+"
        "BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv\n"
        "witness trustfabric staging.witness.transparency.goog/ring-any-bells+2e1a8dc9+"
        "BG5JTpLc3FJtwzgh1Uv+Qelz9qeOH2bfWjS1s0s+y4rL\n"
        "group all3 all geomys mullvad trustfabric\nquorum all3\n"
    )
    case = CONFORMANCE / "rekor2-dsse-happy-path"
    envelope, _ = _envelope_and_log(case)
    checkpoint, log = find_log_for_checkpoint(
        envelope, load_trusted_root(case / "trusted_root.json"), policy
    )
    assert log.hostname == "log2025-alpha3.rekor.sigstage.dev"
    assert sorted(c.witness for c in checkpoint.cosignatures) == [
        "geomys",
        "mullvad",
        "trustfabric",
    ]
    assert all(c.time.year >= 2025 for c in checkpoint.cosignatures)
