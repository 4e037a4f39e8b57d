"""The playbooks `airgap hosts apply` runs, by name."""

from __future__ import annotations

import os
from pathlib import Path

from offline.errors import UsageError

PLAYBOOKS = ("cd-host", "node-prep")
# Where the playbooks are when airgap runs from a checkout (an editable install); an install
# from a wheel names them with this variable.
PLAYBOOKS_ENV = "AIRGAP_PLAYBOOKS"
_CHECKOUT = Path(__file__).resolve().parents[2] / "playbooks"


def playbook_dir() -> Path:
    given = os.environ.get(PLAYBOOKS_ENV)
    directory = Path(given) if given else _CHECKOUT
    if not (directory / "cd-host.yml").is_file():
        raise UsageError(
            f"the playbooks are not in {directory}: set ${PLAYBOOKS_ENV} to airgap's playbooks/ "
            "directory"
        )
    return directory


def playbook_path(name: str) -> Path:
    if name not in PLAYBOOKS:
        raise UsageError(f"unknown playbook {name!r}: choose one of {', '.join(PLAYBOOKS)}")
    return playbook_dir() / f"{name}.yml"
