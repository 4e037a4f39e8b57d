"""What a verification loads. A CD host starts `airgap verify` once per image and
`airgap verify-bundle` once per artifact, so what these processes import is most of their
time: none of them loads the operator's side, YAML without a policy file, the model or HTTP
libraries the verifier replaced, dataclasses (about 1 ms per class at import, and `inspect`),
cryptography's key serialization package, logging, a thread pool, or the archive modules
argparse's help sizing and tempfile pull in. A layout or a bundle reaches no registry: no HTTP
client, no TLS."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from offline.oci.digests import sha256_digest
from offline.oci.manifest import OCI_MANIFEST, Descriptor
from tests.bundle_factory import KeySigner
from tests.conftest import REPO
from tests.oci_images import make_artifact, make_image, push_artifact, push_image
from tests.registries import RegistryServer
from tests.signed_layout import BUNDLE, SignedLayout, dumps
from tests.test_layout import CONFORMANCE_IDENTITY
from tests.tlog_fixture import TestLog

NEVER = (
    "provisioner.cli.main",
    "yaml",
    "pydantic",
    "requests",
    "urllib3",
    "sigstore",
    "sigstore_models",
    "rfc3161_client",
    "dataclasses",
    "inspect",
    "logging",
    "concurrent.futures",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.serialization.ssh",
    "shutil",
    "tempfile",
    "platformdirs",
)
NO_REGISTRY = ("http.client", "ssl", "offline.oci.registry", "offline.oci.http_client")
# The console script is provisioner.cli.entry: its packages, and nothing else of provisioner.
ENTRY = {"provisioner", "provisioner.cli", "provisioner.cli.entry"}

_RECORDER = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv[0] = "airgap"
from provisioner.cli.entry import main
sys.exit(main())
"""


def loaded_by(*args: str, data_dir: Path | None = None) -> set[str]:
    """The modules the `airgap` console script has loaded when `args` finishes (successfully)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
    if data_dir is not None:
        env["XDG_DATA_HOME"] = str(data_dir)
    result = subprocess.run(
        [sys.executable, "-c", _RECORDER, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def store(tmp_path: Path) -> str:
    (tmp_path / "checkpoints").mkdir()
    return str(tmp_path / "checkpoints")


def loaded_of(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def assert_lean(modules: set[str], also_never: tuple[str, ...] = ()) -> None:
    assert loaded_of(modules, (*NEVER, *also_never)) == []
    assert {m for m in modules if m.split(".")[0] == "provisioner"} <= ENTRY


def test_verify_bundle(tmp_path: Path) -> None:
    """As the conformance suite runs it: the checkpoint store in the data directory."""
    examples = REPO / "offline" / "examples"
    modules = loaded_by(
        "verify-bundle",
        "--bundle",
        str(examples / "a.txt.sigstore.json"),
        "--certificate-identity",
        CONFORMANCE_IDENTITY,
        "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
        "--trusted-root",
        str(examples / "trusted_root.json"),
        str(examples / "a.txt"),
        data_dir=tmp_path,
    )
    assert "offline.sigstore.verify" in modules  # it did verify
    assert_lean(modules, NO_REGISTRY)


def test_verify_of_an_image_in_a_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = SignedLayout(tmp_path, capsys)
    made = make_image(random.Random(1))
    site.push_image(made, "v1")
    site.sign(made.manifest)
    modules = loaded_by(
        "verify",
        "--key",
        str(site.key),
        "--trusted-root",
        str(site.trusted_root),
        "--checkpoints",
        store(tmp_path),
        "--pinning",
        "off",
        site.ref("v1"),
    )
    assert "offline.images.verify" in modules
    assert_lean(modules, NO_REGISTRY)


def test_verify_of_an_image_in_a_registry(
    referrers_registry: RegistryServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    repo = referrers_registry.client().repository(f"startup/{request.node.name.lower()}")
    log = TestLog("rekor.airgap.test")
    log.extend(2)
    signer = KeySigner()
    key, root = tmp_path / "release.pub", tmp_path / "trusted_root.json"
    key.write_bytes(signer.public_pem)
    root.write_text(log.trusted_root_json())
    made = make_image(random.Random(2))
    pushed = push_image(repo, made, "v1")
    bundle = dumps(signer.log_artifact(log, made.manifest).bundle(log))
    subject = Descriptor(OCI_MANIFEST, sha256_digest(made.manifest), len(made.manifest))
    push_artifact(repo, make_artifact(subject, BUNDLE, bundle, layer_type=BUNDLE))
    modules = loaded_by(
        "verify",
        "--key",
        str(key),
        "--trusted-root",
        str(root),
        "--checkpoints",
        store(tmp_path),
        "--pinning",
        "off",
        "--allow-http-registry",
        referrers_registry.host,
        f"{repo.location}@{pushed.digest}",
    )
    assert "offline.oci.registry" in modules
    assert_lean(modules)


OPERATOR_MODULES = {
    "provisioner.cli.bundle",
    "provisioner.cli.trust",
    "provisioner.cli.install",
    "provisioner.cli.nodes",
    "provisioner.cli.hosts",
    "provisioner.cli.policy",
}


def test_an_operator_command_loads_no_other_commands_module(tmp_path: Path) -> None:
    """`airgap bundle ...` builds the parser of `bundle` alone: none of the other operator
    commands' modules, nor what only they need (the site file and YAML for `trust`)."""
    modules = loaded_by("bundle", "keygen", str(tmp_path / "operator.key"))
    assert (tmp_path / "operator.pub").is_file()  # it did run
    assert modules & OPERATOR_MODULES == {"provisioner.cli.bundle"}
    assert "provisioner.stack.site" not in modules
    assert "yaml" not in modules


def test_the_full_help_still_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RECORDER, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # A command starts four spaces in; a wrapped description further.
    assert re.findall(r"^    ([a-z][a-z-]*)", result.stdout, re.MULTILINE) == [
        "verify",
        "verify-bundle",
        "checkpoint",
        "proofs",
        "bundle",
        "trust",
        "install",
        "status",
        "uninstall",
        "nodes",
        "hosts",
        "policy",
    ]
