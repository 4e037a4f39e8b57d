"""Trusted roots (`trusted_root.json`): the log, CA and TSA keys a verifier believes, with their
validity windows.

This is a read-only view for our own checks (checkpoints, log entries, pinning); the `sigstore`
library gets the same file for certificate-chain, SCT and timestamp checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from offline.errors import UsageError
from offline.inputs import parse_json_object, read_input

TRUSTED_ROOT_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        # Accepted on read for forward compatibility; we never emit it (current clients reject it).
        "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    }
)
TRUSTED_ROOT_ENV = "AIRGAP_TRUSTED_ROOT"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class LogInstance:
    """One transparency log (Rekor or CT) as a trusted root describes it."""

    base_url: str
    log_id: bytes
    public_key: PublicKey
    public_key_der: bytes
    key_details: str
    valid_from: datetime | None
    valid_until: datetime | None

    @property
    def hostname(self) -> str:
        """base_url's host without scheme, port or path (Rekor v2's checkpoint origin)."""
        url = self.base_url if "://" in self.base_url else f"https://{self.base_url}"
        return urlsplit(url).hostname or self.base_url

    @property
    def key_hash(self) -> bytes:
        """SHA-256 of the key's DER: the RFC 6962 log ID, and Rekor v1's checkpoint key hint."""
        return hashlib.sha256(self.public_key_der).digest()

    def valid_at(self, when: datetime) -> bool:
        """Whether the key was valid at `when`; both ends of the window are inclusive."""
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_until is None or when <= self.valid_until

    def describe(self) -> str:
        return f"{self.base_url} (log ID {self.log_id.hex()[:16]}…)"


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: its chain (leaf or issuing CA first, root last)."""

    uri: str
    certificates: tuple[x509.Certificate, ...]
    valid_from: datetime | None
    valid_until: datetime | None

    def valid_at(self, when: datetime) -> bool:
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_until is None or when <= self.valid_until


@dataclass(frozen=True)
class TrustedRoot:
    path: Path | None
    document: dict[str, Any]
    tlogs: tuple[LogInstance, ...]
    ctlogs: tuple[LogInstance, ...]
    certificate_authorities: tuple[CertificateAuthority, ...] = ()
    timestamp_authorities: tuple[CertificateAuthority, ...] = ()

    def tlog_by_id(self, log_id: bytes) -> LogInstance | None:
        return next((t for t in self.tlogs if t.log_id == log_id), None)

    def tlogs_with_hint(self, hint: bytes) -> list[LogInstance]:
        """Logs whose 4-byte key ID prefix is `hint` (either the log ID or the key hash)."""
        return [t for t in self.tlogs if hint in (t.log_id[:4], t.key_hash[:4])]


def _timestamp(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"trusted root: {where}: bad timestamp {value!r}") from exc


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise UsageError(f"trusted root: {where} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise UsageError(f"trusted root: {where} is not valid base64") from exc


def load_public_key(der: bytes, where: str) -> PublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise UsageError(f"{where}: not a DER public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise UsageError(f"{where}: unsupported key type {type(key).__name__}")
    return key


def _log_instance(raw: Any, where: str) -> LogInstance:
    if not isinstance(raw, dict):
        raise UsageError(f"trusted root: {where} is not an object")
    public_key = raw.get("publicKey") or {}
    der = _b64(public_key.get("rawBytes"), f"{where}.publicKey.rawBytes")
    valid_for = public_key.get("validFor") or {}
    log_id = raw.get("logId") or {}
    return LogInstance(
        base_url=str(raw.get("baseUrl", "")),
        log_id=_b64(log_id.get("keyId"), f"{where}.logId.keyId"),
        public_key=load_public_key(der, f"trusted root: {where}.publicKey"),
        public_key_der=der,
        key_details=str(public_key.get("keyDetails", "")),
        valid_from=_timestamp(valid_for.get("start"), f"{where}.validFor.start"),
        valid_until=_timestamp(valid_for.get("end"), f"{where}.validFor.end"),
    )


def _authority(raw: Any, where: str) -> CertificateAuthority:
    if not isinstance(raw, dict):
        raise UsageError(f"trusted root: {where} is not an object")
    chain = (raw.get("certChain") or {}).get("certificates") or []
    if not isinstance(chain, list) or not chain:
        raise UsageError(f"trusted root: {where}.certChain has no certificates")
    certificates = []
    for i, item in enumerate(chain):
        der = _b64((item or {}).get("rawBytes"), f"{where}.certChain.certificates[{i}].rawBytes")
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise UsageError(f"trusted root: {where}.certChain[{i}] is not a certificate") from exc
    valid_for = raw.get("validFor") or {}
    return CertificateAuthority(
        uri=str(raw.get("uri", "")),
        certificates=tuple(certificates),
        valid_from=_timestamp(valid_for.get("start"), f"{where}.validFor.start"),
        valid_until=_timestamp(valid_for.get("end"), f"{where}.validFor.end"),
    )


def parse_trusted_root(data: bytes | str, path: Path | None = None) -> TrustedRoot:
    name = str(path) if path else "trusted root"
    document = parse_json_object(data, name)
    media_type = document.get("mediaType")
    if media_type not in TRUSTED_ROOT_MEDIA_TYPES:
        raise UsageError(f"{name}: unsupported trusted root media type {media_type!r}")
    tlogs = tuple(
        _log_instance(t, f"tlogs[{i}]") for i, t in enumerate(document.get("tlogs") or [])
    )
    ctlogs = tuple(
        _log_instance(t, f"ctlogs[{i}]") for i, t in enumerate(document.get("ctlogs") or [])
    )
    authorities = tuple(
        _authority(a, f"certificateAuthorities[{i}]")
        for i, a in enumerate(document.get("certificateAuthorities") or [])
    )
    tsas = tuple(
        _authority(a, f"timestampAuthorities[{i}]")
        for i, a in enumerate(document.get("timestampAuthorities") or [])
    )
    return TrustedRoot(path, document, tlogs, ctlogs, authorities, tsas)


def load_trusted_root(path: str | Path) -> TrustedRoot:
    path = Path(path)
    return parse_trusted_root(read_input(path, "trusted root"), path)


def default_trusted_root_path() -> Path | None:
    """$AIRGAP_TRUSTED_ROOT, else trusted_root.json in the airgap data directory if present."""
    env = os.environ.get(TRUSTED_ROOT_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_path

    candidate = user_data_path("airgap") / "trusted_root.json"
    return candidate if candidate.exists() else None
