"""A Sigstore bundle's messages (protobuf-specs' `dev.sigstore.bundle.v1.Bundle` and what it
holds), read from their JSON form (offline.protojson). Only the shape is checked here: the rules
of each bundle version are offline.sigstore.model's, what the bundle proves verify's.
"""

from __future__ import annotations

from offline.protojson import (
    ProtoJsonError,
    at,
    bytes_field,
    message,
    one_of,
    repeated,
    string,
)
from offline.record import Record
from offline.tlog.entry_message import TransparencyLogEntry, read_log_entry

HASH_ALGORITHMS = frozenset({"SHA2_256", "SHA2_384", "SHA2_512", "SHA3_256", "SHA3_384"})


class DsseSignature(Record):
    __slots__ = ("keyid", "sig")

    def __init__(self, sig: bytes, keyid: str | None) -> None:
        self.sig = sig
        self.keyid = keyid


class Envelope(Record):
    __slots__ = ("payload", "payload_type", "signatures")

    def __init__(self, payload: bytes, payload_type: str, signatures: list[DsseSignature]) -> None:
        self.payload = payload
        self.payload_type = payload_type
        self.signatures = signatures


class HashOutput(Record):
    __slots__ = ("algorithm", "digest")

    def __init__(self, algorithm: str, digest: bytes) -> None:
        self.algorithm = algorithm
        self.digest = digest


class MessageSignature(Record):
    __slots__ = ("message_digest", "signature")

    def __init__(self, message_digest: HashOutput | None, signature: bytes) -> None:
        self.message_digest = message_digest
        self.signature = signature


class PublicKeyIdentifier(Record):
    __slots__ = ("hint",)

    def __init__(self, hint: str | None) -> None:
        self.hint = hint


class X509Certificate(Record):
    __slots__ = ("raw_bytes",)

    def __init__(self, raw_bytes: bytes) -> None:
        self.raw_bytes = raw_bytes


class X509CertificateChain(Record):
    __slots__ = ("certificates",)

    def __init__(self, certificates: list[X509Certificate]) -> None:
        self.certificates = certificates


class RFC3161SignedTimestamp(Record):
    __slots__ = ("signed_timestamp",)

    def __init__(self, signed_timestamp: bytes) -> None:
        self.signed_timestamp = signed_timestamp


class TimestampVerificationData(Record):
    __slots__ = ("rfc3161_timestamps",)

    def __init__(self, rfc3161_timestamps: list[RFC3161SignedTimestamp]) -> None:
        self.rfc3161_timestamps = rfc3161_timestamps


class VerificationMaterial(Record):
    __slots__ = (
        "certificate",
        "public_key",
        "timestamp_verification_data",
        "tlog_entries",
        "x509_certificate_chain",
    )

    def __init__(
        self,
        public_key: PublicKeyIdentifier | None,
        x509_certificate_chain: X509CertificateChain | None,
        certificate: X509Certificate | None,
        tlog_entries: list[TransparencyLogEntry],
        timestamp_verification_data: TimestampVerificationData | None,
    ) -> None:
        self.public_key = public_key
        self.x509_certificate_chain = x509_certificate_chain
        self.certificate = certificate
        self.tlog_entries = tlog_entries
        self.timestamp_verification_data = timestamp_verification_data


class Bundle(Record):
    __slots__ = ("dsse_envelope", "media_type", "message_signature", "verification_material")

    def __init__(
        self,
        media_type: str,
        verification_material: VerificationMaterial,
        message_signature: MessageSignature | None,
        dsse_envelope: Envelope | None,
    ) -> None:
        self.media_type = media_type
        self.verification_material = verification_material
        self.message_signature = message_signature
        self.dsse_envelope = dsse_envelope


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
