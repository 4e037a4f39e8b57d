"""A repository most trust tests start from: root keys 2 of 3, every kind of stack target
published once."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.trust.build import build
from provisioner.trust.ceremony import init_repository
from tests.provisioner.trust.material import stack_targets


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    init_repository(path, threshold=2, keys=3)
    build(path, stack_targets())
    return path
