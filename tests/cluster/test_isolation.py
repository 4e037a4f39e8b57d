"""A mistake must fail locally and never leave the machine: the host cannot reach the cluster's
addresses while it runs, every command to the cluster is checked to run inside its namespace,
and a teardown (after a failed start too) leaves nothing behind."""

from __future__ import annotations

import dataclasses
import errno
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from tests.cluster.fixtures import new_cluster
from tests.cluster.network import (
    GUARD_REFUSED,
    Addresses,
    GuardRefused,
    NamespaceError,
    NodeNamespace,
    reap_abandoned,
    run,
)
from tests.cluster.node import Cluster, ClusterError


@pytest.mark.parametrize(
    ("what", "address"),
    [
        ("the node", ("10.200.0.2", 6443)),
        ("a pod", ("10.244.0.5", 8080)),
        ("a service", ("10.96.0.1", 443)),
        ("the cluster DNS", ("10.96.0.10", 53)),
    ],
)
def test_from_the_host_the_clusters_addresses_are_unreachable_at_once(
    cluster: Cluster, what: str, address: tuple[str, int]
) -> None:
    """Without the fixture's `unreachable` routes, the host would send these to its default
    gateway, off the machine; with them the connect fails locally, before any packet leaves."""
    with socket.socket() as s:
        s.settimeout(10)  # a packet sent off the machine would time out, not fail at once
        with pytest.raises(OSError) as refused:
            s.connect(address)
    assert refused.value.errno == errno.EHOSTUNREACH, f"{what}: {refused.value}"


def test_the_host_routes_the_clusters_ranges_nowhere(cluster: Cluster) -> None:
    for cidr in cluster.namespace.addresses.routed_off_the_machine:
        address = cidr.split("/")[0].rsplit(".", 1)[0] + ".7"
        result = run(["ip", "route", "get", address], check=False)
        assert result == "", f"{address} is routed from the host: {result}"


def test_inside_the_namespace_the_node_ip_is_local(cluster: Cluster) -> None:
    route = cluster.output(["ip", "-o", "route", "get", cluster.node_ip])
    assert route.startswith(f"local {cluster.node_ip} ")


def test_the_guard_refuses_a_command_where_the_node_ip_is_not_local(cluster: Cluster) -> None:
    elsewhere = dataclasses.replace(cluster.namespace, addresses=Addresses(node_ip="10.201.0.2"))
    marker = cluster.state / "ran"
    result = subprocess.run(
        elsewhere.enter(["touch", str(marker)]), capture_output=True, text=True, check=False
    )
    assert result.returncode == GUARD_REFUSED
    assert "10.201.0.2 is not local here" in result.stderr
    assert not marker.exists()


def test_a_guarded_command_run_on_the_host_by_mistake_is_refused(cluster: Cluster) -> None:
    marker = cluster.state / "ran-on-host"
    result = subprocess.run(
        cluster.namespace.guarded(["touch", str(marker)]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == GUARD_REFUSED
    assert not marker.exists()


def test_the_guard_refuses_when_the_namespace_is_gone(tmp_path: Path) -> None:
    gone = NodeNamespace("airgap-never-made", tmp_path)
    with pytest.raises(GuardRefused, match="no running anchor"):
        gone.enter(["kubectl", "get", "nodes"])


def test_a_failed_start_stops_everything_and_leaves_nothing_behind(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    broken = new_cluster(tmp_path_factory, "broken")
    broken.binaries = dataclasses.replace(broken.binaries, etcd=Path("/bin/false"))
    with pytest.raises(ClusterError, match="etcd exited"):
        broken.start()
    assert broken.leftovers() == []
    assert run(["ip", "netns", "list"], check=False).count(broken.name) == 0


def test_a_teardown_that_cannot_remove_something_says_what(tmp_path: Path) -> None:
    namespace = NodeNamespace("airgap-teardown-report", tmp_path)

    def stuck() -> None:
        raise OSError("device busy")

    namespace._did("a stuck mount", stuck)
    with pytest.raises(NamespaceError, match="a stuck mount: device busy"):
        namespace.destroy()


def test_the_leftover_check_sees_everything_a_live_namespace_holds(tmp_path: Path) -> None:
    namespace = NodeNamespace("airgap-leftover-check", tmp_path / "state")
    namespace.create()
    try:
        held = " | ".join(namespace.leftovers())
    finally:
        namespace.destroy()
    assert "network namespace airgap-leftover-check" in held
    assert "anchor process" in held
    assert held.count("host route unreachable") == 3
    assert "cgroup /sys/fs/cgroup/memory/airgap-leftover-check" in held
    assert namespace.leftovers() == []


def test_a_cluster_whose_test_process_died_is_reaped_by_the_next_run(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = NodeNamespace(f"airgap{gone.pid}reap", tmp_path / "state")
    abandoned.create()
    sleeper = subprocess.Popen([*abandoned.enter(["sleep", "1000"])])
    assert abandoned.leftovers() != []

    assert abandoned.name in reap_abandoned()

    sleeper.wait(10)
    assert abandoned.anchor is not None
    abandoned.anchor.wait(10)  # reaped by the kill; collected here, its parent
    assert abandoned.leftovers() == []


def test_library_code_reaches_the_cluster_in_process_only_through_call(cluster: Cluster) -> None:
    def version() -> str:
        response = requests.get(
            f"https://{cluster.node_ip}:6443/version",
            verify=str(cluster.pki.ca),
            cert=(str(cluster.pki.cert("admin")), str(cluster.pki.key("admin"))),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["gitVersion"])

    assert cluster.call(version).startswith("v1.34.")
    # The calling thread never left the host's namespace: there, the same request fails at once.
    with pytest.raises(requests.ConnectionError, match="No route to host"):
        version()


def test_call_refuses_where_the_node_ip_is_not_local(cluster: Cluster) -> None:
    elsewhere = dataclasses.replace(cluster.namespace, addresses=Addresses(node_ip="10.201.0.2"))
    ran = []
    with pytest.raises(GuardRefused, match=r"10\.201\.0\.2 is not local"):
        elsewhere.call_inside(lambda: ran.append(1))
    assert ran == []
