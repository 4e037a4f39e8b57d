"""The connected side serves the upstream sigstore charts as a chart repository, each at its
upstream version, with the charts they depend on vendored: helm renders rekor and fulcio from it
with no other repository (upstream, helm fails on a dependency missing from `charts/` even when
it is disabled)."""

from __future__ import annotations

import pytest
import yaml

from tests.chart_servers import ChartRepo, run_helm
from tests.cluster.connected import CHARTS, UPSTREAM_CHARTS
from tests.tools import go_tool


def _upstream_version(directory: str) -> str:
    chart = yaml.safe_load((UPSTREAM_CHARTS / directory / "Chart.yaml").read_text())
    return str(chart["version"])


def test_the_repository_lists_every_upstream_chart_at_its_version(
    sigstore_chart_repo: ChartRepo,
) -> None:
    index = yaml.safe_load((sigstore_chart_repo.directory / "index.yaml").read_text())
    listed = {(name, e["version"]) for name, entries in index["entries"].items() for e in entries}
    expected = {(directory.split("-0.")[0], _upstream_version(directory)) for directory in CHARTS}
    assert listed == expected


@pytest.mark.parametrize(
    ("chart", "version", "subchart_source"),
    [
        ("rekor", "1.8.4", "# Source: rekor/charts/trillian/"),
        ("fulcio", "2.11.0", "# Source: fulcio/charts/ctlog/"),
    ],
)
def test_a_chart_renders_its_vendored_dependency_from_the_repository_alone(
    sigstore_chart_repo: ChartRepo, chart: str, version: str, subchart_source: str
) -> None:
    rendered = run_helm(
        go_tool("helm"),
        [
            "template", chart, chart, "--repo", sigstore_chart_repo.url,
            "--version", version, "--namespace", f"{chart}-system",
        ],
        sigstore_chart_repo.directory.parent / f"render-{chart}",
    )  # fmt: skip
    assert subchart_source in rendered
