"""Bad input to `airgap verify-bundle` gets one line saying what is wrong, and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TESTDATA

CASES = TESTDATA / "conformance"
GOOD = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
ROOT = CASES / "trusted_root.production.json"
IDENTITY = ["--certificate-identity", "someone", "--certificate-oidc-issuer", "https://issuer"]


def airgap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], exit_code: int, text: str
) -> None:
    assert proc.returncode == exit_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert text in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_bundle_file(tmp_path: Path) -> None:
    proc = airgap(
        "verify-bundle",
        "--bundle",
        tmp_path / "nope.json",
        *IDENTITY,
        "--trusted-root",
        ROOT,
        CASES / "a.txt",
    )
    assert_one_line_error(proc, 2, "does not exist")


def test_malformed_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": ')
    proc = airgap(
        "verify-bundle", "--bundle", bad, *IDENTITY, "--trusted-root", ROOT, CASES / "a.txt"
    )
    assert_one_line_error(proc, 2, "not valid JSON")


def test_unknown_media_type(tmp_path: Path) -> None:
    doc = json.loads(GOOD.read_text())
    doc["mediaType"] = "application/vnd.example+json"
    bad = tmp_path / "bundle.json"
    bad.write_text(json.dumps(doc))
    proc = airgap(
        "verify-bundle", "--bundle", bad, *IDENTITY, "--trusted-root", ROOT, CASES / "a.txt"
    )
    assert_one_line_error(proc, 2, "unsupported bundle media type")


def test_wrong_key_type(tmp_path: Path) -> None:
    key = tmp_path / "key.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    proc = airgap(
        "verify-bundle", "--bundle", GOOD, "--key", key, "--trusted-root", ROOT, CASES / "a.txt"
    )
    assert_one_line_error(proc, 2, "not a PEM or DER public key")


def test_missing_trusted_root(tmp_path: Path) -> None:
    proc = airgap(
        "verify-bundle",
        "--bundle",
        GOOD,
        *IDENTITY,
        "--trusted-root",
        tmp_path / "root.json",
        CASES / "a.txt",
    )
    assert_one_line_error(proc, 2, "trusted root")


def test_no_trusted_root_at_all() -> None:
    proc = airgap("verify-bundle", "--bundle", GOOD, *IDENTITY, CASES / "a.txt")
    assert_one_line_error(proc, 2, "no trusted root")


def test_artifact_neither_file_nor_digest() -> None:
    proc = airgap(
        "verify-bundle", "--bundle", GOOD, *IDENTITY, "--trusted-root", ROOT, "sha256:1234"
    )
    assert_one_line_error(proc, 2, "not a sha256:<64 hex> digest")


@pytest.mark.parametrize("flags", [[], ["--certificate-identity", "x"]])
def test_signer_must_be_named(flags: list[str]) -> None:
    proc = airgap(
        "verify-bundle", "--bundle", GOOD, *flags, "--trusted-root", ROOT, CASES / "a.txt"
    )
    assert_one_line_error(proc, 2, "say who must have signed")


def test_wrong_identity_is_a_verification_failure() -> None:
    proc = airgap(
        "verify-bundle", "--bundle", GOOD, *IDENTITY, "--trusted-root", ROOT, CASES / "a.txt"
    )
    assert_one_line_error(proc, 1, "identity does not match")
