"""The certificates airgap makes once for a site: the Fulcio CA (a long-lived root, optionally
an intermediate that does the issuing) and the TSA chain (a root and a timestamping leaf).

Extensions are those the servers check at start and the verifiers check on every use:
- Fulcio's issuing certificate: CA, keyCertSign, extended key usage code signing (Fulcio's
  fileca refuses a chain without it); the root allows one intermediate below it (MaxPathLen 1,
  as scaffolding's createcerts makes it).
- The TSA leaf: not a CA, digitalSignature, extended key usage timeStamping and nothing else,
  critical (RFC 3161; timestamp-authority refuses anything else at start).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start a little in the past: clocks in a cluster are rarely exact.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def fulcio_chain(
    organization: str, common_name: str, days: int, *, intermediate: bool, now: dt.datetime
) -> tuple[Issued, Issued | None]:
    """(root, intermediate or None). Fulcio issues with the last one made."""
    code_signing = [ExtendedKeyUsageOID.CODE_SIGNING]
    root = _root(_name(organization, common_name), days, now, 1, code_signing)
    if not intermediate:
        return root, None
    name = _name(organization, f"{common_name} intermediate")
    return root, _issue(root, name, days, now, 0, code_signing)


def tsa_chain(organization: str, days: int, *, now: dt.datetime) -> tuple[Issued, Issued]:
    """(root, leaf): the leaf signs timestamps."""
    root = _root(_name(organization, f"{organization} timestamping root"), days, now, 0, None)
    name = _name(organization, f"{organization} timestamping")
    return root, _issue(root, name, days, now, None, [ExtendedKeyUsageOID.TIME_STAMPING])


def _root(
    name: x509.Name,
    days: int,
    now: dt.datetime,
    path_length: int,
    extended_key_usage: list[x509.ObjectIdentifier] | None,
) -> Issued:
    key = new_key()
    start = now - BACKDATE
    certificate = _certificate(
        name,
        name,
        key.public_key(),
        key,
        start,
        start + dt.timedelta(days=days),
        ca_path_length=path_length,
        extended_key_usage=extended_key_usage,
        issuer_key=None,
    )
    return Issued(key, certificate)


def _issue(
    issuer: Issued,
    name: x509.Name,
    days: int,
    now: dt.datetime,
    path_length: int | None,
    extended_key_usage: list[x509.ObjectIdentifier],
) -> Issued:
    """A certificate for a new key, signed by `issuer`; `path_length` None: not a CA."""
    key = new_key()
    start = now - BACKDATE
    certificate = _certificate(
        name,
        issuer.certificate.subject,
        key.public_key(),
        issuer.key,
        start,
        start + dt.timedelta(days=days),
        ca_path_length=path_length,
        extended_key_usage=extended_key_usage,
        issuer_key=issuer.key.public_key(),
    )
    return Issued(key, certificate)


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    signer: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    end: dt.datetime,
    *,
    ca_path_length: int | None,
    extended_key_usage: list[x509.ObjectIdentifier] | None,
    issuer_key: ec.EllipticCurvePublicKey | None,
) -> x509.Certificate:
    ca = ca_path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=ca_path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    if extended_key_usage is not None:
        # The TSA's must be critical (RFC 3161 2.3); Fulcio's is informational.
        critical = ExtendedKeyUsageOID.TIME_STAMPING in extended_key_usage
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(extended_key_usage), critical=critical
        )
    return builder.sign(signer, hashes.SHA256())
