"""RFC 6962 / RFC 9162 Merkle tree proofs: inclusion and consistency.

Every failure raises MerkleError with a sentence that says what did not hold; callers never
get a boolean they could forget to check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(ValueError):
    """A Merkle proof is malformed or does not lead to the expected root."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(h, f"proof hash {i}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` yields for `leaf` at `index` in a tree of `size` leaves."""
    if size <= 0:
        raise MerkleError(f"tree size {size}: an inclusion proof needs a non-empty tree")
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    _check_proof(proof)
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    if len(proof) != inner + border:
        raise MerkleError(
            f"inclusion proof has {len(proof)} hashes, a leaf at {index} in a tree of {size} "
            f"needs {inner + border}"
        )
    h = leaf
    for i, p in enumerate(proof[:inner]):
        h = node_hash(h, p) if (index >> i) & 1 == 0 else node_hash(p, h)
    for p in proof[inner:]:
        h = node_hash(p, h)
    return h


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise MerkleError unless `proof` puts the leaf at `index` in the tree (`size`, `root`)."""
    _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise MerkleError(
            f"inclusion proof for leaf {index} leads to root {computed.hex()}, "
            f"expected {root.hex()} at size {size}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise MerkleError unless the tree (size1, root1) is a prefix of (size2, root2)."""
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    _check_proof(proof)
    if size1 < 0 or size2 < 0:
        raise MerkleError(f"tree sizes must not be negative (got {size1}, {size2})")
    if size2 < size1:
        raise MerkleError(f"tree size {size2} is smaller than {size1}: the log cannot shrink")
    if size1 == 0:
        raise MerkleError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise MerkleError(f"trees of the same size {size1} need an empty proof")
        if root1 != root2:
            raise MerkleError(f"two different roots for the same tree size {size1}")
        return
    if not proof:
        raise MerkleError(f"empty consistency proof from size {size1} to {size2}")

    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = bin((size1 - 1) >> inner).count("1")
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift
    # When size1 is a power of two its root is a node of the larger tree and is not in the proof.
    seed, start = (root1, 0) if size1 == 1 << shift else (proof[0], 1)
    if len(proof) != start + inner + border:
        raise MerkleError(
            f"consistency proof has {len(proof)} hashes, sizes {size1} to {size2} "
            f"need {start + inner + border}"
        )
    path = proof[start:]
    mask = (size1 - 1) >> shift

    h1 = seed
    for i, p in enumerate(path[:inner]):
        if (mask >> i) & 1:
            h1 = node_hash(p, h1)
    for p in path[inner:]:
        h1 = node_hash(p, h1)
    if h1 != root1:
        raise MerkleError(
            f"consistency proof yields root {h1.hex()} at size {size1}, expected {root1.hex()}"
        )

    h2 = seed
    for i, p in enumerate(path[:inner]):
        h2 = node_hash(h2, p) if (mask >> i) & 1 == 0 else node_hash(p, h2)
    for p in path[inner:]:
        h2 = node_hash(p, h2)
    if h2 != root2:
        raise MerkleError(
            f"consistency proof yields root {h2.hex()} at size {size2}, expected {root2.hex()}"
        )
