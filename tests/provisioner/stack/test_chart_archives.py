"""provisioner.stack.chart_archives: each component's chart is the one archive of that chart
the site carried; none, or several versions, is refused in one line naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.errors import UsageError
from provisioner.stack.chart_archives import find_chart


def carried(tmp_path: Path, *names: str) -> Path:
    for name in names:
        path = tmp_path / "charts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"archive")
    return tmp_path / "charts"


def test_the_one_archive_of_a_chart_is_found_below_the_charts_directory(tmp_path: Path) -> None:
    charts = carried(tmp_path, "a/rekor-1.8.4.tgz", "b/trillian-0.3.16.tgz", "tuf-0.1.30.tgz")
    assert find_chart(charts, "rekor") == charts / "a/rekor-1.8.4.tgz"
    assert find_chart(charts, "trillian") == charts / "b/trillian-0.3.16.tgz"
    assert find_chart(charts, "tuf") == charts / "tuf-0.1.30.tgz"


def test_a_chart_whose_name_only_starts_alike_is_not_taken_for_another(tmp_path: Path) -> None:
    charts = carried(tmp_path, "ctlog-extra-1.0.0.tgz")
    with pytest.raises(UsageError, match="no ctlog chart"):
        find_chart(charts, "ctlog")


def test_two_versions_of_a_chart_are_refused_naming_both(tmp_path: Path) -> None:
    charts = carried(tmp_path, "x/fulcio-2.11.0.tgz", "y/fulcio-2.12.0.tgz")
    with pytest.raises(UsageError, match=r"several fulcio charts \(x/fulcio-2.11.0.tgz, y/"):
        find_chart(charts, "fulcio")


def test_a_charts_path_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        find_chart(tmp_path / "missing", "rekor")
