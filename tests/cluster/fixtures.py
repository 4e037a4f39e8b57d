"""pytest plugin for the test cluster (listed in tests/conftest.py's `pytest_plugins`).

`cluster` starts one real node per session, the first time a test asks for it, and stops it at
the end of the session; the teardown fails if anything of the cluster is left on the machine.
Tests that use it get the `cluster` marker (so `-m "not cluster"` leaves them out), and a failing
one shows the diagnosis: every component's log tail, the pods, `kubectl describe` of what is not
ready.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator

import pytest

from tests.cluster.network import reap_abandoned
from tests.cluster.node import Cluster, ClusterError

_clusters: list[Cluster] = []


def new_cluster(tmp_path_factory: pytest.TempPathFactory, label: str = "node") -> Cluster:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (network namespaces, mounts, cgroups)")
    # A run killed before its teardown leaves its cluster behind: remove it first.
    reap_abandoned()
    # One namespace name per test process and cluster, so concurrent runs never meet.
    name = f"airgap{os.getpid()}{label[:4]}"
    return Cluster(name, tmp_path_factory.mktemp(f"cluster-{label}"))


def stop_and_check(cluster: Cluster) -> None:
    """Stop `cluster`; fail if anything is left behind. The bulky state (images, etcd) goes;
    the logs stay with pytest's temporary directories."""
    cluster.stop()
    left = cluster.leftovers()
    if left:
        raise ClusterError(f"the cluster's teardown left behind: {'; '.join(left)}")
    for bulky in ("containerd", "registry", "etcd", "images", "host", "kubelet"):
        shutil.rmtree(cluster.state / bulky, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    node = new_cluster(tmp_path_factory)
    node.start()
    _clusters.append(node)
    try:
        yield node
    finally:
        _clusters.remove(node)
        stop_and_check(node)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed or not _clusters or "cluster" not in getattr(item, "fixturenames", ()):
        return report
    if call.excinfo is not None and isinstance(call.excinfo.value, ClusterError):
        return report  # its message already carries the diagnosis
    report.sections.append(("cluster diagnosis", _clusters[-1].diagnose()))
    return report
