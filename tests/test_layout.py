"""The verifier side stands alone: `offline` never imports `provisioner`, and its own
dependencies are the small set a CD host installs."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO

OFFLINE = REPO / "offline"


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


def test_the_verifier_needs_no_provisioner_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {
        d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["dependencies"]
    }
    for heavy in ("kubernetes", "pyhelm3", "ansible-runner", "paramiko", "rich", "sigstore"):
        assert heavy not in base, f"{heavy} belongs in the provisioner extra"
    assert project["scripts"]["airgap"].startswith("offline.")


def test_the_verifier_does_not_import_the_sigstore_client() -> None:
    # Its import costs more than a whole verification: CD hosts verify without it.
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in OFFLINE.rglob("*.py")
        for name in _imported_modules(path)
        if name == "sigstore" or name.startswith("sigstore.")
    ]
    assert not offenders
