"""A transparency log built inside the tests: keys, a trusted root for it, entries, RFC 6962
roots and proofs (from a separate, straight-from-the-RFC Merkle implementation, so that it
cross-checks offline.tlog.merkle), and signed checkpoints in Rekor v1 or C2SP (Rekor v2) style.

    log = TestLog("rekor.example.test")          # Rekor v1 style, ECDSA P-256
    log.extend(10)
    note = log.checkpoint()                       # signed note at size 10
    proof = log.consistency_proof(4, 10)
    root = trusted_root(log)                      # offline.trust.root.TrustedRoot
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from offline.trust.root import TrustedRoot, parse_trusted_root

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
EM_DASH = "\u2014"

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 section 2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class MerkleTree:
    """RFC 6962 section 2.1 definitions, written recursively as in the RFC."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self._mth = lru_cache(maxsize=None)(self._compute_mth)

    def append(self, data: bytes) -> int:
        self.leaves.append(_leaf_hash(data))
        self._mth.cache_clear()
        return len(self.leaves) - 1

    def _compute_mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaves[start]
        k = _split(n)
        return _node_hash(self._mth(start, start + k), self._mth(start + k, end))

    def root(self, size: int) -> bytes:
        return self._mth(0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._mth(start + k, end)]
        return [*self._path(m - k, start + k, end), self._mth(start, start + k)]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._path(index, 0, size)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._mth(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self._mth(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._mth(start, start + k)]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self._subproof(size1, 0, size2, True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_with_line(note: str, line: str) -> str:
    """Append one signature line (without its newline) to a signed note."""
    return note + line + "\n"


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    return f"{EM_DASH} {name} {_b64(key_id + signature)}"


def note_text(note: str) -> str:
    """The signed text of a note: everything before its last blank line, with its newline."""
    return note[: note.rindex("\n\n") + 1]


class TestLog:
    """A log with its own key. Rekor v1 style by default (origin `host - treeID`, ECDSA P-256,
    key ID from the DER key); `v2=True` gives a C2SP log (origin = hostname, Ed25519)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        hostname: str = "rekor.airgap.test",
        *,
        v2: bool = False,
        key: SigningKey | None = None,
        tree_id: int = 1193050959916656506,
        base_url: str | None = None,
        valid_from: str = "2024-01-01T00:00:00Z",
    ) -> None:
        self.hostname = hostname
        self.v2 = v2
        if key is None:
            key = (
                ed25519.Ed25519PrivateKey.generate()
                if v2
                else ec.generate_private_key(ec.SECP256R1())
            )
        self.key: SigningKey = key
        self.tree_id = tree_id
        self.origin = hostname if v2 else f"{hostname} - {tree_id}"
        self.signer_name = hostname
        self.base_url = base_url or f"https://{hostname}"
        self.valid_from = valid_from
        self.tree = MerkleTree()

    # -- keys --------------------------------------------------------------------------------

    @property
    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def log_id(self) -> bytes:
        """The trusted root's logId: SHA-256 of the DER key, or the C2SP Ed25519 key hash."""
        if self.v2 and isinstance(self.key, ed25519.Ed25519PrivateKey):
            raw = _raw(self.key.public_key())
            return hashlib.sha256(self.origin.encode() + b"\n\x01" + raw).digest()
        return hashlib.sha256(self.public_key_der).digest()

    @property
    def key_id(self) -> bytes:
        return self.log_id[:4]

    @property
    def key_details(self) -> str:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return "PKIX_ED25519"
        bits = self.key.curve.key_size
        return {256: "PKIX_ECDSA_P256_SHA_256", 384: "PKIX_ECDSA_P384_SHA_384"}[bits]

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(message)
        if self.v2:
            algorithm: hashes.HashAlgorithm = (
                hashes.SHA384() if self.key.curve.key_size == 384 else hashes.SHA256()
            )
            return self.key.sign(message, ec.ECDSA(algorithm))
        # Rekor v1 signs SHA-256(text) whatever the curve.
        digest = hashlib.sha256(message).digest()
        return self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    # -- entries and proofs -----------------------------------------------------------------

    def append(self, data: bytes) -> int:
        return self.tree.append(data)

    def extend(self, count: int) -> None:
        for _ in range(count):
            self.append(f"entry {self.size} of {self.origin}".encode())

    @property
    def size(self) -> int:
        return len(self.tree.leaves)

    def leaf_hash(self, index: int) -> bytes:
        return self.tree.leaves[index]

    def root(self, size: int | None = None) -> bytes:
        return self.tree.root(self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.tree.inclusion_proof(index, self.size if size is None else size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return self.tree.consistency_proof(size1, self.size if size2 is None else size2)

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint_text(
        self, size: int | None = None, extensions: Sequence[str] = (), root: bytes | None = None
    ) -> str:
        size = self.size if size is None else size
        root = self.root(size) if root is None else root
        return "".join(f"{line}\n" for line in (self.origin, str(size), _b64(root), *extensions))

    def checkpoint(
        self,
        size: int | None = None,
        *,
        extensions: Sequence[str] = (),
        root: bytes | None = None,
        key_id: bytes | None = None,
        name: str | None = None,
        cosigners: Iterable[Witness] = (),
    ) -> str:
        """A signed checkpoint note at `size` (default: the current size)."""
        text = self.checkpoint_text(size, extensions, root)
        line = signature_line(
            name or self.signer_name, key_id or self.key_id, self.sign(text.encode())
        )
        note = f"{text}\n{line}\n"
        for witness in cosigners:
            note = witness.cosign(note)
        return note

    # -- trusted root and Rekor API shapes ------------------------------------------------------

    def tlog_entry(self) -> dict[str, Any]:
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(self.public_key_der),
                "keyDetails": self.key_details,
                "validFor": {"start": self.valid_from},
            },
            "logId": {"keyId": _b64(self.log_id)},
        }

    def trusted_root_json(self, *others: TestLog) -> str:
        """A trusted_root.json trusting this log (and `others`)."""
        return trusted_root_json(self, *others)

    def log_info(self, size: int | None = None, inactive: Sequence[TestLog] = ()) -> dict[str, Any]:
        """Rekor v1's GET /api/v1/log response, with other logs as inactive shards."""
        size = self.size if size is None else size
        info: dict[str, Any] = {
            "rootHash": self.root(size).hex(),
            "treeSize": size,
            "signedTreeHead": self.checkpoint(size),
            "treeID": str(self.tree_id),
        }
        if inactive:
            info["inactiveShards"] = [shard.log_info() for shard in inactive]
        return info

    def proof_json(self, size1: int, size2: int | None = None) -> dict[str, Any]:
        """Rekor v1's GET /api/v1/log/proof response."""
        size2 = self.size if size2 is None else size2
        return {
            "rootHash": self.root(size2).hex(),
            "hashes": [h.hex() for h in self.consistency_proof(size1, size2)],
        }


class Witness:
    """A C2SP tlog-cosignature/v1 witness with an Ed25519 key."""

    def __init__(self, name: str, key: ed25519.Ed25519PrivateKey | None = None) -> None:
        self.name = name
        self.key = key or ed25519.Ed25519PrivateKey.generate()

    @property
    def raw_public_key(self) -> bytes:
        return _raw(self.key.public_key())

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n\x04" + self.raw_public_key).digest()[:4]

    @property
    def vkey(self) -> str:
        encoded = _b64(bytes([0x04]) + self.raw_public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @property
    def ed25519_vkey(self) -> str:
        """The same key as a plain Ed25519 (type 0x01) note key: not a cosigning key."""
        raw = self.raw_public_key
        key_id = hashlib.sha256(self.name.encode() + b"\n\x01" + raw).digest()[:4]
        return f"{self.name}+{key_id.hex()}+{_b64(bytes([0x01]) + raw)}"

    def cosignature(self, note: str, timestamp: int = 1_700_000_000) -> bytes:
        message = b"cosignature/v1\ntime %d\n" % timestamp + note_text(note).encode()
        return timestamp.to_bytes(8, "big") + self.key.sign(message)

    def cosign(self, note: str, timestamp: int = 1_700_000_000) -> str:
        line = signature_line(self.name, self.key_id, self.cosignature(note, timestamp))
        return note_with_line(note, line)


def trusted_root_document(*logs: TestLog) -> dict[str, Any]:
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [log.tlog_entry() for log in logs],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    }


def trusted_root_json(*logs: TestLog) -> str:
    return json.dumps(trusted_root_document(*logs), indent=2)


def trusted_root(*logs: TestLog) -> TrustedRoot:
    return parse_trusted_root(trusted_root_json(*logs))
