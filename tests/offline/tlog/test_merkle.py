"""RFC 6962 inclusion and consistency proofs against the transparency-dev reference vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from offline.tlog.merkle import (
    EMPTY_ROOT,
    MerkleError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import TESTDATA

VECTORS = TESTDATA / "merkle"


def _vectors(kind: str) -> list[Path]:
    found = sorted((VECTORS / kind).rglob("*.json"))
    assert found, f"no {kind} vectors under {VECTORS}"
    return found


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h) for h in case["proof"] or []]


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(MerkleError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(MerkleError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_every_vector_is_exercised() -> None:
    assert len(_vectors("inclusion")) + len(_vectors("consistency")) == len(
        list(VECTORS.rglob("*.json"))
    )


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") != EMPTY_ROOT
    assert node_hash(b"a" * 32, b"b" * 32) != node_hash(b"b" * 32, b"a" * 32)


def test_inclusion_rejects_index_beyond_tree() -> None:
    with pytest.raises(MerkleError, match="outside a tree of size 4"):
        verify_inclusion(leaf_hash(b"x"), 4, 4, [b"\0" * 32] * 2, b"\0" * 32)


def test_inclusion_rejects_empty_tree() -> None:
    with pytest.raises(MerkleError, match="non-empty tree"):
        verify_inclusion(leaf_hash(b"x"), 0, 0, [], EMPTY_ROOT)


def test_inclusion_rejects_short_hashes() -> None:
    with pytest.raises(MerkleError, match="proof hash 0 is 31 bytes"):
        verify_inclusion(leaf_hash(b"x"), 0, 2, [b"\0" * 31], b"\0" * 32)
    with pytest.raises(MerkleError, match="leaf hash is 3 bytes"):
        verify_inclusion(b"abc", 0, 1, [], b"\0" * 32)


def test_consistency_from_empty_tree_is_meaningless() -> None:
    with pytest.raises(MerkleError, match="empty tree"):
        verify_consistency(0, 3, [], EMPTY_ROOT, b"\0" * 32)


def test_consistency_refuses_a_shrinking_log() -> None:
    with pytest.raises(MerkleError, match="cannot shrink"):
        verify_consistency(5, 3, [b"\0" * 32], b"\0" * 32, b"\0" * 32)


def test_same_size_with_two_roots_is_a_split_view() -> None:
    with pytest.raises(MerkleError, match="two different roots"):
        verify_consistency(3, 3, [], b"\1" * 32, b"\2" * 32)
