"""provisioner.nodes.status: a node's report read from its pod's log lines, and which nodes are
behind."""

from __future__ import annotations

from provisioner.nodes.status import NodesStatus, NodeTrust, Report, parse_report

V1, V2 = "1" * 64, "2" * 64


def line(version: str, written: str = "2026-12-02T10:00:00Z", changed: int = 0) -> str:
    return f"airgap-node-trust version={version} written={written} changed={changed}"


def test_the_last_report_counts() -> None:
    lines = [line(V1, "2026-12-02T09:00:00Z", 5), "other output", line(V2)]
    assert parse_report(lines) == Report(V2, "2026-12-02T10:00:00Z")


def test_a_line_that_is_not_exactly_a_report_is_ignored() -> None:
    assert parse_report([]) is None
    assert (
        parse_report(["airgap-node-trust failed: a file could not be written; again in 10s"])
        is None
    )
    assert parse_report([line(V1[:12])]) is None  # a short version
    assert parse_report([line(V1, "yesterday")]) is None
    assert parse_report([line(V1) + " and more"]) is None
    assert parse_report(["echo " + line(V1)]) is None
    assert parse_report([line(V1), line(V2 + "0")]) == Report(V1, "2026-12-02T10:00:00Z")


def test_a_node_behind_or_unreported_fails_the_status() -> None:
    current = NodeTrust("a", True, V1, "2026-12-02T10:00:00Z", "p-a")
    behind = NodeTrust("b", False, V2, "2026-12-01T10:00:00Z", "p-b", "holds version 2222")
    silent = NodeTrust("c", False, pod="p-c", problem="pod p-c has not reported yet")
    assert NodesStatus(V1, [current]).ok
    status = NodesStatus(V1, [current, behind, silent])
    assert not status.ok
    assert [n.node for n in status.behind] == ["b", "c"]
    assert status.to_json()["behind"] == ["b", "c"]


def test_nothing_applied_or_no_node_is_not_ok() -> None:
    assert not NodesStatus(None, [NodeTrust("a", False, problem="daemonset absent")]).ok
    assert not NodesStatus(V1, []).ok
