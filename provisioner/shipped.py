"""The top-level directories airgap reads at run time (charts-values/, playbooks/): in a source
checkout (and an editable install) the repository's own; in an installed wheel the copies the
wheel put under the environment's data directory (pyproject.toml, tool.setuptools.data-files)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

SOURCE_TOP = Path(__file__).resolve().parents[1]


def installed_top() -> Path:
    return Path(sysconfig.get_path("data")) / "share" / "airgap"


def shipped_dir(name: str) -> Path:
    """The directory `name` as this installation has it; the error names both places looked in."""
    for top in (SOURCE_TOP, installed_top()):
        if (top / name).is_dir():
            return top / name
    raise FileNotFoundError(
        f"{name}/ is neither in the source tree ({SOURCE_TOP}) nor installed ({installed_top()})"
    )
