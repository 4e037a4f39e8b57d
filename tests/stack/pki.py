"""Keys and certificates the stack is given before its first start (so restarts never rotate
anything), written with mode 0600 for private keys."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def password() -> str:
    return secrets.token_urlsafe(24)


def write_private(path: Path, data: bytes) -> Path:
    """Create `path` with mode 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def write_public(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pkcs8_pem(key: ec.EllipticCurvePrivateKey, passphrase: str | None = None) -> bytes:
    """PKCS#8 PEM; with a passphrase an `ENCRYPTED PRIVATE KEY` (PBES2, AES-256-CBC)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def legacy_encrypted_pem(key: ec.EllipticCurvePrivateKey, passphrase: str) -> bytes:
    """SEC1 PEM with `Proc-Type: 4,ENCRYPTED` / `DEK-Info` headers: the only encrypted form
    Trillian's PEMKeyFile (ct_server's key) reads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def fulcio_root(
    key: ec.EllipticCurvePrivateKey,
    *,
    organization: str = "airgap tests",
    common_name: str = "airgap test Fulcio root",
    not_before: dt.datetime | None = None,
    days: int = 3650,
) -> x509.Certificate:
    """A self-signed Fulcio root as scaffolding's createcerts makes it: CA, certSign|CRLSign,
    MaxPathLen 1, plus EKU code signing (fulcio checks the chain for it)."""
    start = not_before or (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).replace(microsecond=0)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    common_name: str,
    *,
    ca: bool,
    eku: list[x509.ObjectIdentifier],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for a new key, issued by `issuer` (a CA or a leaf, with these EKUs)."""
    key = ec_key()
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


def ca_and_tsa_chain(
    not_before: dt.datetime,
) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """A Fulcio root, an intermediate under it, and a TSA signing certificate under that."""
    root_key = ec_key()
    root = fulcio_root(root_key, not_before=not_before)
    inter_key, intermediate = issue(
        root_key, root, "fulcio intermediate", ca=True, eku=[ExtendedKeyUsageOID.CODE_SIGNING]
    )
    _, tsa_leaf = issue(
        inter_key, intermediate, "tsa", ca=False, eku=[ExtendedKeyUsageOID.TIME_STAMPING]
    )
    return root, intermediate, tsa_leaf
