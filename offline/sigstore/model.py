"""Reading Sigstore bundles (v0.1 to v0.3) into the parts the verifier checks.

The messages are read by offline.sigstore.messages (strictly, with no model library: its
import would cost a one-image check more than the check); the structural rules each bundle
version imposes are checked here, for key-based and certificate bundles alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from offline.errors import UsageError, VerificationFailure
from offline.inputs import open_input, parse_json_object, read_input
from offline.protojson import ProtoJsonError
from offline.record import Record
from offline.sigstore.messages import Bundle, Envelope, read_bundle
from offline.tlog.entry_message import TransparencyLogEntry
from offline.trust.root import load_certificate

MEDIA_TYPE_VERSIONS = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": (0, 1),
    "application/vnd.dev.sigstore.bundle+json;version=0.2": (0, 2),
    "application/vnd.dev.sigstore.bundle+json;version=0.3": (0, 3),
    "application/vnd.dev.sigstore.bundle.v0.3+json": (0, 3),
}
MAX_TLOG_ENTRIES = 32
MAX_INT64 = (1 << 63) - 1
# The signed entry timestamp signs logIndex in RFC 8785 JSON, which holds integers up to 2^53.
MAX_LOG_INDEX = (1 << 53) - 1
MAX_INTEGRATED_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds


class BundleFormatError(VerificationFailure):
    """The bundle parses but breaks a rule of its format version."""


class SigstoreBundle(Record):
    __slots__ = ("key_hint", "leaf_certificate", "model", "raw", "version")

    def __init__(
        self,
        raw: bytes,
        model: Bundle,
        version: tuple[int, int],
        leaf_certificate: x509.Certificate | None,
        key_hint: str | None,
    ) -> None:
        self.raw = raw
        self.model = model
        self.version = version
        self.leaf_certificate = leaf_certificate
        self.key_hint = key_hint

    @property
    def media_type(self) -> str:
        return self.model.media_type

    @property
    def tlog_entries(self) -> Sequence[TransparencyLogEntry]:
        return self.model.verification_material.tlog_entries

    @property
    def envelope(self) -> Envelope | None:
        return self.model.dsse_envelope

    @property
    def signature(self) -> bytes:
        """The signature bytes: the message signature, or the DSSE envelope's only signature."""
        if self.model.message_signature is not None:
            return self.model.message_signature.signature
        assert self.model.dsse_envelope is not None
        return self.model.dsse_envelope.signatures[0].sig


def fill_proto3_defaults(document: dict[str, Any]) -> None:
    """Put back the zero values protojson leaves out, for a bundle that is written back: cosign
    writes no `logIndex` for the first entry of a log, and no `hashes` for a proof in a one-leaf
    tree (offline.tlog.entry_message reads both absences as these zeros)."""
    material = document.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        entry.setdefault("logIndex", "0")
        proof = entry.get("inclusionProof")
        if isinstance(proof, dict):
            proof.setdefault("logIndex", "0")
            proof.setdefault("hashes", [])


def parse_bundle(data: bytes, name: str = "bundle") -> SigstoreBundle:
    document = parse_json_object(data, name)
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or media_type not in MEDIA_TYPE_VERSIONS:
        raise UsageError(f"{name}: unsupported bundle media type {media_type!r}")
    try:
        model = read_bundle(document)
    except ProtoJsonError as exc:
        raise UsageError(f"{name}: malformed bundle: {exc}") from exc
    version = MEDIA_TYPE_VERSIONS[model.media_type]
    material = model.verification_material

    leaf: x509.Certificate | None = None
    if material.certificate is not None:
        if version < (0, 3):
            raise BundleFormatError(f"{name}: a single certificate needs bundle v0.3 or later")
        leaf = _load_cert(material.certificate.raw_bytes, name)
    elif material.x509_certificate_chain is not None:
        certs = material.x509_certificate_chain.certificates
        if not certs:
            raise BundleFormatError(f"{name}: empty certificate chain")
        leaf = _load_cert(certs[0].raw_bytes, name)
        _require_leaf(leaf, name)
        for extra in certs[1:]:
            if _is_self_signed_ca(_load_cert(extra.raw_bytes, name)):
                raise BundleFormatError(
                    f"{name}: the certificate chain carries a root CA; trust anchors must come "
                    f"from the trusted root, never from the bundle"
                )
    key_hint = material.public_key.hint if material.public_key is not None else None

    entries = material.tlog_entries
    if len(entries) > MAX_TLOG_ENTRIES:
        raise BundleFormatError(f"{name}: {len(entries)} log entries, at most {MAX_TLOG_ENTRIES}")
    for i, entry in enumerate(entries):
        _check_numbers(entry, f"{name}: log entry {i}")
        if version == (0, 1):
            if entry.inclusion_promise is None:
                raise BundleFormatError(f"{name}: v0.1 bundles need a signed entry timestamp")
        elif entry.inclusion_proof is None or entry.inclusion_proof.checkpoint is None:
            raise BundleFormatError(
                f"{name}: log entry {i} has no inclusion proof with a checkpoint "
                f"(required from bundle v0.2 on)"
            )
    if model.dsse_envelope is not None and len(model.dsse_envelope.signatures) != 1:
        raise BundleFormatError(
            f"{name}: DSSE envelope has {len(model.dsse_envelope.signatures)} signatures, "
            f"exactly one is allowed"
        )
    return SigstoreBundle(data, model, version, leaf, key_hint)


def _check_numbers(entry: TransparencyLogEntry, where: str) -> None:
    """protobuf's int64 ranges, and times a datetime can hold: the models take any integer."""
    numbers: dict[str, int | None] = {
        "logIndex": entry.log_index,
        "integratedTime": entry.integrated_time,
    }
    if entry.inclusion_proof is not None:
        numbers["inclusionProof.logIndex"] = entry.inclusion_proof.log_index
        numbers["inclusionProof.treeSize"] = entry.inclusion_proof.tree_size
    for field, value in numbers.items():
        limit = {"integratedTime": MAX_INTEGRATED_TIME, "logIndex": MAX_LOG_INDEX}.get(
            field, MAX_INT64
        )
        if value is not None and not 0 <= value <= limit:
            raise BundleFormatError(f"{where}: {field} {value} is out of range (0 to {limit})")


def _load_cert(der: bytes, name: str) -> x509.Certificate:
    return load_certificate(der, name, BundleFormatError)


def _require_leaf(cert: x509.Certificate, name: str) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if constraints.ca:
        raise BundleFormatError(f"{name}: the first certificate of the chain is a CA, not a leaf")


def _is_self_signed_ca(cert: x509.Certificate) -> bool:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    return ca and cert.issuer == cert.subject


def load_bundle(path: str | Path) -> SigstoreBundle:
    return parse_bundle(read_input(path, "bundle"), str(path))


def sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open_input(path, "artifact") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()
