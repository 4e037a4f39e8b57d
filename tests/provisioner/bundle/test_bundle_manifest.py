"""The bundle manifest (airgap-bundle.json) and its detached signature."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.errors import UsageError, VerificationFailure
from provisioner.bundle.manifest import (
    FORMAT,
    BlobEntry,
    BundleManifest,
    ChartEntry,
    FileEntry,
    GraphNode,
    ImageEntry,
)
from provisioner.bundle.signing import (
    ECDSA_P256,
    ED25519,
    KEY_KINDS,
    KeyKind,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    parse_public_key,
    sign_manifest,
    verify_signature,
)

LAYOUT = (
    FileEntry("oci/index.json", "b" * 64, 300),
    FileEntry("oci/oci-layout", "c" * 64, 30),
)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sample() -> BundleManifest:
    return BundleManifest(
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        name="site",
        sequence=1_767_322_800_000,
        layout=LAYOUT,
        images=(
            ImageEntry(
                reference="registry.example/app:v1",
                digest=D1,
                graph=(GraphNode(D1, OCI_MANIFEST, (D2, D3)),),
                attachments={"sig": (D1,)},
            ),
        ),
        blobs=(BlobEntry(D1, 10), BlobEntry(D2, 20), BlobEntry(D3, 0)),
        charts=(ChartEntry("rekor", "1.2.3", D2, "charts/rekor-1.2.3.tgz"),),
        files=(FileEntry("files/tööl", "a" * 64, 5),),
    )


def document() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sample().to_bytes())
    return result


# ------------------------------------------------------------------------------ manifest
def test_round_trip_is_identical() -> None:
    manifest = sample()
    data = manifest.to_bytes()
    again = BundleManifest.from_bytes(data)
    assert again.to_bytes() == data
    assert again.images[0].attachments == {"sig": (D1,)}
    assert again.created == manifest.created
    assert again.blob_sizes() == {D1: 10, D2: 20, D3: 0}
    assert (again.name, again.sequence, again.layout) == ("site", 1_767_322_800_000, LAYOUT)


def test_serialization_is_canonical() -> None:
    data = sample().to_bytes()
    assert b" " not in data.replace(b"registry.example", b"")
    assert "files/tööl".encode() in data  # UTF-8, not \u escapes
    decoded = json.loads(data)
    assert (
        data
        == json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert decoded["format"] == FORMAT
    assert decoded["created"] == "2026-01-02T03:04:05Z"


def test_created_is_written_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    manifest = replace(sample(), created=datetime(2026, 1, 2, 5, 4, 5, tzinfo=plus_two))
    assert json.loads(manifest.to_bytes())["created"] == "2026-01-02T03:04:05Z"
    with pytest.raises(UsageError, match="time zone"):
        replace(sample(), created=datetime(2026, 1, 2)).to_bytes()


def _mutated(change: Any) -> bytes:
    doc = document()
    change(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), "^airgap-bundle.json: unknown key 'extra' "),
        (lambda d: d.pop("blobs"), "^airgap-bundle.json: missing blobs$"),
        (
            lambda d: d.update(format="airgap-bundle/v3"),
            "format: expected one of airgap-bundle/v2; got the text 'airgap-bundle/v3'",
        ),
        (lambda d: d.update(format="airgap-bundle/v1"), "v1, whose index.json is not signed"),
        # The sequence orders bundles of a name: absent, zero or unparsable is no sequence.
        (lambda d: d.pop("sequence"), "missing sequence"),
        (lambda d: d.update(sequence=0), "sequence 0 is not an integer from 1"),
        (lambda d: d.update(sequence=-5), "sequence -5 is not an integer from 1"),
        (lambda d: d.update(sequence="7"), "sequence '7' is not an integer from 1"),
        (lambda d: d.update(sequence=7.0), "sequence 7.0 is not an integer from 1"),
        (lambda d: d.update(sequence=True), "sequence True is not an integer from 1"),
        (lambda d: d.update(sequence=2**63), "is not an integer from 1"),
        (lambda d: d.pop("name"), "missing name"),
        (lambda d: d.update(name="../x"), "name '../x' is not letters"),
        (lambda d: d.update(name=""), "name '' is not letters"),
        # index.json and oci-layout are signed, both and only them.
        (lambda d: d.pop("layout"), "missing layout"),
        (lambda d: d["layout"].pop(), "layout: does not list exactly"),
        (lambda d: d["layout"].reverse(), "layout: does not list exactly"),
        (lambda d: d["layout"][0].update(path="oci/other.json"), "layout: does not list exactly"),
        (
            lambda d: d["layout"][0].update(sha256="0"),
            r"layout\[0\]\.sha256: expected 64 lowercase hex digits; got the text '0'",
        ),
        (
            lambda d: d.update(created="yesterday"),
            "created: expected a UTC time like .*; got the text 'yesterday'",
        ),
        (lambda d: d["images"][0].update(tag="x"), r"images\[0\]: unknown key 'tag'"),
        (lambda d: d["images"][0].pop("graph"), r"images\[0\]: missing graph"),
        (
            lambda d: d["images"][0]["graph"][0].pop("mediaType"),
            r"images\[0\]\.graph\[0\]: missing mediaType",
        ),
        (
            lambda d: d["images"][0]["graph"][0]["references"].append("sha256:abc"),
            r"graph\[0\]\.references\[2\]: expected sha256: .*; got the text 'sha256:abc'",
        ),
        (
            lambda d: d["images"][0].update(attachments={"sig": ["md5:00"]}),
            r"attachments\.sig\[0\]: expected sha256: .*; got the text 'md5:00'",
        ),
        (
            lambda d: d["images"][0].update(attachments=["sig"]),
            r"images\[0\]\.attachments: expected a mapping; got a list",
        ),
        (lambda d: d["images"][0].update(graph=None), r"images\[0\]\.graph: expected a list"),
        (lambda d: d["blobs"][1].update(size=-1), r"blobs\[1\]\.size: expected an integer of at"),
        (lambda d: d["blobs"][1].update(size=True), r"blobs\[1\]\.size: expected an integer"),
        (lambda d: d["blobs"][1].update(size="20"), r"blobs\[1\]\.size: expected an integer"),
        (lambda d: d["blobs"][1].update(digest=D1), "'sha256:1111.*' is listed twice"),
        (lambda d: d["blobs"][0].update(mediaType="x"), r"blobs\[0\]: unknown key 'mediaType'"),
        (lambda d: d["charts"][0].pop("version"), r"charts\[0\]: missing version"),
        (
            lambda d: d["charts"][0].update(file="../x.tgz"),
            r"charts\[0\]\.file: '\.\./x\.tgz' leaves the bundle directory",
        ),
        (
            lambda d: d["files"][0].update(path="/etc/passwd"),
            r"files\[0\]\.path: '/etc/passwd' is not a normalized relative path",
        ),
        (lambda d: d["files"][0].update(path="a//b"), "not a normalized relative path"),
        (lambda d: d["files"][0].update(path="a\\b"), "backslash"),
        (
            lambda d: d["files"][0].update(sha256="A" * 64),
            r"files\[0\]\.sha256: expected 64 lowercase hex digits; got the text 'A+'",
        ),
        (
            lambda d: d["files"][0].update(path="charts/rekor-1.2.3.tgz"),
            "charts and files: 'charts/rekor-1.2.3.tgz' is listed twice",
        ),
        (lambda d: d.update(images={}), "images: expected a list; got a mapping"),
        (lambda d: d.update(images=None), "images: expected a list; got nothing"),
    ],
)
def test_strict_parsing_names_the_field(change: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        BundleManifest.from_bytes(_mutated(change))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "^airgap-bundle.json: not valid JSON"),
        (b"\xff", "^airgap-bundle.json: not UTF-8$"),
        (b"[]", "^airgap-bundle.json: expected a mapping with format, .*; got a list$"),
        (b'{"format":1,"format":2}', "field 'format' appears twice"),
        (b'{"x":NaN}', "NaN is not a JSON number"),
    ],
)
def test_malformed_json_is_a_usage_error(data: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BundleManifest.from_bytes(data)


# ------------------------------------------------------------------------------------ keys
@pytest.mark.parametrize("kind", KEY_KINDS)
def test_generated_private_key_is_0600_with_public_key_beside_it(
    tmp_path: Path, kind: KeyKind
) -> None:
    private = tmp_path / "bundle.key"
    public = generate_key(private, kind)
    assert public == tmp_path / "bundle.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_private_key(private).public_key() == load_public_key(public)
    with pytest.raises(UsageError, match="already exists"):
        generate_key(private, kind)


def test_public_key_path_for_other_names(tmp_path: Path) -> None:
    assert generate_key(tmp_path / "operator", "ed25519") == tmp_path / "operator.pub"


def test_encrypted_private_key(tmp_path: Path) -> None:
    private = tmp_path / "k.pem"
    generate_key(private, "ecdsa-p256", password=b"secret")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"ENCRYPTED" in private.read_bytes()
    load_private_key(private, b"secret")
    with pytest.raises(UsageError, match="password is needed"):
        load_private_key(private)
    with pytest.raises(UsageError, match="password is wrong"):
        load_private_key(private, b"wrong")
    plain = tmp_path / "plain.key"
    generate_key(plain, "ed25519")
    with pytest.raises(UsageError, match="not encrypted"):
        load_private_key(plain, b"secret")


def test_other_key_types_are_refused(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    pem = p384.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UsageError, match="secp384r1"):
        parse_public_key(pem)
    with pytest.raises(UsageError, match="not a PEM public key"):
        parse_public_key(b"nonsense")
    with pytest.raises(UsageError, match=r"public key .*absent\.pub does not exist"):
        load_public_key(tmp_path / "absent.pub")


def test_key_id_is_sha256_of_spki(tmp_path: Path) -> None:
    key = load_public_key(generate_key(tmp_path / "k.key", "ed25519"))
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(key) == hashlib.sha256(der).hexdigest()


# ------------------------------------------------------------------------------- signature
@pytest.fixture(params=KEY_KINDS)
def keypair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any, str]:
    kind: KeyKind = request.param
    public = generate_key(tmp_path / "op.key", kind)
    return load_private_key(tmp_path / "op.key"), load_public_key(public), kind


def test_sign_and_verify(keypair: tuple[Any, Any, str]) -> None:
    private, public, kind = keypair
    data = sample().to_bytes()
    signature = sign_manifest(data, private)
    verify_signature(data, signature, public)
    document = json.loads(signature)
    assert set(document) == {"algorithm", "keyid", "signature"}
    assert document["algorithm"] == (ED25519 if kind == "ed25519" else ECDSA_P256)
    assert document["keyid"] == key_id(public)


def test_every_flipped_manifest_byte_is_caught(keypair: tuple[Any, Any, str]) -> None:
    private, public, _ = keypair
    data = sample().to_bytes()
    signature = sign_manifest(data, private)
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        with pytest.raises(VerificationFailure, match="does not match the manifest"):
            verify_signature(bytes(tampered), signature, public)


def test_every_flipped_signature_byte_is_caught(keypair: tuple[Any, Any, str]) -> None:
    private, public, _ = keypair
    data = sample().to_bytes()
    signature = sign_manifest(data, private)
    for i in range(len(signature)):
        for bit in (0x01, 0x20):
            tampered = bytearray(signature)
            tampered[i] ^= bit
            with pytest.raises(VerificationFailure) as caught:
                verify_signature(data, bytes(tampered), public)
            assert "\n" not in str(caught.value)


def test_wrong_key(tmp_path: Path, keypair: tuple[Any, Any, str]) -> None:
    private, _, kind = keypair
    other = load_public_key(generate_key(tmp_path / "other.key", kind))  # type: ignore[arg-type]
    data = sample().to_bytes()
    with pytest.raises(VerificationFailure, match="wrong public key"):
        verify_signature(data, sign_manifest(data, private), other)


def _edit(original: bytes, **changes: Any) -> bytes:
    document = json.loads(original)
    for name, value in changes.items():
        if value is None:
            document.pop(name)
        else:
            document[name] = value
    return json.dumps(document).encode()


def test_signature_file_problems(keypair: tuple[Any, Any, str]) -> None:
    private, public, kind = keypair
    data = sample().to_bytes()
    good = sign_manifest(data, private)
    raw = base64.b64decode(json.loads(good)["signature"])
    other_algorithm = ECDSA_P256 if kind == "ed25519" else ED25519
    cases = [
        (b"not json", "malformed signature file: not valid JSON"),
        (b"[1]", "malformed signature file: not a JSON object"),
        (_edit(good, keyid=None), "malformed signature file: no string field 'keyid'"),
        (_edit(good, extra="x"), "malformed signature file: unknown field 'extra'"),
        (_edit(good, algorithm="rsa-pss"), "unknown signature algorithm 'rsa-pss'"),
        (_edit(good, algorithm=other_algorithm), "does not match the given"),
        (_edit(good, signature="!!!!"), "signature is not base64"),
        (_edit(good, signature=""), "not canonical base64"),
        (
            _edit(good, signature=base64.b64encode(raw[:-1]).decode()),
            "does not match the manifest",
        ),
    ]
    for signature, message in cases:
        with pytest.raises(VerificationFailure, match=message):
            verify_signature(data, signature, public)
