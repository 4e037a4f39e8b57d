"""provisioner.stack.trusted_root: the trusted_root.json `airgap install` writes for a private
stack."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from offline.errors import UsageError
from offline.trust.root import parse_trusted_root
from provisioner.stack.trusted_root import (
    TRUSTED_ROOT_MEDIA_TYPE,
    CertificateAuthority,
    TransparencyLog,
    TrustedRootSpec,
    build_trusted_root,
    trusted_root_json,
    write_trusted_root,
)
from tests.stack import pki
from tests.tools import go_tool

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def spki(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def issue(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    common_name: str,
    *,
    ca: bool,
    eku: list[x509.ObjectIdentifier],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = pki.ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issuer.not_valid_before_utc + dt.timedelta(hours=1))
        .not_valid_after(issuer.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    return key, builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Material:
    rekor: ec.EllipticCurvePrivateKey
    ct: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate: x509.Certificate
    tsa_leaf: x509.Certificate


@pytest.fixture(scope="module")
def material() -> Material:
    root_key = pki.ec_key()
    root = pki.fulcio_root(root_key, not_before=START)
    inter_key, intermediate = issue(
        root_key, root, "fulcio intermediate", ca=True, eku=[ExtendedKeyUsageOID.CODE_SIGNING]
    )
    _, tsa_leaf = issue(
        inter_key, intermediate, "tsa", ca=False, eku=[ExtendedKeyUsageOID.TIME_STAMPING]
    )
    return Material(pki.ec_key(), pki.ec_key(), root, intermediate, tsa_leaf)


def spec(material: Material, **overrides: Any) -> TrustedRootSpec:
    parts: dict[str, Any] = {
        "tlogs": [TransparencyLog("https://rekor.internal", spki(material.rekor), START)],
        "certificate_authorities": [
            CertificateAuthority("https://fulcio.internal", [der(material.root)])
        ],
        "ctlogs": [TransparencyLog("https://ctlog.internal/sigstore", spki(material.ct), START)],
    }
    parts.update(overrides)
    return TrustedRootSpec(**parts)


def usage_error(spec: TrustedRootSpec) -> str:
    with pytest.raises(UsageError) as info:
        build_trusted_root(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- what it writes -------------------------------------------------------------------------------


def test_document_shape(material: Material) -> None:
    document = build_trusted_root(spec(material))
    assert document["mediaType"] == TRUSTED_ROOT_MEDIA_TYPE
    assert "timestampAuthorities" not in document
    (tlog,) = document["tlogs"]
    rekor_der = spki(material.rekor)
    assert tlog == {
        "baseUrl": "https://rekor.internal",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(rekor_der).decode(),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": "2026-01-01T00:00:00Z"},
        },
        "logId": {"keyId": base64.b64encode(hashlib.sha256(rekor_der).digest()).decode()},
    }
    (ca,) = document["certificateAuthorities"]
    root = material.root
    assert ca["subject"] == {
        "organization": "airgap tests",
        "commonName": "airgap test Fulcio root",
    }
    assert ca["uri"] == "https://fulcio.internal"
    assert ca["certChain"]["certificates"] == [{"rawBytes": base64.b64encode(der(root)).decode()}]
    assert ca["validFor"] == {"start": "2026-01-01T00:00:00Z"}  # the root's notBefore
    (ct,) = document["ctlogs"]
    assert base64.b64decode(ct["logId"]["keyId"]) == hashlib.sha256(spki(material.ct)).digest()


def test_reads_back_in_our_reader_and_in_sigstore(material: Material) -> None:
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as Model

    text = trusted_root_json(spec(material))
    ours = parse_trusted_root(text)
    assert ours.tlogs[0].log_id == ours.tlogs[0].key_hash
    assert ours.ctlogs[0].base_url == "https://ctlog.internal/sigstore"
    theirs = TrustedRoot(Model.from_json(text))
    assert theirs.get_fulcio_certs()[0] == material.root
    theirs.rekor_keyring(KeyringPurpose.VERIFY)
    theirs.ct_keyring(KeyringPurpose.VERIFY)


def test_chain_with_intermediate_and_timestamp_authority(material: Material) -> None:
    intermediate = der(material.intermediate)
    root = der(material.root)
    tsa_leaf = material.tsa_leaf
    document = build_trusted_root(
        spec(
            material,
            certificate_authorities=[
                CertificateAuthority(
                    "https://fulcio.internal",
                    [intermediate, root],
                    end=START + dt.timedelta(days=30),
                )
            ],
            timestamp_authorities=[
                CertificateAuthority(
                    "https://tsa.internal/api/v1/timestamp", [der(tsa_leaf), intermediate, root]
                )
            ],
        )
    )
    (ca,) = document["certificateAuthorities"]
    assert len(ca["certChain"]["certificates"]) == 2
    assert ca["subject"]["commonName"] == "airgap test Fulcio root"  # from the anchor
    assert ca["validFor"] == {"start": "2026-01-01T00:00:00Z", "end": "2026-01-31T00:00:00Z"}
    (tsa,) = document["timestampAuthorities"]
    assert tsa["validFor"]["start"] == "2026-01-01T02:00:00Z"  # the TSA leaf's notBefore
    assert len(tsa["certChain"]["certificates"]) == 3


@pytest.mark.parametrize(
    ("key", "details"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "PKIX_ECDSA_P384_SHA_384"),
        (ec.generate_private_key(ec.SECP521R1()), "PKIX_ECDSA_P521_SHA_512"),
        (ed25519.Ed25519PrivateKey.generate(), "PKIX_ED25519"),
        (rsa.generate_private_key(65537, 2048), "PKIX_RSA_PKCS1V15_2048_SHA256"),
    ],
)
def test_key_details_follow_the_key(
    material: Material,
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
    details: str,
) -> None:
    log = TransparencyLog("https://rekor.internal", spki(key), START)
    document = build_trusted_root(spec(material, tlogs=[log]))
    assert document["tlogs"][0]["publicKey"]["keyDetails"] == details


def test_given_log_id_and_timestamps_in_other_zones(material: Material) -> None:
    log_id = hashlib.sha256(b"rekor v2 checkpoint key id").digest()
    cet = dt.timezone(dt.timedelta(hours=1))
    log = TransparencyLog(
        "https://log2026.rekor.internal/",
        spki(material.rekor),
        dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=cet),
        key_details="PKIX_ECDSA_P256_SHA_256",
        log_id=log_id,
    )
    (tlog,) = build_trusted_root(spec(material, tlogs=[log]))["tlogs"]
    assert tlog["baseUrl"] == "https://log2026.rekor.internal"
    assert tlog["logId"]["keyId"] == base64.b64encode(log_id).decode()
    assert tlog["publicKey"]["validFor"]["start"] == "2026-03-01T11:00:00.250000Z"


def test_from_pem_helpers(material: Material) -> None:
    rekor = material.rekor
    chain = pki.cert_pem(material.intermediate) + pki.cert_pem(material.root)
    built = build_trusted_root(
        spec(
            material,
            tlogs=[
                TransparencyLog.from_pem("https://rekor.internal", pki.public_pem(rekor), START)
            ],
            certificate_authorities=[
                CertificateAuthority.from_pem("https://fulcio.internal", chain)
            ],
        )
    )
    assert built["tlogs"][0]["publicKey"]["rawBytes"] == base64.b64encode(spki(rekor)).decode()
    assert len(built["certificateAuthorities"][0]["certChain"]["certificates"]) == 2


def test_write_is_atomic_and_public(material: Material, tmp_path: Path) -> None:
    path = write_trusted_root(spec(material), tmp_path / "trusted_root.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == build_trusted_root(spec(material))
    assert [p.name for p in tmp_path.iterdir()] == ["trusted_root.json"]


# -- what it refuses, in one line -----------------------------------------------------------------


def test_refuses_bad_input(material: Material) -> None:
    rekor = spki(material.rekor)
    root = der(material.root)
    intermediate = der(material.intermediate)
    tsa_leaf = der(material.tsa_leaf)

    def log(**kw: object) -> TransparencyLog:
        fields: dict[str, Any] = {
            "base_url": "https://rekor.internal",
            "public_key": rekor,
            "start": START,
        }
        fields.update(kw)
        return TransparencyLog(**fields)

    cases: list[tuple[TrustedRootSpec, str]] = [
        (spec(material, tlogs=[]), "at least one transparency log"),
        (spec(material, tlogs=[log(base_url="rekor.internal")]), "not an http(s) URL"),
        (spec(material, tlogs=[log(base_url="")]), "URL is empty"),
        (spec(material, tlogs=[log(base_url="https://r.internal/?x=1")]), "query or fragment"),
        (spec(material, tlogs=[log(public_key=b"not a key")]), "not a DER SubjectPublicKeyInfo"),
        (spec(material, tlogs=[log(start=dt.datetime(2026, 1, 1))]), "no time zone"),
        (
            spec(material, tlogs=[log(end=START - dt.timedelta(days=1))]),
            "ends (2025-12-31T00:00:00Z) before it starts",
        ),
        (spec(material, tlogs=[log(key_details="PKIX_ED25519")]), "do not fit the key"),
        (spec(material, tlogs=[log(hash_algorithm="MD5")]), "hash algorithm 'MD5'"),
        (spec(material, tlogs=[log(log_id=b"short")]), "log ID must be 32 bytes"),
        (spec(material, tlogs=[log(), log(base_url="https://other.internal")]), "repeats tlogs[0]"),
        (
            spec(
                material, certificate_authorities=[CertificateAuthority("https://f.internal", [])]
            ),
            "certificate chain is empty",
        ),
        (
            spec(
                material,
                certificate_authorities=[CertificateAuthority("https://f.internal", [b"junk"])],
            ),
            "certificate 0 is not DER X.509",
        ),
        (
            spec(
                material,
                certificate_authorities=[
                    CertificateAuthority("https://f.internal", [root, intermediate])
                ],
            ),
            "is not issued by certificate 1",
        ),
        (
            spec(
                material,
                certificate_authorities=[
                    CertificateAuthority("https://f.internal", [tsa_leaf, intermediate, root])
                ],
            ),
            "is not a CA certificate",
        ),
        (
            spec(
                material,
                timestamp_authorities=[
                    CertificateAuthority("https://tsa.internal", [intermediate, root])
                ],
            ),
            "extended key usage timeStamping",
        ),
    ]
    for bad, expected in cases:
        assert expected in usage_error(bad)


def test_from_pem_refuses_garbage() -> None:
    with pytest.raises(UsageError, match="not a PEM public key"):
        TransparencyLog.from_pem("https://rekor.internal", b"-----BEGIN NOTHING-----", START)
    with pytest.raises(UsageError, match="not PEM certificates"):
        CertificateAuthority.from_pem("https://fulcio.internal", "no certificates here")


# -- the same document as `cosign trusted-root create` ------------------------------------------


@pytest.mark.slow
def test_same_document_as_cosign_trusted_root_create(material: Material, tmp_path: Path) -> None:
    rekor = material.rekor
    ct = material.ct
    chain = pki.cert_pem(material.intermediate) + pki.cert_pem(material.root)
    files = {
        "rekor.pub": pki.public_pem(rekor),
        "ct.pub": pki.public_pem(ct),
        "chain.pem": chain,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "cosign.json"
    result = subprocess.run(
        [
            str(go_tool("cosign")),
            "trusted-root",
            "create",
            f"--fulcio=url=https://fulcio.internal,certificate-chain={tmp_path / 'chain.pem'}",
            f"--rekor=url=https://rekor.internal,public-key={tmp_path / 'rekor.pub'},"
            "start-time=2026-01-01T00:00:00Z",
            f"--ctfe=url=https://ctlog.internal/sigstore,public-key={tmp_path / 'ct.pub'},"
            "start-time=2026-01-01T00:00:00Z",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ours = build_trusted_root(
        spec(
            material,
            certificate_authorities=[
                CertificateAuthority.from_pem("https://fulcio.internal", chain)
            ],
        )
    )
    assert ours == json.loads(out.read_text())
