"""What `airgap checkpoint add` reads: a raw checkpoint note or Rekor v1's `GET /api/v1/log`
(LogInfo), and a consistency proof as a JSON list of hashes or Rekor's `GET /api/v1/log/proof`.

Only the signed tree heads are trusted; LogInfo's unsigned rootHash/treeSize are kept so the
caller can check they agree with what was signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from offline.errors import UsageError
from offline.inputs import decode_json
from offline.tlog.merkle import HASH_SIZE

HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class TreeHeadInput:
    note: str
    claimed_root: bytes | None = None
    claimed_size: int | None = None


@dataclass(frozen=True)
class ConsistencyProofInput:
    hashes: tuple[bytes, ...]
    root_hash: bytes | None = None


def _json(data: bytes, source: str) -> Any:
    return decode_json(data, source)


def _hash(value: Any, where: str) -> bytes:
    """A 32-byte hash written as hex (Rekor's API) or base64 (checkpoints, bundles)."""
    if isinstance(value, str):
        if HEX_HASH.fullmatch(value):
            return bytes.fromhex(value)
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == HASH_SIZE:
            return raw
    raise UsageError(f"{where}: expected a 32-byte hash in hex or base64")


def _log_info_head(info: Any, where: str) -> TreeHeadInput:
    if not isinstance(info, dict) or not isinstance(info.get("signedTreeHead"), str):
        raise UsageError(f"{where}: no signedTreeHead (expected Rekor's GET /api/v1/log JSON)")
    root = info.get("rootHash")
    size = info.get("treeSize")
    return TreeHeadInput(
        note=info["signedTreeHead"],
        claimed_root=_hash(root, f"{where}.rootHash") if root is not None else None,
        claimed_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
    )


def parse_tree_heads(data: bytes, source: str) -> list[TreeHeadInput]:
    """A raw checkpoint note, or LogInfo: its signed tree head and its inactive shards' heads."""
    if not data.lstrip().startswith(b"{"):
        try:
            return [TreeHeadInput(note=data.decode("utf-8"))]
        except UnicodeDecodeError as exc:
            raise UsageError(f"{source}: not UTF-8 text ({exc.reason})") from exc
    info = _json(data, source)
    heads = [_log_info_head(info, source)]
    shards = info.get("inactiveShards") or []
    if not isinstance(shards, list):
        raise UsageError(f"{source}: inactiveShards is not a list")
    heads.extend(_log_info_head(s, f"{source} inactiveShards[{i}]") for i, s in enumerate(shards))
    return heads


def parse_consistency_proof(data: bytes, source: str) -> ConsistencyProofInput:
    """A JSON list of hashes, or Rekor's ConsistencyProof {rootHash, hashes}."""
    doc = _json(data, source)
    root: bytes | None = None
    if isinstance(doc, dict):
        if "hashes" not in doc:
            raise UsageError(f"{source}: no 'hashes' (expected Rekor's GET /api/v1/log/proof)")
        if doc.get("rootHash") is not None:
            root = _hash(doc["rootHash"], f"{source}: rootHash")
        doc = doc["hashes"] if doc["hashes"] is not None else []
    if not isinstance(doc, list):
        raise UsageError(f"{source}: expected a list of hashes or a Rekor consistency proof")
    hashes = tuple(_hash(h, f"{source}: hash {i}") for i, h in enumerate(doc))
    return ConsistencyProofInput(hashes=hashes, root_hash=root)
