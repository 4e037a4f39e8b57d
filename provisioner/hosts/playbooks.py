"""The playbooks `airgap hosts apply` runs, by name: playbooks/ of the source tree, or the copy
an installed wheel carries (provisioner/shipped.py)."""

from __future__ import annotations

from pathlib import Path

from offline.errors import UsageError
from provisioner.shipped import shipped_dir

PLAYBOOKS = ("cd-host", "node-prep")


def playbook_path(name: str) -> Path:
    if name not in PLAYBOOKS:
        raise UsageError(f"unknown playbook {name!r}: choose one of {', '.join(PLAYBOOKS)}")
    try:
        return shipped_dir("playbooks") / f"{name}.yml"
    except FileNotFoundError as exc:
        raise UsageError(f"airgap's playbooks are missing: {exc}") from None
