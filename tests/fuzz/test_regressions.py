"""Each input that once escaped as a traceback (found by the fuzz targets), now one of the
project's errors: one test per root cause, named after what is refused."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import ExtensionOID, NameOID

from offline.errors import AirgapError, UsageError, one_line
from offline.inputs import decode_json, parse_json_object, read_input
from offline.oci.manifest import check_manifest
from offline.policy.policy_file import parse_policy
from offline.sigstore.entry_body import EntryMismatch, Signer, check_entry_body
from offline.sigstore.model import BundleFormatError, parse_bundle
from offline.sigstore.verify import Artifact, KeyPolicy, verify_bundle
from offline.tlog.checkpoint import CheckpointError, parse_checkpoint
from offline.tlog.note import NoteError, parse_note, parse_vkey
from offline.trust.keys import load_public_key_file
from offline.trust.root import load_certificate, parse_trusted_root
from offline.trust.timestamps import TimestampFailure, verify_timestamps
from provisioner.archive.parts_list import PartsList
from provisioner.bundle.manifest import BundleManifest
from tests.bundle_factory import KeySigner
from tests.fuzz import targets
from tests.tlog_fixture import TestLog, Witness, trusted_root

DEEP = b"[" * 100_000 + b"]" * 100_000


def _case(name: str) -> targets.BundleCase:
    return targets.bundle_case(name)


def _bundle(name: str) -> dict[str, Any]:
    return copy.deepcopy(_case(name).bundle)


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


# ------------------------------------------------------------------------ error messages
def test_an_error_message_quoting_a_line_break_stays_one_line() -> None:
    # e.g. a log entry kind "hashedrekord\n/0.0.1", a policy name with a newline in it
    error = UsageError("unsupported log entry kind hashed\nrekord\r\u2028/0.0.1")
    assert str(error) == "unsupported log entry kind hashed\\x0arekord\\x0d\\u2028/0.0.1"
    assert one_line("tab\there") == "tab\\x09here"


def test_a_policy_error_quoting_a_multi_line_value_is_one_line(tmp_path: Path) -> None:
    text = targets.POLICY_SEED.replace("keys/release.pub", '"keys/release.pub\\n"')
    with pytest.raises(UsageError) as caught:
        parse_policy(text, tmp_path / "p.yaml")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------- JSON
@pytest.mark.parametrize(
    "data", [DEEP, b'{"a": ' + b"9" * 5000 + b"}", b"\xff\xfe{}", b'{"a": "\\ud800"'], ids=repr
)
def test_json_that_the_parser_cannot_hold_is_a_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_json_object(data, "input")


def test_json_nested_too_deeply_is_refused_by_every_document_reader() -> None:
    for read in (
        lambda: parse_bundle(DEEP),
        lambda: parse_trusted_root(DEEP),
        lambda: BundleManifest.from_bytes(DEEP),
        lambda: PartsList.from_bytes(DEEP, "parts list"),
        lambda: check_manifest(DEEP, "sha256:" + "0" * 64, "store"),
    ):
        with pytest.raises(AirgapError):
            read()
    with pytest.raises(EntryMismatch, match="nested too deeply"):
        decode_json(DEEP, "log entry body", EntryMismatch)


# --------------------------------------------------------------------------------- files
@pytest.mark.parametrize("name", ["key\x00.pub", "key\ud800.pub", "x" * 5000])
def test_a_file_name_the_system_cannot_open_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError, match="key file"):
        read_input(name, "key file")


def test_a_policy_naming_a_key_file_with_a_nul_is_a_usage_error(tmp_path: Path) -> None:
    text = targets.POLICY_SEED.replace("keys/release.pub", '"keys/\\0release.pub"')
    with pytest.raises(UsageError):
        parse_policy(text, tmp_path / "p.yaml")


# ------------------------------------------------------------------------------- bundles
@pytest.mark.parametrize("media_type", [["application/vnd.dev.sigstore.bundle.v0.3+json"], {}, 3])
def test_a_bundle_media_type_that_is_not_a_string_is_refused(media_type: object) -> None:
    bundle = _bundle("happy-path-v0.3")
    bundle["mediaType"] = media_type
    with pytest.raises(UsageError, match="media type"):
        parse_bundle(json.dumps(bundle).encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("integratedTime", "53089986000000000"),  # year 53089986: datetime cannot hold it
        ("logIndex", str(2**53)),  # the SET's RFC 8785 JSON cannot hold it
    ],
)
def test_log_entry_numbers_out_of_range_are_refused(field: str, value: str) -> None:
    bundle = _bundle("happy-path-v0.1")
    _entry(bundle)[field] = value
    with pytest.raises(BundleFormatError, match=f"{field} .* is out of range"):
        parse_bundle(json.dumps(bundle).encode())


def test_an_inclusion_proof_tree_size_out_of_range_is_refused() -> None:
    bundle = _bundle("happy-path-v0.3")
    _entry(bundle)["inclusionProof"]["treeSize"] = str(2**64 - 1)
    with pytest.raises(BundleFormatError, match="out of range"):
        parse_bundle(json.dumps(bundle).encode())


@pytest.mark.parametrize(("field", "value"), [("integratedTime", "-1"), ("logIndex", "-5")])
def test_negative_log_entry_numbers_are_refused(field: str, value: str) -> None:
    bundle = _bundle("happy-path-v0.1")
    _entry(bundle)[field] = value
    with pytest.raises(AirgapError, match=field):
        parse_bundle(json.dumps(bundle).encode())


def _certificate(
    key: Any = None, extensions: tuple[x509.ExtensionType, ...] = ()
) -> x509.Certificate:
    signing = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key or signing.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signing, hashes.SHA256())


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def test_a_certificate_with_a_malformed_extension_is_refused_when_read() -> None:
    garbage_san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02")
    with pytest.raises(BundleFormatError, match="unreadable certificate"):
        load_certificate(_der(_certificate(extensions=(garbage_san,))), "bundle", BundleFormatError)


def test_a_certificate_with_an_unsupported_key_type_is_refused_when_read() -> None:
    dsa_key = dsa.generate_private_key(2048).public_key()
    with pytest.raises(UsageError, match="unsupported key type"):
        load_certificate(_der(_certificate(key=dsa_key)), "trusted root")


def test_a_bundle_certificate_with_an_unusable_key_is_a_format_error() -> None:
    # The leaf's SubjectPublicKeyInfo says EC P-256 but holds no valid point ("Invalid key").
    cert = _der(_certificate())
    point = cert.index(b"\x03\x42\x00\x04") + 4
    broken = cert[:point] + b"\x00" * 64 + cert[point + 64 :]
    bundle = _bundle("happy-path-v0.3")
    bundle["verificationMaterial"]["certificate"]["rawBytes"] = _b64(broken)
    with pytest.raises(BundleFormatError, match="unreadable certificate"):
        parse_bundle(json.dumps(bundle).encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -------------------------------------------------------------------------- trusted roots
def test_trusted_root_base64_with_non_ascii_characters_is_refused() -> None:
    root = copy.deepcopy(_case("happy-path-v0.3").root)
    root["tlogs"][0]["logId"]["keyId"] = "wNI9atQGlz\u00e9"
    with pytest.raises(UsageError, match=r"tlogs\[0\]\.logId\.keyId is not valid base64"):
        parse_trusted_root(json.dumps(root))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("tlogs",), {}),
        (("tlogs", 0, "publicKey"), "key"),
        (("tlogs", 0, "baseUrl"), 7),
        (("ctlogs", 0, "logId"), []),
        (("certificateAuthorities", 0, "certChain"), "chain"),
        (("certificateAuthorities", 0, "certChain", "certificates", 0), "cert"),
        (("timestampAuthorities", 0, "uri"), ["x"]),
        (("mediaType",), ["application/vnd.dev.sigstore.trustedroot+json;version=0.1"]),
    ],
)
def test_trusted_root_fields_of_the_wrong_json_type_are_refused(
    path: tuple[str | int, ...], value: object
) -> None:
    root = copy.deepcopy(_case("happy-path-v0.3").root)
    node: Any = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(UsageError):
        parse_trusted_root(json.dumps(root))


def test_a_timestamp_authority_chain_the_verifier_cannot_build_vouches_for_nothing() -> None:
    # A repeated intermediate made rfc3161-client raise ValueError out of the verifier.
    case = _case("rekor2-happy-path")
    root = copy.deepcopy(case.root)
    for tsa in root["timestampAuthorities"]:
        chain = tsa["certChain"]["certificates"]
        tsa["certChain"]["certificates"] = [chain[0], chain[-1], chain[-1], chain[-1]]
    with pytest.raises(TimestampFailure):
        case.verify(root=root)


# ---------------------------------------------------------------------- checkpoints, notes
def test_a_checkpoint_size_too_long_to_convert_is_refused() -> None:
    log = TestLog()
    log.extend(3)
    note = log.checkpoint().replace("\n3\n", "\n" + "9" * 5000 + "\n", 1)
    with pytest.raises(CheckpointError, match="tree size"):
        parse_checkpoint(note)


def test_a_rekor_v1_tree_id_too_long_to_convert_is_not_a_tree_id() -> None:
    log = TestLog(tree_id=1)
    log.extend(3)
    note = log.checkpoint().replace(" - 1\n", " - " + "1" * 5000 + "\n", 1)
    assert parse_checkpoint(note).tree_id is None


def test_a_note_string_with_a_lone_surrogate_is_refused() -> None:
    # A JSON "\ud800" escape in a bundle's checkpoint envelope gives such a string.
    log = TestLog()
    log.extend(2)
    with pytest.raises(NoteError, match="not valid Unicode"):
        parse_note(log.checkpoint().replace("\n\n", "\ud800\n\n"))


def test_a_witness_key_name_with_a_lone_surrogate_is_refused() -> None:
    vkey = Witness("w.example").vkey.replace("w.example", "w\ud800", 1)
    with pytest.raises(UsageError, match="vkey"):
        parse_vkey(vkey)


# ------------------------------------------------------------------------- log entry bodies
@pytest.mark.parametrize(
    "spec",
    [
        {"data": {"hash": {"algorithm": "sha256", "value": "00"}}, "signature": "sig"},
        {"data": {"hash": []}, "signature": {"content": "AA==", "publicKey": 5}},
        {"data": {"hash": {"algorithm": "sha256", "value": "00"}}, "signature": [1]},
    ],
)
def test_a_logged_body_with_fields_of_the_wrong_type_is_a_mismatch(spec: Any) -> None:
    log = TestLog()
    signer = KeySigner()
    logged = signer.log_artifact(log, b"hello")
    bundle = parse_bundle(json.dumps(logged.bundle(log)).encode())
    body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": spec}).encode()
    entry = bundle.tlog_entries[0].replace(canonicalized_body=body)
    with pytest.raises(EntryMismatch):
        check_entry_body(entry, bundle, Signer(signer.key.public_key()), logged.digest)


def test_a_logged_intoto_body_whose_double_encoding_is_not_text_is_a_mismatch() -> None:
    case = _case("intoto-with-custom-trust-root")
    bundle = parse_bundle(json.dumps(case.bundle).encode())
    entry = bundle.tlog_entries[0]
    body = json.loads(entry.canonicalized_body)
    assert body["kind"] == "intoto"
    body["spec"]["content"]["envelope"]["payload"] = _b64(b"\xff\xfe")
    changed = entry.replace(canonicalized_body=json.dumps(body).encode())
    assert bundle.leaf_certificate is not None
    signer = Signer(bundle.leaf_certificate.public_key(), bundle.leaf_certificate)  # type: ignore[arg-type]
    with pytest.raises(EntryMismatch):
        check_entry_body(changed, bundle, signer, None)


def test_a_key_bundle_verifies_after_all_these_checks() -> None:
    log = TestLog()
    signer = KeySigner()
    logged = signer.log_artifact(log, b"hello")
    verify_bundle(
        parse_bundle(json.dumps(logged.bundle(log)).encode()),
        Artifact.from_bytes(b"hello", "hello"),
        trusted_root(log),
        KeyPolicy(signer.key.public_key()),
    )


# ------------------------------------------------------------------------------ key files
def test_a_key_file_of_an_unknown_algorithm_is_a_usage_error(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    unknown = der.replace(bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2a8648ce3d0209"))
    (tmp_path / "key.der").write_bytes(unknown)
    with pytest.raises(UsageError, match="not a PEM or DER public key"):
        load_public_key_file(tmp_path / "key.der")


# ------------------------------------------------------------------ bundle manifests, parts
def test_a_bundle_manifest_string_with_an_unpaired_surrogate_is_refused() -> None:
    document = targets.bundle_manifest_seed()
    document["files"][0]["path"] = "files/\ud800"
    with pytest.raises(UsageError, match="unpaired surrogate"):
        BundleManifest.from_bytes(json.dumps(document).encode())


def test_a_parts_list_part_name_with_an_unpaired_surrogate_is_refused() -> None:
    document = targets.parts_list_seed()
    document["parts"][0]["name"] = "b.tar.zst.part\udc00"
    with pytest.raises(UsageError, match="unpaired surrogate"):
        PartsList.from_bytes(json.dumps(document).encode(), "parts list")


# ----------------------------------------------------------------------- RFC 3161 timestamps
def test_a_signed_timestamp_with_an_unreadable_time_is_malformed() -> None:
    # rfc3161-client parses the TSTInfo lazily: a bad genTime raised ValueError on first use.
    bundle = _bundle("rekor2-happy-path")
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    raw = base64.b64decode(stamps[0]["signedTimestamp"])
    at = re.search(rb"\x18\x0f\d{14}Z", raw)
    assert at is not None
    raw = raw[: at.start() + 2] + b"20251399999999Z" + raw[at.end() :]
    with pytest.raises(TimestampFailure, match="is malformed"):
        verify_timestamps(
            [raw], b"signature", parse_trusted_root(json.dumps(_case("rekor2-happy-path").root))
        )


def test_a_tsa_certificate_openssl_cannot_read_fails_verification_without_a_panic() -> None:
    # A PrintableString tag changed to 0x7b in the TSA certificate's issuer: cryptography reads
    # it, OpenSSL inside rfc3161-client does not, and its Rust code panicked (PanicException).
    case = _case("intoto-with-custom-trust-root")
    root = copy.deepcopy(case.root)
    field = root["timestampAuthorities"][0]["certChain"]["certificates"][0]
    der = bytearray(base64.b64decode(field["rawBytes"]))
    assert der[39] == 0x13  # PrintableString
    der[39] = 0x7B
    field["rawBytes"] = _b64(bytes(der))
    with pytest.raises(AirgapError):
        case.verify(root=root)


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize(
    ("edit", "exit_code"),
    [
        (lambda b: b.__setitem__("mediaType", ["x"]), 2),
        (lambda b: _entry(b).__setitem__("integratedTime", str(10**17)), 1),
        (lambda b: _entry(b)["kindVersion"].__setitem__("kind", "hashed\nrekord"), 1),
    ],
    ids=["media type a list", "integrated time in year 3e9", "kind with a line break"],
)
def test_verify_bundle_answers_hostile_bundles_with_one_line(
    tmp_path: Path, edit: Any, exit_code: int
) -> None:
    from tests.offline.sigstore.test_conformance import CASES_DIR, protocol_args, run_airgap

    case = CASES_DIR / "happy-path-v0.1"
    bundle = _bundle("happy-path-v0.1")
    edit(bundle)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    args = protocol_args(case, by_digest=False)
    args[args.index("--bundle") + 1] = str(tmp_path / "bundle.json")
    proc = run_airgap(args)
    assert proc.returncode == exit_code, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("airgap: "), proc.stderr


def test_a_certificate_of_an_unknown_x509_version_is_refused_when_read() -> None:
    der = _der(_certificate())
    version = der.index(b"\xa0\x03\x02\x01\x02") + 4
    with pytest.raises(UsageError, match="unreadable certificate"):
        load_certificate(der[:version] + b"\x03" + der[version + 1 :], "trusted root")
