"""A transparency log entry as a Sigstore bundle carries it (protobuf-specs'
`dev.sigstore.rekor.v1.TransparencyLogEntry`), read from its JSON form (offline.protojson).

Only the shape is checked here; what the fields prove is offline.tlog.entry's concern. The
messages are Records (offline.record): immutable, and cheaper to define than named tuples or
data classes, which a one-image check would pay for at every start.
protojson leaves out zero values: an absent `logIndex` is 0 (cosign writes none for a log's
first entry), absent `hashes` are none (a proof in a one-leaf tree).
"""

from __future__ import annotations

from offline.protojson import (
    ProtoJsonError,
    at,
    bytes_field,
    message,
    repeated,
    string,
    uint64,
)
from offline.record import Record


class LogId(Record):
    __slots__ = ("key_id",)

    def __init__(self, key_id: bytes) -> None:
        self.key_id = key_id


class KindVersion(Record):
    __slots__ = ("kind", "version")

    def __init__(self, kind: str, version: str) -> None:
        self.kind = kind
        self.version = version


class CheckpointEnvelope(Record):
    __slots__ = ("envelope",)

    def __init__(self, envelope: str) -> None:
        self.envelope = envelope


class InclusionProof(Record):
    __slots__ = ("checkpoint", "hashes", "log_index", "root_hash", "tree_size")

    def __init__(
        self,
        log_index: int,
        root_hash: bytes,
        tree_size: int,
        hashes: list[bytes],
        checkpoint: CheckpointEnvelope | None,
    ) -> None:
        self.log_index = log_index
        self.root_hash = root_hash
        self.tree_size = tree_size
        self.hashes = hashes
        self.checkpoint = checkpoint


class InclusionPromise(Record):
    __slots__ = ("signed_entry_timestamp",)

    def __init__(self, signed_entry_timestamp: bytes) -> None:
        self.signed_entry_timestamp = signed_entry_timestamp


class TransparencyLogEntry(Record):
    __slots__ = (
        "canonicalized_body",
        "inclusion_promise",
        "inclusion_proof",
        "integrated_time",
        "kind_version",
        "log_id",
        "log_index",
    )

    def __init__(
        self,
        log_index: int,
        log_id: LogId,
        kind_version: KindVersion,
        integrated_time: int | None,
        inclusion_promise: InclusionPromise | None,
        inclusion_proof: InclusionProof | None,
        canonicalized_body: bytes,
    ) -> None:
        self.log_index = log_index
        self.log_id = log_id
        self.kind_version = kind_version
        self.integrated_time = integrated_time
        self.inclusion_promise = inclusion_promise
        # Optional here (protobuf-specs requires it): v0.1 bundles and cosign's legacy format
        # may carry only a signed entry timestamp; which bundle versions need one is checked there.
        self.inclusion_proof = inclusion_proof
        self.canonicalized_body = canonicalized_body


def _inclusion_proof(value: object, where: str) -> InclusionProof:
    fields = message(value, where, ("rootHash", "treeSize"), ("logIndex", "hashes", "checkpoint"))
    log_index = uint64(fields.get("logIndex", "0"), at(where, "logIndex"))
    tree_size = uint64(fields["treeSize"], at(where, "treeSize"))
    if tree_size <= log_index:
        raise ProtoJsonError(where, f"logIndex {log_index} must be less than treeSize {tree_size}")
    hashes_where = at(where, "hashes")
    checkpoint = None
    if "checkpoint" in fields:
        checkpoint_where = at(where, "checkpoint")
        envelope = message(fields["checkpoint"], checkpoint_where, ("envelope",))["envelope"]
        checkpoint = CheckpointEnvelope(string(envelope, at(checkpoint_where, "envelope")))
    return InclusionProof(
        log_index=log_index,
        root_hash=bytes_field(fields["rootHash"], at(where, "rootHash")),
        tree_size=tree_size,
        hashes=[
            bytes_field(h, at(hashes_where, i))
            for i, h in enumerate(repeated(fields.get("hashes", []), hashes_where))
        ],
        checkpoint=checkpoint,
    )


def read_log_entry(value: object, where: str) -> TransparencyLogEntry:
    """One entry; ProtoJsonError names the first field that is malformed."""
    fields = message(
        value,
        where,
        ("logId", "kindVersion", "canonicalizedBody"),
        ("logIndex", "integratedTime", "inclusionPromise", "inclusionProof"),
    )
    log_id_where = at(where, "logId")
    log_id = message(fields["logId"], log_id_where, ("keyId",))
    kind_where = at(where, "kindVersion")
    kind = message(fields["kindVersion"], kind_where, ("kind", "version"))
    promise = None
    if "inclusionPromise" in fields:
        promise_where = at(where, "inclusionPromise")
        set_ = message(fields["inclusionPromise"], promise_where, ("signedEntryTimestamp",))
        promise = InclusionPromise(
            bytes_field(set_["signedEntryTimestamp"], at(promise_where, "signedEntryTimestamp"))
        )
    integrated_time = fields.get("integratedTime")
    return TransparencyLogEntry(
        log_index=uint64(fields.get("logIndex", "0"), at(where, "logIndex")),
        log_id=LogId(bytes_field(log_id["keyId"], at(log_id_where, "keyId"))),
        kind_version=KindVersion(
            string(kind["kind"], at(kind_where, "kind")),
            string(kind["version"], at(kind_where, "version")),
        ),
        integrated_time=(
            None
            if integrated_time is None
            else uint64(integrated_time, at(where, "integratedTime"))
        ),
        inclusion_promise=promise,
        inclusion_proof=(
            _inclusion_proof(fields["inclusionProof"], at(where, "inclusionProof"))
            if "inclusionProof" in fields
            else None
        ),
        canonicalized_body=bytes_field(fields["canonicalizedBody"], at(where, "canonicalizedBody")),
    )
