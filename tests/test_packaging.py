"""The wheel carries what the operator's commands read at run time outside the Python packages
(charts-values/), where provisioner/shipped.py looks for it once installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from provisioner import shipped
from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    (found,) = out.glob("airgap-*.whl")
    return found


def test_the_wheel_carries_every_chart_values_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    carried = {
        Path(name).name
        for name in names
        if name.startswith("airgap-") and "/data/share/airgap/charts-values/" in name
    }
    assert carried == {path.name for path in (REPO / "charts-values").glob("*.yaml")}


def test_an_installed_airgap_finds_its_chart_values_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "SOURCE_TOP", tmp_path / "site-packages")
    monkeypatch.setattr(shipped, "installed_top", lambda: tmp_path / "share" / "airgap")
    with pytest.raises(FileNotFoundError, match="charts-values/ is neither in the source tree"):
        shipped.shipped_dir("charts-values")
    (tmp_path / "share" / "airgap" / "charts-values").mkdir(parents=True)
    assert shipped.shipped_dir("charts-values") == tmp_path / "share" / "airgap" / "charts-values"
