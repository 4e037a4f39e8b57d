"""The verifier side stands alone: `offline` never imports `provisioner`, and its own
dependencies are the small set a CD host installs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

OFFLINE = REPO / "offline"
CONFORMANCE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_offline_never_imports_provisioner() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in OFFLINE.rglob("*.py")
        for name in _imported_modules(path)
        if name == "provisioner" or name.startswith("provisioner.")
    ]
    assert not offenders


def test_no_library_module_imports_a_command_line_module() -> None:
    """The command line is the top layer: what a command and the library both need lives in the
    library (offline/verifier.py for what `verify` and `bundle create` share)."""
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for package in ("offline", "provisioner")
        for path in (REPO / package).rglob("*.py")
        if "cli" not in path.relative_to(REPO).parts
        for name in _imported_modules(path)
        if name in ("offline.cli", "provisioner.cli")
        or name.startswith(("offline.cli.", "provisioner.cli."))
    ]
    assert not offenders


def test_the_verifier_needs_no_provisioner_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {
        d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["dependencies"]
    }
    for heavy in HEAVY:
        assert heavy not in base, f"{heavy} belongs in the provisioner extra"


# What the provisioner extra adds; a verifier-only install has none of them.
HEAVY = ("kubernetes", "pyhelm3", "ansible-runner", "paramiko", "rich", "sigstore", "zstandard")

_WITHOUT_EXTRA = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Absent())
from provisioner.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _airgap_without_extra(*args: str) -> subprocess.CompletedProcess[str]:
    blocked = {h.replace("-", "_") for h in HEAVY}
    code = _WITHOUT_EXTRA.format(blocked=blocked)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_the_airgap_command_runs_the_verifier_without_the_provisioner_extra() -> None:
    """The `airgap` script (provisioner.cli.main) imports the operator's dependencies only when an
    operator's command runs: the verifier works without them."""
    examples = REPO / "offline" / "examples"
    result = _airgap_without_extra(
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
    )
    assert result.returncode == 0, result.stderr
    assert _airgap_without_extra("--help").returncode == 0


def test_an_operators_command_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    spec = REPO / "bundles" / "example-trust.yaml"
    result = _airgap_without_extra(
        "bundle", "create", str(spec), "-o", str(tmp_path / "b"), "--sign-key", "k.key"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "airgap: airgap bundle needs the operator's dependencies (rich is missing): "
        "pip install 'airgap[provisioner]'"
    ]


def test_the_verifier_does_not_import_the_sigstore_client() -> None:
    # Its import costs more than a whole verification: CD hosts verify without it.
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in OFFLINE.rglob("*.py")
        for name in _imported_modules(path)
        if name == "sigstore" or name.startswith("sigstore.")
    ]
    assert not offenders
