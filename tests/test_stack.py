"""The private Sigstore stack, end to end with real programs: Fulcio issues a certificate for a
Kubernetes-shaped token from the tests' issuer, Rekor logs the signature, the CT log embeds an SCT;
cosign v3 signs keylessly; cosign and `airgap verify-bundle` both accept the bundle against the
trusted root that provisioner.stack.trusted_root assembled, and still do with every server
stopped."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from offline.trust.root import load_trusted_root
from tests.stack import SigstoreStack
from tests.tools import go_tool

pytestmark = pytest.mark.stack

SUBJECT = "system:serviceaccount:release:signer"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _cosign_env(stack: SigstoreStack) -> dict[str, str]:
    # No ~/.sigstore, no TUF: everything comes from the files we pass.
    home = stack.dir / "home"
    return {**os.environ, "HOME": str(home), "TUF_ROOT": str(home / "tuf")}


def _run(
    args: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@dataclass
class Signed:
    artifact: Path
    bundle: Path
    identity: str
    issuer: str


def sign_blob(stack: SigstoreStack, directory: Path, subject: str, algorithm: str) -> Signed:
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / "artifact.txt"
    artifact.write_bytes(f"signed by {subject} with an {algorithm} token\n".encode())
    token = directory / "token.jwt"  # a file: the token never shows in the process list
    token.write_text(stack.token(subject, algorithm=algorithm))
    token.chmod(0o600)
    bundle = directory / "artifact.sigstore.json"
    result = _run(
        [
            go_tool("cosign"),
            "sign-blob",
            "--yes",
            "--bundle",
            bundle,
            "--identity-token",
            token,
            "--signing-config",
            stack.signing_config,
            "--trusted-root",
            stack.trusted_root,
            artifact,
        ],
        env=_cosign_env(stack),
    )
    assert result.returncode == 0, f"cosign sign-blob failed:\n{result.stderr}"
    return Signed(artifact, bundle, stack.identity(subject), stack.oidc_issuer)


@pytest.fixture(scope="module")
def signed(sigstore_stack: SigstoreStack, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return sign_blob(sigstore_stack, tmp_path_factory.mktemp("signed"), SUBJECT, "RS256")


def cosign_verify(stack: SigstoreStack, signed: Signed, identity: str | None = None) -> int:
    result = _run(
        [
            go_tool("cosign"),
            "verify-blob",
            "--bundle",
            signed.bundle,
            "--trusted-root",
            stack.trusted_root,
            "--certificate-identity",
            identity or signed.identity,
            "--certificate-oidc-issuer",
            signed.issuer,
            signed.artifact,
        ],
        env=_cosign_env(stack),
    )
    return result.returncode


def airgap_verify(
    stack: SigstoreStack, signed: Signed, identity: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            sys.executable,
            "-m",
            "offline.cli",
            "verify-bundle",
            "--bundle",
            signed.bundle,
            "--certificate-identity",
            identity or signed.identity,
            "--certificate-oidc-issuer",
            signed.issuer,
            "--trusted-root",
            stack.trusted_root,
            signed.artifact,
        ]
    )


def _refuses(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


# -- the stack itself ---------------------------------------------------------------------------


def test_stack_serves_the_keys_it_was_given(sigstore_stack: SigstoreStack) -> None:
    stack = sigstore_stack
    log = json.loads(_get(f"{stack.rekor_url}/api/v1/log"))
    assert str(log["treeID"]) == str(stack.rekor_tree_id)
    assert _get(f"{stack.rekor_url}/api/v1/log/publicKey").strip() == (
        stack.rekor_public_key.read_bytes().strip()
    )
    served_root = x509.load_pem_x509_certificates(_get(f"{stack.fulcio_url}/api/v1/rootCert"))
    ours = x509.load_pem_x509_certificate(stack.fulcio_root.read_bytes())
    assert served_root == [ours]
    ct_roots = json.loads(_get(f"{stack.ctlog_url}/ct/v1/get-roots"))["certificates"]
    assert len(ct_roots) == 1
    assert x509.load_der_x509_certificate(base64.b64decode(ct_roots[0])) == ours


def test_private_keys_are_0600_and_no_secret_reaches_a_log(sigstore_stack: SigstoreStack) -> None:
    stack = sigstore_stack
    for key in (stack.rekor_key, stack.fulcio_key, stack.ctlog_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    logs = "".join(p.read_text(errors="replace") for p in stack.procs.logs.values())
    assert logs
    for secret in stack.secrets:
        assert secret not in logs


def test_trusted_root_matches_the_stack(sigstore_stack: SigstoreStack) -> None:
    stack = sigstore_stack
    root = load_trusted_root(stack.trusted_root)
    assert [t.base_url for t in root.tlogs] == [stack.rekor_url]
    assert [t.base_url for t in root.ctlogs] == [stack.ctlog_url]
    assert root.document["certificateAuthorities"][0]["uri"] == stack.fulcio_url
    assert root.document["mediaType"] == (
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    )


def test_restarting_rekor_rotates_nothing(sigstore_stack: SigstoreStack) -> None:
    stack = sigstore_stack
    before_key = _get(f"{stack.rekor_url}/api/v1/log/publicKey")
    before_tree = json.loads(_get(f"{stack.rekor_url}/api/v1/log"))["treeID"]
    old_pid = stack.procs.processes["rekor"].pid
    stack.restart_service("rekor")
    assert stack.procs.processes["rekor"].pid != old_pid
    assert _get(f"{stack.rekor_url}/api/v1/log/publicKey") == before_key
    assert json.loads(_get(f"{stack.rekor_url}/api/v1/log"))["treeID"] == before_tree


# -- keyless signing with cosign, verification by cosign and by us --------------------------------


def test_cosign_accepts_our_trusted_root(sigstore_stack: SigstoreStack, signed: Signed) -> None:
    assert cosign_verify(sigstore_stack, signed) == 0


def test_airgap_verifies_the_cosign_bundle(sigstore_stack: SigstoreStack, signed: Signed) -> None:
    result = airgap_verify(sigstore_stack, signed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert signed.identity in result.stdout


def test_wrong_identity_fails_in_both(sigstore_stack: SigstoreStack, signed: Signed) -> None:
    wrong = sigstore_stack.identity("system:serviceaccount:release:someone-else")
    assert cosign_verify(sigstore_stack, signed, identity=wrong) != 0
    result = airgap_verify(sigstore_stack, signed, identity=wrong)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "identity" in result.stderr


def test_es256_tokens_and_other_namespaces(sigstore_stack: SigstoreStack, tmp_path: Path) -> None:
    other = sign_blob(sigstore_stack, tmp_path, "system:serviceaccount:ci:builder", "ES256")
    assert other.identity == "https://kubernetes.io/namespaces/ci/serviceaccounts/builder"
    assert cosign_verify(sigstore_stack, other) == 0
    assert airgap_verify(sigstore_stack, other).returncode == 0


def test_verification_needs_no_server(sigstore_stack: SigstoreStack, signed: Signed) -> None:
    stack = sigstore_stack
    with stack.stopped():
        for url in (stack.rekor_url, stack.fulcio_url, stack.ctlog_url, stack.oidc_issuer):
            assert _refuses(url), f"{url} still answers"
        result = airgap_verify(stack, signed)
        assert result.returncode == 0, result.stdout + result.stderr
        assert cosign_verify(stack, signed) == 0
        wrong = stack.identity("system:serviceaccount:release:someone-else")
        assert airgap_verify(stack, signed, identity=wrong).returncode == 1
        assert cosign_verify(stack, signed, identity=wrong) != 0
    # Started again with the same keys: the old bundle still verifies against the same root.
    assert _get(f"{stack.rekor_url}/api/v1/log/publicKey").strip() == (
        stack.rekor_public_key.read_bytes().strip()
    )
