"""Trusted roots (`trusted_root.json`): the log, CA and TSA keys a verifier believes, with their
validity windows.

Every authority (transparency log, CT log, certificate authority, timestamp authority) must carry
a window with a start, and counts only for times inside it. The parser checks every field's JSON
type, so a malformed trusted root is one UsageError, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from offline.datadir import user_data_dir
from offline.errors import AirgapError, UsageError
from offline.inputs import parse_json_object, read_input
from offline.record import Record
from offline.trust.key_encoding import load_der_public_key

TRUSTED_ROOT_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        # Accepted on read for forward compatibility; we never emit it (current clients reject it).
        "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    }
)
TRUSTED_ROOT_ENV = "AIRGAP_TRUSTED_ROOT"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


class ValidityWindow(Record):
    """When an authority may vouch for something: `start` is required, no `end` means open."""

    __slots__ = ("end", "start")

    def __init__(self, start: datetime, end: datetime | None) -> None:
        self.start = start
        self.end = end

    def covers(self, when: datetime) -> bool:
        """Both ends are inclusive (the protobuf-specs TimeRange is a closed interval)."""
        return self.start <= when and (self.end is None or when <= self.end)

    def describe(self) -> str:
        end = self.end.isoformat() if self.end is not None else "open"
        return f"{self.start.isoformat()} to {end}"


class LogInstance(Record):
    """One transparency log (Rekor or CT) as a trusted root describes it."""

    __slots__ = ("base_url", "key_details", "log_id", "public_key", "public_key_der", "validity")

    def __init__(
        self,
        base_url: str,
        log_id: bytes,
        public_key: PublicKey,
        public_key_der: bytes,
        key_details: str,
        validity: ValidityWindow,
    ) -> None:
        self.base_url = base_url
        self.log_id = log_id
        self.public_key = public_key
        self.public_key_der = public_key_der
        self.key_details = key_details
        self.validity = validity

    @property
    def hostname(self) -> str:
        """base_url's host without scheme, port or path (Rekor v2's checkpoint origin)."""
        url = self.base_url if "://" in self.base_url else f"https://{self.base_url}"
        try:
            host = urlsplit(url).hostname
        except ValueError:  # e.g. an unbalanced "[": no host to compare with
            host = None
        return host or self.base_url

    @property
    def key_hash(self) -> bytes:
        """SHA-256 of the key's DER: the RFC 6962 log ID, and Rekor v1's checkpoint key hint."""
        return hashlib.sha256(self.public_key_der).digest()

    def valid_at(self, when: datetime) -> bool:
        """Whether the key was valid at `when`; both ends of the window are inclusive."""
        return self.validity.covers(when)

    def describe(self) -> str:
        return f"{self.base_url} (log ID {self.log_id.hex()[:16]}…)"


class CertificateAuthority(Record):
    """A Fulcio CA or a timestamp authority: its chain (leaf or issuing CA first, root last)."""

    __slots__ = ("certificates", "uri", "validity")

    def __init__(
        self, uri: str, certificates: tuple[x509.Certificate, ...], validity: ValidityWindow
    ) -> None:
        self.uri = uri
        self.certificates = certificates
        self.validity = validity

    def valid_at(self, when: datetime) -> bool:
        return self.validity.covers(when)


class TrustedRoot(Record):
    __slots__ = (
        "certificate_authorities",
        "ctlogs",
        "document",
        "path",
        "timestamp_authorities",
        "tlogs",
    )

    def __init__(
        self,
        path: Path | None,
        document: dict[str, Any],
        tlogs: tuple[LogInstance, ...],
        ctlogs: tuple[LogInstance, ...],
        certificate_authorities: tuple[CertificateAuthority, ...] = (),
        timestamp_authorities: tuple[CertificateAuthority, ...] = (),
    ) -> None:
        self.path = path
        self.document = document
        self.tlogs = tlogs
        self.ctlogs = ctlogs
        self.certificate_authorities = certificate_authorities
        self.timestamp_authorities = timestamp_authorities

    def tlog_by_id(self, log_id: bytes) -> LogInstance | None:
        return next((t for t in self.tlogs if t.log_id == log_id), None)

    def tlogs_with_hint(self, hint: bytes) -> list[LogInstance]:
        """Logs whose 4-byte key ID prefix is `hint` (either the log ID or the key hash)."""
        return [t for t in self.tlogs if hint in (t.log_id[:4], t.key_hash[:4])]


# RFC 3339 as protojson writes a Timestamp: always an offset, at most nanoseconds.
_RFC3339 = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})"
)


def parse_rfc3339(value: object, where: str) -> datetime:
    """A timezone-aware time from an RFC 3339 string; anything else is a UsageError."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise UsageError(f"{where}: {str(value)[:40]!r} is not an RFC 3339 time")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")  # datetime keeps microseconds
    offset = "+00:00" if match["offset"] == "Z" else match["offset"]
    try:
        return datetime.fromisoformat(f"{match['base']}.{fraction}{offset}")
    except ValueError as exc:
        raise UsageError(f"{where}: {str(value)[:40]!r} is not a valid time ({exc})") from exc


def _window(raw: object, where: str) -> ValidityWindow:
    # sigstore-go refuses a log key without validFor.start; an authority without a start is
    # refused here too: an absent bound is never read as "always".
    # protojson reads null as "not set": a null end is an open window, a null start is missing.
    valid_for = _object(raw, where)
    if valid_for.get("start") is None:
        raise UsageError(f"trusted root: {where}.start is missing")
    start = parse_rfc3339(valid_for["start"], f"trusted root: {where}.start")
    end = None
    if valid_for.get("end") is not None:
        end = parse_rfc3339(valid_for["end"], f"trusted root: {where}.end")
        if end < start:
            raise UsageError(f"trusted root: {where} ends before it starts")
    return ValidityWindow(start, end)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"trusted root: {where} is missing or not an object")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"trusted root: {where} is not a string")
    return value


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise UsageError(f"trusted root: {key} is not a list")
    return value


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise UsageError(f"trusted root: {where} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise UsageError(f"trusted root: {where} is not valid base64") from exc


def load_public_key(der: bytes, where: str) -> PublicKey:
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{where}: not a DER public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise UsageError(f"{where}: unsupported key type {type(key).__name__}")
    return key


def load_certificate(
    der: bytes, where: str, error: type[AirgapError] = UsageError
) -> x509.Certificate:
    """A DER certificate whose lazily parsed parts (extensions, public key) are read once here,
    so that a malformed extension or key is this one `error`, not an exception deep inside a
    later check."""
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.InvalidVersion) as exc:
        raise error(f"{where}: unreadable certificate ({exc})") from exc
    except x509.UnsupportedGeneralNameType as exc:
        raise error(f"{where}: certificate with an unsupported name type ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise error(f"{where}: certificate with an unsupported key type {type(key).__name__}")
    for extension in extensions:  # touching each value parses it
        _ = extension.value
    return cert


def _log_instance(raw: Any, where: str) -> LogInstance:
    entry = _object(raw, where)
    public_key = _object(entry.get("publicKey"), f"{where}.publicKey")
    der = _b64(public_key.get("rawBytes"), f"{where}.publicKey.rawBytes")
    log_id = _object(entry.get("logId"), f"{where}.logId")
    return LogInstance(
        base_url=_string(entry.get("baseUrl", ""), f"{where}.baseUrl"),
        log_id=_b64(log_id.get("keyId"), f"{where}.logId.keyId"),
        public_key=load_public_key(der, f"trusted root: {where}.publicKey"),
        public_key_der=der,
        key_details=_string(public_key.get("keyDetails", ""), f"{where}.publicKey.keyDetails"),
        validity=_window(public_key.get("validFor"), f"{where}.publicKey.validFor"),
    )


def _authority(raw: Any, where: str) -> CertificateAuthority:
    authority = _object(raw, where)
    chain = _object(authority.get("certChain"), f"{where}.certChain").get("certificates")
    if not isinstance(chain, list) or not chain:
        raise UsageError(f"trusted root: {where}.certChain has no certificates")
    certificates = []
    for i, item in enumerate(chain):
        item_where = f"{where}.certChain.certificates[{i}]"
        der = _b64(_object(item, item_where).get("rawBytes"), f"{item_where}.rawBytes")
        certificates.append(load_certificate(der, f"trusted root: {item_where}"))
    return CertificateAuthority(
        uri=_string(authority.get("uri", ""), f"{where}.uri"),
        certificates=tuple(certificates),
        validity=_window(authority.get("validFor"), f"{where}.validFor"),
    )


def parse_trusted_root(data: bytes | str, path: Path | None = None) -> TrustedRoot:
    name = str(path) if path else "trusted root"
    document = parse_json_object(data, name)
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or media_type not in TRUSTED_ROOT_MEDIA_TYPES:
        raise UsageError(f"{name}: unsupported trusted root media type {media_type!r}")
    tlogs = tuple(_log_instance(t, f"tlogs[{i}]") for i, t in enumerate(_list(document, "tlogs")))
    ctlogs = tuple(
        _log_instance(t, f"ctlogs[{i}]") for i, t in enumerate(_list(document, "ctlogs"))
    )
    authorities = tuple(
        _authority(a, f"certificateAuthorities[{i}]")
        for i, a in enumerate(_list(document, "certificateAuthorities"))
    )
    tsas = tuple(
        _authority(a, f"timestampAuthorities[{i}]")
        for i, a in enumerate(_list(document, "timestampAuthorities"))
    )
    return TrustedRoot(path, document, tlogs, ctlogs, authorities, tsas)


def load_trusted_root(path: str | Path) -> TrustedRoot:
    path = Path(path)
    return parse_trusted_root(read_input(path, "trusted root"), path)


def _data_dir_trusted_root() -> Path:
    return user_data_dir() / "trusted_root.json"


def locate_trusted_root(given: Path | None) -> Path | None:
    """The trusted root a run uses: `given`, else $AIRGAP_TRUSTED_ROOT, else trusted_root.json in
    airgap's data directory if present; None when there is none."""
    if given is not None:
        return given
    env = os.environ.get(TRUSTED_ROOT_ENV)
    if env:
        return Path(env)
    candidate = _data_dir_trusted_root()
    return candidate if candidate.exists() else None


def find_trusted_root(given: Path | None) -> TrustedRoot:
    """The trusted root `locate_trusted_root` names, loaded; a one-line error when there is none."""
    path = locate_trusted_root(given)
    if path is None:
        raise UsageError(
            f"no trusted root: give the command one (a trusted_root.json), set "
            f"${TRUSTED_ROOT_ENV} to one, or copy one to {_data_dir_trusted_root()}"
        )
    return load_trusted_root(path)


def find_optional_trusted_root(given: Path | None) -> TrustedRoot | None:
    """The trusted root `locate_trusted_root` names, loaded, or None when there is none."""
    path = locate_trusted_root(given)
    return None if path is None else load_trusted_root(path)
