"""The public Sigstore client conformance cases, run through `airgap verify-bundle` exactly as
the conformance protocol calls a client: every case by artifact path and by digest, judged by
the exit code alone (a `_fail` case must exit non-zero)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TESTDATA

CASES_DIR = TESTDATA / "conformance"
PRODUCTION_ROOT = CASES_DIR / "trusted_root.production.json"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())


def protocol_args(case: Path, by_digest: bool) -> list[str]:
    """The verify-bundle arguments the conformance suite passes for `case`."""
    args = ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        args += ["--key", str(case / "key.pub")]
    else:
        identity = case / "identity"
        issuer = case / "issuer"
        args += [
            "--certificate-identity",
            identity.read_text().strip() if identity.exists() else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            issuer.read_text().strip() if issuer.exists() else DEFAULT_ISSUER,
        ]
    root = case / "trusted_root.json"
    args += ["--trusted-root", str(root if root.exists() else PRODUCTION_ROOT)]
    artifact = case / "artifact"
    if not artifact.exists():
        artifact = CASES_DIR / "a.txt"
    if by_digest:
        args.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    else:
        args.append(str(artifact))
    return args


def run_airgap(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_suite_is_present() -> None:
    assert len(CASES) >= 40
    assert any(c.name.endswith("_fail") for c in CASES)


@pytest.mark.parametrize("by_digest", [False, True], ids=["path", "digest"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conformance_case(case: Path, by_digest: bool) -> None:
    proc = run_airgap(protocol_args(case, by_digest))
    should_pass = not case.name.endswith("_fail")
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    if should_pass:
        assert proc.returncode == 0, detail
    else:
        assert proc.returncode != 0, detail
        # Expected failures are one line, never a traceback.
        assert "Traceback" not in proc.stderr, detail
        assert len(proc.stderr.strip().splitlines()) == 1, detail
