"""cosign's legacy signature format, turned into Sigstore bundles so one verifier checks both.

cosign before v3 stores an image signature as a layer of the `sha256-<hex>.sig` manifest: the
layer is a "simple signing" payload naming the image digest, and its annotations carry the
signature, the Fulcio certificate and chain, and the Rekor "bundle" (the SET and the entry, but
no inclusion proof). Attestations (`.att`) are the same with a DSSE envelope as the layer.

The bundle built here is a v0.1 Sigstore bundle (the version whose entries need only a SET);
`airgap proofs fetch` later adds the inclusion proof that makes it checkable against pinned
checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography import x509

from offline.errors import VerificationFailure
from offline.oci.manifest import Descriptor
from offline.record import Record
from offline.trust.key_encoding import Encoding

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"

SIMPLE_SIGNING_TYPES = frozenset({"cosign container image signature", "atomic container signature"})
# What reading registry-supplied JSON of the wrong shape raises: each becomes a LegacyFormatError.
_MALFORMED = (ValueError, KeyError, IndexError, TypeError, OverflowError, RecursionError)


class LegacyFormatError(VerificationFailure):
    """A legacy cosign signature layer that cannot be read as cosign writes it."""


class LegacySignature(Record):
    """One layer of a cosign `.sig` or `.att` manifest, with what its annotations say."""

    __slots__ = (
        "certificate",
        "layer_digest",
        "media_type",
        "payload",
        "rekor_bundle",
        "rfc3161_timestamp",
        "signature",
    )

    def __init__(
        self,
        layer_digest: str,
        media_type: str,
        payload: bytes,
        signature: bytes,
        certificate: x509.Certificate | None,
        rekor_bundle: dict[str, Any] | None,
        rfc3161_timestamp: bytes | None,
    ) -> None:
        self.layer_digest = layer_digest
        self.media_type = media_type
        self.payload = payload
        self.signature = signature
        self.certificate = certificate
        self.rekor_bundle = rekor_bundle
        self.rfc3161_timestamp = rfc3161_timestamp

    @property
    def is_attestation(self) -> bool:
        return self.media_type == DSSE_MEDIA_TYPE

    def signed_image_digest(self) -> str:
        """The image digest a simple-signing payload claims (`critical.image`)."""
        try:
            doc = json.loads(self.payload)
            critical = doc["critical"]
            kind = critical["type"]
            digest = critical["image"]["docker-manifest-digest"]
        except _MALFORMED as exc:
            raise LegacyFormatError(
                f"signature layer {self.layer_digest}: not a simple-signing payload ({exc})"
            ) from exc
        if not isinstance(kind, str) or kind not in SIMPLE_SIGNING_TYPES:
            raise LegacyFormatError(
                f"signature layer {self.layer_digest}: payload type {kind!r} is not an image "
                f"signature"
            )
        if not isinstance(digest, str):
            raise LegacyFormatError(f"signature layer {self.layer_digest}: no image digest")
        return digest


def _b64decode(value: str, what: str, layer: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LegacyFormatError(f"signature layer {layer}: {what} is not base64") from exc


def read_layer(descriptor: Descriptor, payload: bytes) -> LegacySignature:
    """Read one signature layer from its (checked) manifest descriptor and its blob."""
    digest = descriptor.digest
    media_type = descriptor.media_type
    if media_type not in (SIMPLE_SIGNING_MEDIA_TYPE, DSSE_MEDIA_TYPE):
        raise LegacyFormatError(f"signature layer {digest}: unexpected media type {media_type!r}")
    annotations = descriptor.annotations
    if media_type == DSSE_MEDIA_TYPE:
        # Attestations carry the signature inside the envelope; the annotation is empty.
        try:
            envelope = json.loads(payload)
            signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
        except (*_MALFORMED, binascii.Error) as exc:
            raise LegacyFormatError(f"attestation layer {digest}: not a DSSE envelope") from exc
    else:
        raw = annotations.get(SIGNATURE_ANNOTATION)
        if not isinstance(raw, str):
            raise LegacyFormatError(f"signature layer {digest}: no {SIGNATURE_ANNOTATION}")
        signature = _b64decode(raw, "signature", digest)

    certificate = None
    pem = annotations.get(CERTIFICATE_ANNOTATION)
    if pem:
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            raise LegacyFormatError(f"signature layer {digest}: unreadable certificate") from exc

    rekor_bundle = None
    raw_bundle = annotations.get(REKOR_BUNDLE_ANNOTATION)
    if raw_bundle:
        try:
            rekor_bundle = json.loads(raw_bundle)
        except _MALFORMED as exc:
            raise LegacyFormatError(f"signature layer {digest}: Rekor bundle is not JSON") from exc
        if not isinstance(rekor_bundle, dict) or not rekor_bundle:
            # Present but empty or not an object: never read as "no log entry".
            raise LegacyFormatError(f"signature layer {digest}: Rekor bundle is not an object")

    timestamp = None
    raw_timestamp = annotations.get(TIMESTAMP_ANNOTATION)
    if raw_timestamp:
        try:
            timestamp_doc = json.loads(raw_timestamp)
            timestamp = _b64decode(timestamp_doc["SignedRFC3161Timestamp"], "timestamp", digest)
        except _MALFORMED as exc:
            raise LegacyFormatError(f"signature layer {digest}: unreadable timestamp") from exc

    return LegacySignature(
        digest, media_type, payload, signature, certificate, rekor_bundle, timestamp
    )


def _tlog_entry(rekor_bundle: dict[str, Any], layer: str) -> dict[str, Any]:
    try:
        entry = rekor_bundle["Payload"]
        body = _b64decode(entry["body"], "Rekor entry body", layer)
        kind = json.loads(body)
        return {
            "logIndex": str(int(entry["logIndex"])),
            "logId": {"keyId": base64.b64encode(bytes.fromhex(entry["logID"])).decode()},
            "kindVersion": {"kind": kind["kind"], "version": kind["apiVersion"]},
            "integratedTime": str(int(entry["integratedTime"])),
            "inclusionPromise": {"signedEntryTimestamp": rekor_bundle["SignedEntryTimestamp"]},
            "canonicalizedBody": entry["body"],
        }
    except _MALFORMED as exc:
        raise LegacyFormatError(
            f"signature layer {layer}: unreadable Rekor bundle ({exc})"
        ) from exc


def to_sigstore_bundle(legacy: LegacySignature) -> dict[str, Any]:
    """The v0.1 Sigstore bundle that says what the legacy layer says."""
    material: dict[str, Any] = {}
    if legacy.certificate is not None:
        der = legacy.certificate.public_bytes(Encoding.DER)
        # Only the leaf: trust anchors come from the trusted root, never from the registry.
        material["x509CertificateChain"] = {
            "certificates": [{"rawBytes": base64.b64encode(der).decode()}]
        }
    else:
        material["publicKey"] = {"hint": legacy.layer_digest}
    material["tlogEntries"] = (
        [_tlog_entry(legacy.rekor_bundle, legacy.layer_digest)] if legacy.rekor_bundle else []
    )
    if legacy.rfc3161_timestamp is not None:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [
                {"signedTimestamp": base64.b64encode(legacy.rfc3161_timestamp).decode()}
            ]
        }
    bundle: dict[str, Any] = {"mediaType": BUNDLE_V01, "verificationMaterial": material}
    if legacy.is_attestation:
        bundle["dsseEnvelope"] = json.loads(legacy.payload)
    else:
        bundle["messageSignature"] = {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(hashlib.sha256(legacy.payload).digest()).decode(),
            },
            "signature": base64.b64encode(legacy.signature).decode(),
        }
    return bundle
