"""The connected side, on the host's loopback: the upstream sigstore charts served as a chart
repository, so `bundle create` pulls them through helm as it does in production (the images
wait in a registry on loopback that stands for the public ones, reached through `bundle create
--registry-mirror`, so they keep their upstream names: tests/cluster/oci_build.py builds them,
stack_images.push copies them). Nothing here is reachable from the cluster: the
only way across is a bundle, as at a real site.

- `package_sigstore_charts`: `helm package` of the upstream charts, with the charts they depend
  on (rekor → trillian 0.3.16, fulcio → ctlog 0.2.66) vendored first, as a site must ship them;
- `sigstore_chart_packages`: those packages, made once per session;
- `sigstore_chart_repo`: a session fixture serving them on loopback.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart_servers import ChartRepo, package_chart, serve_chart_repo
from tests.conftest import SHARED
from tests.tools import go_tool

UPSTREAM_CHARTS = SHARED / "upstream" / "sigstore-helm-charts"
# Charts that name another as a dependency, and the directory holding that dependency.
DEPENDENCIES = {"rekor": ("trillian",), "fulcio": ("ctlog-0.2.66",)}
CHARTS = ("trillian", "ctlog-0.2.66", "ctlog", "rekor", "fulcio", "tuf", "tsa", "policy-controller")


def package_sigstore_charts(destination: Path, home: Path) -> list[Path]:
    """Every upstream chart packaged into `destination`, dependencies vendored; the archives."""
    helm = go_tool("helm")
    work = destination.parent / "chart-sources"
    shutil.rmtree(work, ignore_errors=True)
    packaged: dict[str, Path] = {}
    for name in CHARTS:
        source = work / name
        shutil.copytree(UPSTREAM_CHARTS / name, source)
        for dependency in DEPENDENCIES.get(name, ()):
            (source / "charts").mkdir(exist_ok=True)
            shutil.copy(packaged[dependency], source / "charts")
        packaged[name] = package_chart(helm, source, destination, home)
    return list(packaged.values())


@pytest.fixture(scope="session")
def sigstore_chart_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The upstream charts packaged once per session, dependencies vendored: archive by the
    directory it came from (`ctlog-0.2.66` beside `ctlog`)."""
    root = tmp_path_factory.mktemp("sigstore-charts")
    archives = package_sigstore_charts(root / "packages", root / "home")
    return dict(zip(CHARTS, archives, strict=True))


@pytest.fixture(scope="session")
def sigstore_chart_repo(
    sigstore_chart_packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartRepo]:
    """The upstream sigstore charts as a chart repository on http://127.0.0.1:PORT/."""
    root = tmp_path_factory.mktemp("sigstore-chart-repo")
    archives = list(sigstore_chart_packages.values())
    with serve_chart_repo(go_tool("helm"), archives, root / "repo") as repo:
        yield repo
