"""Signed certificate timestamps embedded in Fulcio certificates (RFC 6962 section 3.2).

Written here rather than imported from `sigstore` because importing the library's SCT module
pulls in its whole client (HTTP, Rekor, TUF models) and more than doubles the start-up time of a
CD host's `airgap verify`. The rules are the library's: exactly one SCT, SHA-256, precertificate
entries bound to the issuer's key, the log found by its ID in the trusted root's CT logs.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import UTC

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID

from offline.errors import VerificationFailure
from offline.trust.key_encoding import Encoding, spki_der
from offline.trust.root import LogInstance


class SctFailure(VerificationFailure):
    pass


def _u24(length: int) -> bytes:
    if length >= 1 << 24:
        raise SctFailure(f"certificate of {length} bytes is too large for an SCT")
    return length.to_bytes(3, "big")


def _issuer(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """The CA that issued the leaf; skip a precertificate signing certificate if present."""
    if not chain:
        raise SctFailure("no issuer certificate to bind the SCT to")
    issuer = chain[0]
    try:
        eku = issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in eku:
        if len(chain) < 2:
            raise SctFailure("precertificate signing certificate without its issuer")
        issuer = chain[1]
    try:
        is_ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise SctFailure("the SCT's issuer certificate is not a CA")
    return issuer


def _signed_data(
    sct: x509.certificate_transparency.SignedCertificateTimestamp,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
) -> bytes:
    if sct.entry_type == LogEntryType.PRE_CERTIFICATE:
        issuer_spki = spki_der(_issuer(chain).public_key())
        tbs = cert.tbs_precertificate_bytes
        entry = hashlib.sha256(issuer_spki).digest() + _u24(len(tbs)) + tbs
    else:
        der = cert.public_bytes(Encoding.DER)
        entry = _u24(len(der)) + der
    millis = int(sct.timestamp.timestamp() * 1000)
    extensions = sct.extension_bytes
    return (
        struct.pack("!BBQH", sct.version.value, 0, millis, sct.entry_type.value)
        + entry
        + struct.pack("!H", len(extensions))
        + extensions
    )


def verify_embedded_sct(
    cert: x509.Certificate, chain: Sequence[x509.Certificate], ctlogs: Sequence[LogInstance]
) -> None:
    """Raise SctFailure unless `cert` carries one SCT signed by a CT log of the trusted root."""
    try:
        scts = cert.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound as exc:
        raise SctFailure("the signing certificate carries no SCT") from exc
    if len(scts) != 1:
        raise SctFailure(f"expected one SCT in the signing certificate, found {len(scts)}")
    sct = scts[0]
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise SctFailure("the SCT is not signed with SHA-256")
    logs = [c for c in ctlogs if c.log_id == sct.log_id]
    if not logs:
        raise SctFailure(
            f"the SCT is from CT log {sct.log_id.hex()[:16]}…, not in the trusted root"
        )
    # cryptography gives the SCT's time without a zone; RFC 6962 times are UTC.
    when = sct.timestamp.replace(tzinfo=UTC)
    log = next((c for c in logs if c.valid_at(when)), None)
    if log is None:
        raise SctFailure(
            f"the SCT's time {when.isoformat()} is outside CT log {logs[0].base_url}'s "
            f"window in the trusted root ({logs[0].validity.describe()})"
        )
    data = _signed_data(sct, cert, chain)
    key = log.public_key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sct.signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sct.signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sct.signature, data)
    except InvalidSignature as exc:
        raise SctFailure(f"the SCT's signature does not verify with CT log {log.base_url}") from exc
