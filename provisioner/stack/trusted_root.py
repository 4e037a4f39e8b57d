"""Assembling a `trusted_root.json` for a private Sigstore stack.

The inputs are what an installer knows about the stack it set up: each transparency log's URL,
public key and the time its key came into use; the Fulcio certificate chain and URL; the CT log's
key; optionally timestamp authorities. The output is a TrustedRoot document
(`sigstore_trustroot.proto`) with media type
`application/vnd.dev.sigstore.trustedroot+json;version=0.1`, the version cosign, sigstore-go and
sigstore-python accept (they reject v0.2).

    spec = TrustedRootSpec(
        tlogs=[TransparencyLog.from_pem("http://rekor.internal", rekor_pem, start=created)],
        certificate_authorities=[CertificateAuthority.from_pem("http://fulcio.internal", chain)],
        ctlogs=[TransparencyLog.from_pem("http://ctlog.internal/sigstore", ct_pem, start=...)],
    )
    write_trusted_root(spec, Path("trusted_root.json"))

Log IDs are SHA-256 of the key's DER SubjectPublicKeyInfo (RFC 6962, Rekor v1) unless given (Rekor
v2 uses its checkpoint key ID). Every document is read back with `offline.trust.root` and with
sigstore-python's model before it is returned, so what we write is what our verifier and sigstore
read.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from offline.atomicfile import atomic_write
from offline.errors import UsageError
from offline.trust.root import parse_trusted_root

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

_EC_KEY_DETAILS = {
    "secp256r1": "PKIX_ECDSA_P256_SHA_256",
    "secp384r1": "PKIX_ECDSA_P384_SHA_384",
    "secp521r1": "PKIX_ECDSA_P521_SHA_512",
}
_RSA_KEY_DETAILS = {
    2048: ("PKIX_RSA_PKCS1V15_2048_SHA256", "PKIX_RSA_PSS_2048_SHA256"),
    3072: ("PKIX_RSA_PKCS1V15_3072_SHA256", "PKIX_RSA_PSS_3072_SHA256"),
    4096: ("PKIX_RSA_PKCS1V15_4096_SHA256", "PKIX_RSA_PSS_4096_SHA256"),
}
_HASH_ALGORITHMS = frozenset({"SHA2_256", "SHA2_384", "SHA2_512"})


@dataclass(frozen=True)
class TransparencyLog:
    """A Rekor or CT log: `public_key` is the DER SubjectPublicKeyInfo."""

    base_url: str
    public_key: bytes
    start: datetime
    end: datetime | None = None
    key_details: str | None = None  # derived from the key when None
    log_id: bytes | None = None  # SHA-256 of public_key when None
    hash_algorithm: str = "SHA2_256"

    @classmethod
    def from_pem(
        cls,
        base_url: str,
        public_key_pem: bytes | str,
        start: datetime,
        end: datetime | None = None,
        **kwargs: Any,
    ) -> TransparencyLog:
        der = _pem_public_key_der(public_key_pem, f"log {base_url}")
        return cls(base_url, der, start, end, **kwargs)


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: `chain` is DER certificates, the issuing (or, for
    a TSA, the signing) certificate first and the trust anchor last, as Fulcio's chain file lists
    them.

    `start` defaults to the anchor's notBefore for a CA and the leaf's for a TSA (as
    `cosign trusted-root create` does); `organization`/`common_name` default to the anchor's."""

    uri: str
    chain: Sequence[bytes]
    start: datetime | None = None
    end: datetime | None = None
    organization: str | None = None
    common_name: str | None = None

    @classmethod
    def from_pem(cls, uri: str, chain_pem: bytes | str, **kwargs: Any) -> CertificateAuthority:
        data = chain_pem.encode() if isinstance(chain_pem, str) else chain_pem
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise UsageError(f"certificate chain for {uri}: not PEM certificates ({exc})") from exc
        return cls(uri, [c.public_bytes(serialization.Encoding.DER) for c in certs], **kwargs)


@dataclass(frozen=True)
class TrustedRootSpec:
    tlogs: Sequence[TransparencyLog]
    certificate_authorities: Sequence[CertificateAuthority] = field(default_factory=tuple)
    ctlogs: Sequence[TransparencyLog] = field(default_factory=tuple)
    timestamp_authorities: Sequence[CertificateAuthority] = field(default_factory=tuple)


def build_trusted_root(spec: TrustedRootSpec) -> dict[str, Any]:
    """The TrustedRoot document for `spec`; raises UsageError (one line) on bad input."""
    if not spec.tlogs:
        raise UsageError("trusted root needs at least one transparency log (tlogs)")
    document: dict[str, Any] = {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": _logs(spec.tlogs, "tlogs"),
        # Present even when empty: sigstore-python's model requires both keys.
        "certificateAuthorities": [
            _authority(ca, f"certificateAuthorities[{i}]", tsa=False)
            for i, ca in enumerate(spec.certificate_authorities)
        ],
        "ctlogs": _logs(spec.ctlogs, "ctlogs"),
    }
    # Left out when empty, as protobuf's JSON form (and `cosign trusted-root create`) does.
    if spec.timestamp_authorities:
        document["timestampAuthorities"] = [
            _authority(ca, f"timestampAuthorities[{i}]", tsa=True)
            for i, ca in enumerate(spec.timestamp_authorities)
        ]
    _read_back(document)
    return document


def trusted_root_json(spec: TrustedRootSpec) -> str:
    return json.dumps(build_trusted_root(spec), indent=2) + "\n"


def write_trusted_root(spec: TrustedRootSpec, path: Path) -> Path:
    """Build, check and atomically write the document to `path` (mode 0644: it is public)."""
    atomic_write(path, trusted_root_json(spec).encode(), mode=0o644)
    return path


# -- pieces ---------------------------------------------------------------------------------------


def _logs(logs: Sequence[TransparencyLog], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[bytes, int] = {}
    for i, log in enumerate(logs):
        name = f"{where}[{i}]"
        entry = _log(log, name)
        log_id = base64.b64decode(entry["logId"]["keyId"])
        if log_id in seen:
            raise UsageError(
                f"{name}: log ID {log_id.hex()[:16]}… repeats {where}[{seen[log_id]}]; "
                f"verifiers look logs up by ID, so each key may appear once"
            )
        seen[log_id] = i
        out.append(entry)
    return out


def _log(log: TransparencyLog, where: str) -> dict[str, Any]:
    base_url = _url(log.base_url, f"{where}.baseUrl")
    name = f"{where} ({base_url})"
    key = _public_key(log.public_key, f"{name}: public key")
    details = _key_details(key, log.key_details, name)
    if log.hash_algorithm not in _HASH_ALGORITHMS:
        raise UsageError(
            f"{name}: hash algorithm {log.hash_algorithm!r} is not one of "
            f"{', '.join(sorted(_HASH_ALGORITHMS))}"
        )
    log_id = log.log_id if log.log_id is not None else hashlib.sha256(log.public_key).digest()
    if len(log_id) != 32:
        raise UsageError(f"{name}: log ID must be 32 bytes, got {len(log_id)}")
    return {
        "baseUrl": base_url,
        "hashAlgorithm": log.hash_algorithm,
        "publicKey": {
            "rawBytes": _b64(log.public_key),
            "keyDetails": details,
            "validFor": _valid_for(log.start, log.end, name),
        },
        "logId": {"keyId": _b64(log_id)},
    }


def _authority(ca: CertificateAuthority, where: str, *, tsa: bool) -> dict[str, Any]:
    uri = _url(ca.uri, f"{where}.uri")
    name = f"{where} ({uri})"
    if not ca.chain:
        raise UsageError(f"{name}: certificate chain is empty")
    certs = []
    for i, der in enumerate(ca.chain):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise UsageError(f"{name}: certificate {i} is not DER X.509 ({exc})") from exc
    _check_chain(certs, name, tsa=tsa)
    anchor = certs[-1]
    start = ca.start or (certs[0] if tsa else anchor).not_valid_before_utc
    return {
        "subject": {
            "organization": ca.organization
            if ca.organization is not None
            else _name_attribute(anchor, x509.NameOID.ORGANIZATION_NAME),
            "commonName": ca.common_name
            if ca.common_name is not None
            else _name_attribute(anchor, x509.NameOID.COMMON_NAME),
        },
        "uri": uri,
        "certChain": {"certificates": [{"rawBytes": _b64(der)} for der in ca.chain]},
        "validFor": _valid_for(start, ca.end, name),
    }


def _check_chain(certs: list[x509.Certificate], name: str, *, tsa: bool) -> None:
    for i, (cert, issuer) in enumerate(itertools.pairwise(certs)):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise UsageError(
                f"{name}: certificate {i} ({cert.subject.rfc4514_string()}) is not issued by "
                f"certificate {i + 1} ({issuer.subject.rfc4514_string()}); list the chain "
                f"issuing certificate first, root last"
            ) from exc
    must_be_ca = certs[1:] if tsa else certs
    for cert in must_be_ca:
        if not _is_ca(cert):
            raise UsageError(
                f"{name}: {cert.subject.rfc4514_string()} is not a CA certificate "
                f"(basicConstraints CA:TRUE)"
            )
    if tsa and not _has_eku(certs[0], ExtendedKeyUsageOID.TIME_STAMPING):
        raise UsageError(
            f"{name}: the first certificate ({certs[0].subject.rfc4514_string()}) must be the "
            f"TSA's signing certificate with extended key usage timeStamping"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _has_eku(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        return oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False


def _name_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _url(value: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: URL is empty")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{where}: {value!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise UsageError(f"{where}: {value!r} must not have a query or fragment")
    return value.strip().rstrip("/")


def _public_key(der: bytes, where: str) -> Any:
    if not isinstance(der, bytes) or not der:
        raise UsageError(f"{where} is empty (expected DER SubjectPublicKeyInfo bytes)")
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise UsageError(f"{where} is not a DER SubjectPublicKeyInfo ({exc})") from exc
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != der:
        raise UsageError(f"{where} is not in canonical DER form; the log ID would not match")
    return key


def _key_details(key: Any, given: str | None, name: str) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        allowed: tuple[str, ...] = (_EC_KEY_DETAILS.get(key.curve.name, ""),)
        if not allowed[0]:
            raise UsageError(f"{name}: unsupported elliptic curve {key.curve.name}")
    elif isinstance(key, ed25519.Ed25519PublicKey):
        allowed = ("PKIX_ED25519", "PKIX_ED25519_PH")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in _RSA_KEY_DETAILS:
            raise UsageError(f"{name}: unsupported RSA key size {key.key_size}")
        allowed = _RSA_KEY_DETAILS[key.key_size]
    else:
        raise UsageError(f"{name}: unsupported key type {type(key).__name__}")
    if given is None:
        return allowed[0]
    if given not in allowed:
        raise UsageError(f"{name}: key details {given!r} do not fit the key (use {allowed[0]})")
    return given


def _valid_for(start: datetime, end: datetime | None, name: str) -> dict[str, str]:
    window = {"start": _timestamp(start, f"{name}: validFor.start")}
    if end is not None:
        window["end"] = _timestamp(end, f"{name}: validFor.end")
        if end < start:
            raise UsageError(f"{name}: validFor ends ({window['end']}) before it starts")
    return window


def _timestamp(value: datetime, where: str) -> str:
    if not isinstance(value, datetime):
        raise UsageError(f"{where} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"{where} has no time zone; give an aware datetime (e.g. UTC)")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _pem_public_key_der(pem: bytes | str, where: str) -> bytes:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{where}: not a PEM public key ({exc})") from exc
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _read_back(document: dict[str, Any]) -> None:
    """Self-check: our own reader and sigstore-python's model both load the document."""
    text = json.dumps(document)
    parse_trusted_root(text)
    try:
        from sigstore.models import TrustedRoot as SigstoreTrustedRoot
        from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

        SigstoreTrustedRoot(TrustedRootModel.from_json(text))
    except Exception as exc:  # sigstore raises several unrelated types for a bad document
        raise UsageError(f"assembled trusted root does not load in sigstore: {exc}") from exc
