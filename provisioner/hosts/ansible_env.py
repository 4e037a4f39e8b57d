"""The environment every ansible program airgap runs gets: no ansible.cfg from the current
directory or home, host keys always checked, no retry files, no colour."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from offline.errors import UsageError


def ansible_program(name: str) -> str:
    """An ansible program beside this Python (the venv airgap runs in), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise UsageError(
            f"{name} is not installed: install airgap with its provisioner extra "
            "(pip install 'airgap[provisioner]'), which brings ansible-core and ansible-runner"
        )
    return found


def ansible_env(private_dir: Path) -> dict[str, str]:
    config = private_dir / "ansible.cfg"
    if not config.exists():
        config.write_text("# empty: airgap sets what it needs through the environment\n")
    return {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
        "ANSIBLE_PIPELINING": "True",
        # Only ansible.builtin is used: no collection path is searched, none is ever fetched.
        "ANSIBLE_COLLECTIONS_PATH": str(private_dir / "no-collections"),
    }
