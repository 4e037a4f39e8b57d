"""C2SP signed notes: parsing, key IDs of every signer kind, and the verification rules."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from offline.errors import UsageError, VerificationFailure
from offline.tlog.note import (
    MAX_SIGNATURES,
    CosignatureVerifier,
    KeyVerifier,
    NoteError,
    NoteSignature,
    c2sp_log_verifier,
    cosignature_verifier,
    parse_note,
    parse_vkey,
    rekor_v1_verifier,
    verify_note,
)
from offline.trust.root import load_trusted_root
from tests.conftest import TESTDATA
from tests.tlog_fixture import TestLog, Witness, note_text, note_with_line, signature_line

CONFORMANCE = TESTDATA / "conformance"


def _der(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _line(name: str, payload: bytes) -> str:
    return f"— {name} {base64.b64encode(payload).decode()}"


def _sig_line(name: str = "example.com/log") -> str:
    return _line(name, b"\x01\x02\x03\x04" + b"s" * 64)


# -- parsing ----------------------------------------------------------------------------------


def test_parse_splits_text_and_signatures_and_the_message_keeps_the_final_newline() -> None:
    note = parse_note(f"origin\n5\nroot\n\n{_sig_line()}\n")
    assert note.text == "origin\n5\nroot\n"
    assert note.message == b"origin\n5\nroot\n"
    assert note.signatures == (
        NoteSignature(name="example.com/log", key_id=b"\x01\x02\x03\x04", signature=b"s" * 64),
    )


def test_the_last_blank_line_separates_text_from_signatures() -> None:
    note = parse_note(f"first paragraph\n\nsecond paragraph\n\n{_sig_line()}\n")
    assert note.text == "first paragraph\n\nsecond paragraph\n"
    # Even a line that looks like a signature is text when a blank line follows it.
    note = parse_note(f"text\n\n{_sig_line('a')}\n\n{_sig_line('b')}\n")
    assert note.text == f"text\n\n{_sig_line('a')}\n"
    assert [s.name for s in note.signatures] == ["b"]


def test_parse_accepts_bytes_and_round_trips_through_serialize() -> None:
    raw = f"text\n\n{_sig_line('a')}\n{_sig_line('b')}\n"
    note = parse_note(raw.encode())
    assert note.serialize() == raw
    assert [s.name for s in note.signatures] == ["a", "b"]


def test_sixteen_signatures_are_accepted() -> None:
    lines = "".join(f"{_sig_line(f'w{i}')}\n" for i in range(16))
    assert len(parse_note(f"text\n\n{lines}").signatures) == 16


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("text\n" + _sig_line() + "\n", "no blank line"),
        ("text\n\n", "no signature lines"),
        ("text\n\n" + _sig_line(), "does not end with a newline"),
        ("te\txt\n\n" + _sig_line() + "\n", "control character U+0009"),
        ("text\r\n\n" + _sig_line() + "\n", "control character U+000D"),
        ("text\n\n- example.com/log AQIDBAU=\n", "does not start with '— '"),
        ("text\n\n— example.com/log\n", "no valid key name"),
        ("text\n\n— bad+name AQIDBAU=\n", "no valid key name"),
        ("text\n\n— example.com/log not*base64\n", "not valid base64"),
        ("text\n\n— example.com/log AQIDBA==\n", "too short"),
    ],
)
def test_malformed_notes_are_rejected_with_the_reason(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=re.escape(message)):
        parse_note(note)


def test_too_many_signature_lines_are_rejected() -> None:
    lines = "".join(f"{_sig_line()}\n" for _ in range(MAX_SIGNATURES + 1))
    with pytest.raises(NoteError, match=f"more than {MAX_SIGNATURES}"):
        parse_note(f"text\n\n{lines}")


def test_a_note_that_is_not_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        parse_note(b"\xff\xfe\n\n" + _sig_line().encode() + b"\n")


def test_note_errors_are_verification_failures() -> None:
    assert issubclass(NoteError, VerificationFailure)


# -- key IDs ----------------------------------------------------------------------------------


def test_rekor_v1_key_id_is_the_der_hash_for_ecdsa_and_for_ed25519() -> None:
    for private in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()):
        der = _der(private)
        verifier = rekor_v1_verifier("rekor.example", private.public_key(), der)
        assert verifier.key_id == hashlib.sha256(der).digest()[:4]


def test_c2sp_ed25519_key_id_hashes_name_type_and_raw_key() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    verifier = c2sp_log_verifier("log.example", private.public_key(), _der(private))
    assert verifier.key_id == hashlib.sha256(b"log.example\n\x01" + raw).digest()[:4]
    assert verifier.key_id != hashlib.sha256(_der(private)).digest()[:4]


def test_c2sp_ecdsa_key_id_is_the_der_hash() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    verifier = c2sp_log_verifier("log.example", private.public_key(), _der(private))
    assert verifier.key_id == hashlib.sha256(_der(private)).digest()[:4]


def test_cosignature_key_id_uses_signature_type_4() -> None:
    witness = Witness("witness.example/w1")
    verifier = cosignature_verifier(witness.name, witness.key.public_key())
    raw = witness.raw_public_key
    assert verifier.key_id == hashlib.sha256(b"witness.example/w1\n\x04" + raw).digest()[:4]


def test_the_production_rekor_key_id_is_the_first_four_bytes_of_its_log_id() -> None:
    root = load_trusted_root(CONFORMANCE / "trusted_root.production.json")
    log = root.tlogs[0]
    verifier = rekor_v1_verifier(log.hostname, log.public_key, log.public_key_der)
    assert verifier.key_id == log.log_id[:4] == bytes.fromhex("c0d23d6a")


def test_a_key_name_with_a_space_cannot_make_a_verifier() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UsageError, match="not a valid signed-note key name"):
        c2sp_log_verifier("two words", private.public_key(), _der(private))


# -- signature algorithms ---------------------------------------------------------------------


def test_rekor_v1_ecdsa_signs_sha256_of_the_text_even_on_p384() -> None:
    log = TestLog(key=ec.generate_private_key(ec.SECP384R1()))
    log.extend(2)
    note = parse_note(log.checkpoint())
    verifier = rekor_v1_verifier(log.signer_name, log.key.public_key(), log.public_key_der)
    assert verifier.verify(note.message, note.signatures[0].signature)
    assert isinstance(log.key, ec.EllipticCurvePrivateKey)
    sha384_signature = log.key.sign(note.message, ec.ECDSA(hashes.SHA384()))
    assert not verifier.verify(note.message, sha384_signature)


def test_rekor_v1_ed25519_signs_the_text_itself() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    verifier = rekor_v1_verifier("rekor.example", private.public_key(), _der(private))
    assert verifier.verify(b"text\n", private.sign(b"text\n"))
    assert not verifier.verify(b"text\n", private.sign(hashlib.sha256(b"text\n").digest()))


def test_c2sp_ecdsa_p384_uses_sha384_as_its_key_details_say() -> None:
    log = TestLog("log.example", v2=True, key=ec.generate_private_key(ec.SECP384R1()))
    log.extend(1)
    note = parse_note(log.checkpoint())
    verifier = c2sp_log_verifier(
        log.origin, log.key.public_key(), log.public_key_der, "PKIX_ECDSA_P384_SHA_384"
    )
    assert verifier.verify(note.message, note.signatures[0].signature)


def test_a_cosignature_verifies_and_carries_its_timestamp() -> None:
    witness = Witness("witness.example")
    note = "origin\n1\n" + base64.b64encode(b"r" * 32).decode() + "\n\n" + _sig_line() + "\n"
    signature = witness.cosignature(note, timestamp=1_712_345_678)
    verifier = cosignature_verifier(witness.name, witness.key.public_key())
    assert verifier.verify(note_text(note).encode(), signature)
    assert int.from_bytes(signature[:8], "big") == 1_712_345_678


def test_a_cosignature_with_an_altered_timestamp_fails() -> None:
    witness = Witness("witness.example")
    note = "origin\n1\nroot\n\n" + _sig_line() + "\n"
    signature = witness.cosignature(note, timestamp=100)
    verifier = cosignature_verifier(witness.name, witness.key.public_key())
    forged = (101).to_bytes(8, "big") + signature[8:]
    assert not verifier.verify(note_text(note).encode(), forged)
    assert not verifier.verify(note_text(note).encode(), signature[8:])


# -- vkeys ------------------------------------------------------------------------------------


def test_a_witness_vkey_parses_to_a_cosignature_verifier() -> None:
    witness = Witness("witness.example/w1")
    verifier = parse_vkey(witness.vkey)
    assert isinstance(verifier, CosignatureVerifier)
    assert verifier.key_id == witness.key_id
    assert verifier.name == "witness.example/w1"


def test_an_ed25519_log_vkey_matches_the_key_in_the_trusted_root() -> None:
    # The vkey the sigstage Rekor v2 log publishes for its checkpoint key.
    vkey = "log2025-alpha3.rekor.sigstage.dev+d3d3a70c+AZQ93VXPMmj9uZj7U/7CefQ9yy8RgYFv6mKzOseipjqp"
    root = load_trusted_root(CONFORMANCE / "rekor2-dsse-happy-path" / "trusted_root.json")
    log = next(t for t in root.tlogs if t.hostname == "log2025-alpha3.rekor.sigstage.dev")
    from_root = c2sp_log_verifier(log.hostname, log.public_key, log.public_key_der)
    from_vkey = parse_vkey(vkey)
    assert isinstance(from_vkey, KeyVerifier)
    assert from_vkey.key_id == from_root.key_id == log.log_id[:4]


def test_a_vkey_whose_key_id_does_not_match_its_key_is_rejected() -> None:
    witness = Witness("witness.example")
    name, _, key = witness.vkey.split("+", 2)
    with pytest.raises(UsageError, match="does not match the key"):
        parse_vkey(f"{name}+00000000+{key}")


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("no-plus-signs", "expected <name>"),
        ("name+1234+AQ==", "8 hex digits"),
        ("name+zzzzzzzz+AQ==", "bad hex"),
        ("name+00000000+" + base64.b64encode(b"\x02" + b"k" * 32).decode(), "not supported"),
    ],
)
def test_malformed_vkeys_are_rejected(vkey: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_vkey(vkey)


# -- verification rules -----------------------------------------------------------------------


def _log_and_note() -> tuple[TestLog, str]:
    log = TestLog("log.example", v2=True)
    log.extend(3)
    return log, log.checkpoint()


def _verifier(log: TestLog) -> KeyVerifier:
    return c2sp_log_verifier(log.origin, log.key.public_key(), log.public_key_der)


def test_verify_note_returns_the_signatures_that_verified() -> None:
    log, note = _log_and_note()
    verified = verify_note(note, [_verifier(log)])
    assert [v.signature.name for v in verified] == ["log.example"]


def test_signatures_from_unknown_keys_are_ignored() -> None:
    log, note = _log_and_note()
    note = note_with_line(note, _sig_line("someone.else"))
    note = note_with_line(note, signature_line("log.example", b"\xff" * 4, b"x" * 64))
    assert len(verify_note(note, [_verifier(log)])) == 1


def test_a_failing_signature_from_a_known_key_rejects_the_note() -> None:
    log, note = _log_and_note()
    impostor = TestLog("log.example", v2=True)
    forged = signature_line("log.example", log.key_id, impostor.sign(note_text(note).encode()))
    with pytest.raises(NoteError, match=r"signature by log.example \(key ID .*\) does not verify"):
        verify_note(note_with_line(note, forged), [_verifier(log)])


def test_a_note_with_no_known_signature_is_rejected_and_the_message_lists_what_it_has() -> None:
    _, note = _log_and_note()
    other = TestLog("other.example", v2=True)
    with pytest.raises(NoteError, match=r"no signature from a known key .*signed by log.example"):
        verify_note(note, [_verifier(other)])


def test_verify_note_reads_real_checkpoints_from_the_conformance_suite() -> None:
    case = CONFORMANCE / "happy-path-v0.3"
    bundle = json.loads((case / "bundle.sigstore.json").read_text())
    envelope = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    log = load_trusted_root(CONFORMANCE / "trusted_root.production.json").tlogs[0]
    verifier = rekor_v1_verifier("rekor.sigstore.dev", log.public_key, log.public_key_der)
    assert len(verify_note(envelope["envelope"], [verifier])) == 1
