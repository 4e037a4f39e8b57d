"""Bundles as protobuf's JSON form writes them: zero values are left out. The first entry of a
log has no `logIndex`, and its proof in a one-leaf tree has no `hashes` (cosign writes exactly
this for the first signature on a fresh private Rekor); sigstore's models reject them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from offline.cli.main import main
from offline.sigstore.model import parse_bundle
from tests.bundle_factory import KeySigner
from tests.tlog_fixture import TestLog


def _first_entry_bundle(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    log = TestLog("rekor.airgap.test")
    signer = KeySigner()
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"first signature on a fresh log\n")
    logged = signer.log_artifact(log, artifact.read_bytes())
    assert logged.index == 0 and log.size == 1
    bundle = logged.bundle(log)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    del entry["logIndex"]
    del entry["inclusionProof"]["logIndex"]
    assert entry["inclusionProof"].pop("hashes") == []
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    key = tmp_path / "key.pub"
    key.write_bytes(signer.public_pem)
    root = tmp_path / "trusted_root.json"
    root.write_text(log.trusted_root_json())
    return path, artifact, key, root


def test_omitted_zero_fields_parse_as_zero(tmp_path: Path) -> None:
    path, *_ = _first_entry_bundle(tmp_path)
    (entry,) = parse_bundle(path.read_bytes()).tlog_entries
    assert entry.log_index == 0
    assert entry.inclusion_proof is not None
    assert entry.inclusion_proof.log_index == 0
    assert entry.inclusion_proof.hashes == []


def test_first_entry_bundle_verifies(tmp_path: Path) -> None:
    path, artifact, key, root = _first_entry_bundle(tmp_path)
    args = ["verify-bundle", "--bundle", str(path), "--key", str(key), "--trusted-root", str(root)]
    assert main([*args, str(artifact)]) == 0
