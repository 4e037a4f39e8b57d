"""airgap's data directory is the one platformdirs names, whether it is worked out here (the
XDG rule on Linux) or asked of platformdirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from platformdirs import user_data_path

from offline.datadir import user_data_dir

ENVIRONMENTS = [
    pytest.param({"XDG_DATA_HOME": "/srv/data", "HOME": "/home/ci"}, id="xdg"),
    pytest.param({"XDG_DATA_HOME": "/srv/data/", "HOME": "/home/ci"}, id="xdg-slash"),
    pytest.param({"XDG_DATA_HOME": "", "HOME": "/home/ci"}, id="xdg-empty"),
    pytest.param({"XDG_DATA_HOME": "relative/data", "HOME": "/home/ci"}, id="xdg-relative"),
    pytest.param({"HOME": "/home/ci/"}, id="home-slash"),
    pytest.param({"HOME": "/"}, id="home-root"),
    pytest.param({"HOME": "relative"}, id="home-relative"),
    pytest.param({}, id="no-home"),
]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_directory_is_the_one_platformdirs_names(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name in ("XDG_DATA_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert user_data_dir() == user_data_path("airgap")


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is worked out on Linux only")
def test_on_linux_the_xdg_rule_needs_no_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # an import of it would fail
    assert user_data_dir() == Path("/srv/data/airgap")
