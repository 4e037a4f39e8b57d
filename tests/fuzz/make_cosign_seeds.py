"""Remake the cosign seeds of the fuzz harness (tests/fuzz/seeds/), against the private stack:

    pytest tests/fuzz/make_cosign_seeds.py

cosign v3 signs one blob keylessly (Fulcio certificate, SCT, Rekor entry with proof) and one with
a managed key; each case is written in the conformance layout (bundle.sigstore.json, artifact,
trusted_root.json, and identity/issuer or key.pub). Not collected by the normal run (its name
does not start with test_).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack import SigstoreStack
from tests.test_stack import _cosign_env, _run, sign_blob
from tests.tools import go_tool

OUT = Path(__file__).parent / "seeds"
pytestmark = pytest.mark.stack


def test_make_cosign_seeds(sigstore_stack: SigstoreStack, tmp_path: Path) -> None:
    stack = sigstore_stack
    subject = "system:serviceaccount:release:signer"
    signed = sign_blob(stack, tmp_path / "keyless", subject, "RS256")
    case = OUT / "cosign-v3-keyless"
    case.mkdir(parents=True, exist_ok=True)
    shutil.copy(signed.bundle, case / "bundle.sigstore.json")
    shutil.copy(signed.artifact, case / "artifact")
    shutil.copy(stack.trusted_root, case / "trusted_root.json")
    (case / "identity").write_text(signed.identity + "\n")
    (case / "issuer").write_text(signed.issuer + "\n")

    keyed = tmp_path / "keyed"
    keyed.mkdir()
    env = {**_cosign_env(stack), "COSIGN_PASSWORD": "fuzz"}
    made = subprocess.run(
        [go_tool("cosign"), "generate-key-pair"], cwd=keyed, env=env, capture_output=True
    )
    assert made.returncode == 0, made.stderr
    artifact = keyed / "artifact"
    artifact.write_bytes(b"signed with a managed key by cosign v3\n")
    bundle = keyed / "artifact.sigstore.json"
    signing: list[str | os.PathLike[str]] = [
        *("sign-blob", "--yes", "--key", keyed / "cosign.key", "--bundle", bundle),
        *("--signing-config", stack.signing_config, "--trusted-root", stack.trusted_root),
    ]
    result = _run([go_tool("cosign"), *signing, artifact], env=env)
    assert result.returncode == 0, result.stderr
    case = OUT / "cosign-v3-key"
    case.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, case / "bundle.sigstore.json")
    shutil.copy(artifact, case / "artifact")
    shutil.copy(stack.trusted_root, case / "trusted_root.json")
    shutil.copy(keyed / "cosign.pub", case / "key.pub")
