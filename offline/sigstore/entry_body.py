"""Log entry bodies must describe the bundle they come with (variants of CVE-2022-36056).

One check for every entry kind airgap accepts, for certificate and key signers alike:
hashedrekord 0.0.1 and 0.0.2 (message signatures, and DSSE in Rekor v2), dsse 0.0.1 and
intoto 0.0.2 (DSSE in Rekor v1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography import x509

from offline.errors import VerificationFailure
from offline.inputs import decode_json
from offline.record import Record
from offline.sigstore.model import SigstoreBundle
from offline.tlog.entry_message import TransparencyLogEntry
from offline.trust.key_encoding import Encoding, load_pem_public_key, spki_der
from offline.trust.root import PublicKey

SUPPORTED_KINDS = frozenset(
    {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1"), ("intoto", "0.0.2")}
)


class EntryMismatch(VerificationFailure):
    """The log entry is about something other than this bundle."""


class Signer(Record):
    """Who signed: a leaf certificate (keyless) or a bare public key (managed key)."""

    __slots__ = ("certificate", "public_key")

    def __init__(self, public_key: PublicKey, certificate: x509.Certificate | None = None) -> None:
        self.public_key = public_key
        self.certificate = certificate

    def matches_pem(self, pem: bytes) -> bool:
        """Whether a PEM certificate or key recorded in the log is this signer."""
        if self.certificate is not None:
            try:
                return x509.load_pem_x509_certificate(pem) == self.certificate
            except ValueError:
                return False
        try:
            recorded = load_pem_public_key(pem)
        except ValueError:
            return False
        return spki_der(recorded) == spki_der(self.public_key)

    def matches_der(self, der: bytes, is_certificate: bool) -> bool:
        if self.certificate is not None:
            return is_certificate and der == self.certificate.public_bytes(Encoding.DER)
        return not is_certificate and der == spki_der(self.public_key)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what a DSSE signature actually signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise EntryMismatch(f"log entry body: {where} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise EntryMismatch(f"log entry body: {where} is not base64") from exc


def _get(node: Any, key: str) -> Any:
    """`node[key]` (None when absent) of a body object; a node of another type is a mismatch."""
    if not isinstance(node, dict):
        raise EntryMismatch(f"log entry body: the object holding {key} is not an object")
    return node.get(key)


def _text(data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EntryMismatch("log entry body: a double-encoded field is not base64 text") from exc


def _dig(body: Any, *path: str) -> Any:
    node = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise EntryMismatch(f"log entry body has no {'.'.join(path)}")
        node = node[key]
    return node


def check_entry_body(
    entry: TransparencyLogEntry,
    bundle: SigstoreBundle,
    signer: Signer,
    artifact_digest: bytes | None,
) -> None:
    """Raise EntryMismatch unless the entry records this signature, signer and content."""
    kind = (entry.kind_version.kind, entry.kind_version.version)
    if kind not in SUPPORTED_KINDS:
        raise EntryMismatch(f"unsupported log entry kind {kind[0]}/{kind[1]}")
    body = decode_json(entry.canonicalized_body, "log entry body", EntryMismatch)
    if (_dig(body, "kind"), _dig(body, "apiVersion")) != kind:
        raise EntryMismatch("log entry body kind differs from the entry's kindVersion")

    envelope = bundle.envelope
    if kind[0] == "hashedrekord":
        if envelope is not None:
            if kind[1] != "0.0.2":
                raise EntryMismatch("a DSSE envelope cannot be logged as hashedrekord 0.0.1")
            digest = hashlib.sha256(pae(envelope.payload_type, envelope.payload)).digest()
        else:
            if artifact_digest is None:
                raise EntryMismatch("no artifact digest to compare with the log entry")
            digest = artifact_digest
        if kind[1] == "0.0.1":
            _check_hashedrekord_v001(body, bundle, signer, digest)
        else:
            _check_hashedrekord_v002(body, bundle, signer, digest)
        return

    if envelope is None:
        raise EntryMismatch(f"a {kind[0]} log entry needs a DSSE envelope in the bundle")
    payload_hash = hashlib.sha256(envelope.payload).hexdigest()
    if kind[0] == "dsse":
        _check_hash(_dig(body, "spec", "payloadHash"), payload_hash, "payload hash")
        recorded = _dig(body, "spec", "signatures")
        if not isinstance(recorded, list) or len(recorded) != 1:
            raise EntryMismatch("log entry must record exactly one DSSE signature")
        if _b64(_get(recorded[0], "signature"), "signature") != envelope.signatures[0].sig:
            raise EntryMismatch("log entry signature differs from the bundle's")
        if not signer.matches_pem(_b64(_get(recorded[0], "verifier"), "verifier")):
            raise EntryMismatch("log entry names another signer than the bundle")
        return

    # intoto 0.0.2 double-encodes: base64 of the base64 text the envelope carries.
    content = _dig(body, "spec", "content")
    _check_hash(_dig(content, "payloadHash"), payload_hash, "payload hash")
    recorded_env = _dig(content, "envelope")
    if _b64(_text(_b64(_get(recorded_env, "payload"), "payload")), "payload") != envelope.payload:
        raise EntryMismatch("log entry payload differs from the bundle's")
    if _get(recorded_env, "payloadType") != envelope.payload_type:
        raise EntryMismatch("log entry payload type differs from the bundle's")
    sigs = _get(recorded_env, "signatures")
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise EntryMismatch("log entry must record exactly one DSSE signature")
    if _b64(_text(_b64(_get(sigs[0], "sig"), "sig")), "sig") != envelope.signatures[0].sig:
        raise EntryMismatch("log entry signature differs from the bundle's")
    if not signer.matches_pem(_b64(_get(sigs[0], "publicKey"), "publicKey")):
        raise EntryMismatch("log entry names another signer than the bundle")


def _check_hash(recorded: Any, expected_hex: str, what: str) -> None:
    if not isinstance(recorded, dict) or _get(recorded, "algorithm") != "sha256":
        raise EntryMismatch(f"log entry {what} is not a sha256 digest")
    if _get(recorded, "value") != expected_hex:
        raise EntryMismatch(f"log entry {what} differs from the bundle's")


def _check_hashedrekord_v001(
    body: Any, bundle: SigstoreBundle, signer: Signer, digest: bytes
) -> None:
    _check_hash(_dig(body, "spec", "data", "hash"), digest.hex(), "artifact digest")
    signature = _dig(body, "spec", "signature")
    if _b64(_get(signature, "content"), "signature.content") != bundle.signature:
        raise EntryMismatch("log entry signature differs from the bundle's")
    pem = _b64(_dig(signature, "publicKey", "content"), "signature.publicKey.content")
    if not signer.matches_pem(pem):
        raise EntryMismatch("log entry names another signer than the bundle")


def _check_hashedrekord_v002(
    body: Any, bundle: SigstoreBundle, signer: Signer, digest: bytes
) -> None:
    spec = _dig(body, "spec", "hashedRekordV002")
    data = _dig(spec, "data")
    if _get(data, "algorithm") != "SHA2_256":
        raise EntryMismatch(f"log entry digest algorithm {_get(data, 'algorithm')!r} unsupported")
    if _b64(_get(data, "digest"), "data.digest") != digest:
        raise EntryMismatch("log entry digest differs from the bundle's")
    signature = _dig(spec, "signature")
    if _b64(_get(signature, "content"), "signature.content") != bundle.signature:
        raise EntryMismatch("log entry signature differs from the bundle's")
    verifier = _dig(signature, "verifier")
    if _get(verifier, "x509Certificate") is not None:
        der = _b64(_dig(verifier, "x509Certificate", "rawBytes"), "x509Certificate")
        matches = signer.matches_der(der, is_certificate=True)
    else:
        der = _b64(_dig(verifier, "publicKey", "rawBytes"), "publicKey")
        matches = signer.matches_der(der, is_certificate=False)
    if not matches:
        raise EntryMismatch("log entry names another signer than the bundle")
