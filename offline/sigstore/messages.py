"""A Sigstore bundle's messages (protobuf-specs' `dev.sigstore.bundle.v1.Bundle` and what it
holds), read from their JSON form (offline.protojson). Only the shape is checked here: the rules
of each bundle version are offline.sigstore.model's, what the bundle proves verify's.
"""

from __future__ import annotations

from typing import NamedTuple

from offline.protojson import (
    ProtoJsonError,
    at,
    bytes_field,
    message,
    one_of,
    repeated,
    string,
)
from offline.tlog.entry_message import TransparencyLogEntry, read_log_entry

HASH_ALGORITHMS = frozenset({"SHA2_256", "SHA2_384", "SHA2_512", "SHA3_256", "SHA3_384"})


class DsseSignature(NamedTuple):
    sig: bytes
    keyid: str | None


class Envelope(NamedTuple):
    payload: bytes
    payload_type: str
    signatures: list[DsseSignature]


class HashOutput(NamedTuple):
    algorithm: str
    digest: bytes


class MessageSignature(NamedTuple):
    message_digest: HashOutput | None
    signature: bytes


class PublicKeyIdentifier(NamedTuple):
    hint: str | None


class X509Certificate(NamedTuple):
    raw_bytes: bytes


class X509CertificateChain(NamedTuple):
    certificates: list[X509Certificate]


class RFC3161SignedTimestamp(NamedTuple):
    signed_timestamp: bytes


class TimestampVerificationData(NamedTuple):
    rfc3161_timestamps: list[RFC3161SignedTimestamp]


class VerificationMaterial(NamedTuple):
    public_key: PublicKeyIdentifier | None
    x509_certificate_chain: X509CertificateChain | None
    certificate: X509Certificate | None
    tlog_entries: list[TransparencyLogEntry]
    timestamp_verification_data: TimestampVerificationData | None


class Bundle(NamedTuple):
    media_type: str
    verification_material: VerificationMaterial
    message_signature: MessageSignature | None
    dsse_envelope: Envelope | None


def _certificate(value: object, where: str) -> X509Certificate:
    fields = message(value, where, ("rawBytes",))
    return X509Certificate(bytes_field(fields["rawBytes"], at(where, "rawBytes")))


def _items(value: object, where: str) -> list[tuple[object, str]]:
    return [(item, at(where, i)) for i, item in enumerate(repeated(value, where))]


def _material(value: object, where: str) -> VerificationMaterial:
    fields = message(
        value,
        where,
        ("tlogEntries",),
        ("publicKey", "x509CertificateChain", "certificate", "timestampVerificationData"),
    )
    content = one_of(fields, where, ("publicKey", "x509CertificateChain", "certificate"))
    content_where = at(where, content)
    public_key = chain = certificate = None
    if content == "publicKey":
        hint = message(fields[content], content_where, (), ("hint",)).get("hint")
        public_key = PublicKeyIdentifier(
            None if hint is None else string(hint, at(content_where, "hint"))
        )
    elif content == "x509CertificateChain":
        certs_where = at(content_where, "certificates")
        certs = message(fields[content], content_where, ("certificates",))["certificates"]
        chain = X509CertificateChain([_certificate(c, w) for c, w in _items(certs, certs_where)])
    else:
        certificate = _certificate(fields[content], content_where)
    timestamps = None
    if "timestampVerificationData" in fields:
        data_where = at(where, "timestampVerificationData")
        data = message(fields["timestampVerificationData"], data_where, (), ("rfc3161Timestamps",))
        list_where = at(data_where, "rfc3161Timestamps")
        signed = []
        for item, item_where in _items(data.get("rfc3161Timestamps", []), list_where):
            raw = message(item, item_where, ("signedTimestamp",))["signedTimestamp"]
            signed.append(
                RFC3161SignedTimestamp(bytes_field(raw, at(item_where, "signedTimestamp")))
            )
        timestamps = TimestampVerificationData(signed)
    entries_where = at(where, "tlogEntries")
    return VerificationMaterial(
        public_key=public_key,
        x509_certificate_chain=chain,
        certificate=certificate,
        tlog_entries=[
            read_log_entry(e, w) for e, w in _items(fields["tlogEntries"], entries_where)
        ],
        timestamp_verification_data=timestamps,
    )


def _envelope(value: object, where: str) -> Envelope:
    fields = message(value, where, ("payload", "payloadType", "signatures"))
    signatures = []
    for item, item_where in _items(fields["signatures"], at(where, "signatures")):
        signature = message(item, item_where, ("sig",), ("keyid",))
        keyid = signature.get("keyid")
        signatures.append(
            DsseSignature(
                bytes_field(signature["sig"], at(item_where, "sig")),
                None if keyid is None else string(keyid, at(item_where, "keyid")),
            )
        )
    return Envelope(
        payload=bytes_field(fields["payload"], at(where, "payload")),
        payload_type=string(fields["payloadType"], at(where, "payloadType")),
        signatures=signatures,
    )


def _message_signature(value: object, where: str) -> MessageSignature:
    fields = message(value, where, ("signature",), ("messageDigest",))
    digest = None
    if "messageDigest" in fields:
        digest_where = at(where, "messageDigest")
        raw = message(fields["messageDigest"], digest_where, ("algorithm", "digest"))
        algorithm = string(raw["algorithm"], at(digest_where, "algorithm"))
        if algorithm not in HASH_ALGORITHMS:
            raise ProtoJsonError(at(digest_where, "algorithm"), f"unknown algorithm {algorithm!r}")
        digest = HashOutput(algorithm, bytes_field(raw["digest"], at(digest_where, "digest")))
    return MessageSignature(digest, bytes_field(fields["signature"], at(where, "signature")))


def read_bundle(document: dict[str, object]) -> Bundle:
    """The bundle's messages; ProtoJsonError names the first field that is malformed."""
    fields = message(
        document,
        "",
        ("mediaType", "verificationMaterial"),
        ("messageSignature", "dsseEnvelope"),
    )
    content = one_of(fields, "bundle", ("messageSignature", "dsseEnvelope"))
    return Bundle(
        media_type=string(fields["mediaType"], "mediaType"),
        verification_material=_material(fields["verificationMaterial"], "verificationMaterial"),
        message_signature=(
            _message_signature(fields[content], content) if content == "messageSignature" else None
        ),
        dsse_envelope=_envelope(fields[content], content) if content == "dsseEnvelope" else None,
    )
