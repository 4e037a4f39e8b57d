"""`airgap nodes status`: per node, the trust version it holds and when it was written, as its
pod of the DaemonSet last reported (the line render.py's script logs after each pass), against
the version the DaemonSet is applied with. A node with no pod, no report yet, or another
version is behind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.nodes.apply import SELECTOR
from provisioner.nodes.render import CONTAINER, NAME, REPORT, VERSION_ANNOTATION
from provisioner.stack.kube import Kube
from provisioner.stack.site import Site

_REPORT_LINE = re.compile(
    rf"{REPORT} version=(?P<version>[0-9a-f]{{64}}) "
    r"written=(?P<written>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z) changed=[0-9]+"
)
# Pod log lines read per pod: a report is logged every pass, so the last few hold one.
LOG_LINES = 20


@dataclass(frozen=True)
class Report:
    version: str
    written: str


@dataclass(frozen=True)
class NodeTrust:
    node: str
    current: bool
    version: str | None = None  # what the node holds, as its pod reported
    written: str | None = None
    pod: str | None = None
    problem: str = ""  # why it is behind

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "current": self.current,
            "version": self.version,
            "written": self.written,
            "pod": self.pod,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class NodesStatus:
    applied: str | None  # the version the DaemonSet runs; None: not applied
    nodes: list[NodeTrust]

    @property
    def behind(self) -> list[NodeTrust]:
        return [n for n in self.nodes if not n.current]

    @property
    def ok(self) -> bool:
        return self.applied is not None and bool(self.nodes) and not self.behind

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "applied": self.applied,
            "nodes": [n.to_json() for n in self.nodes],
            "behind": [n.node for n in self.behind],
        }


def parse_report(lines: Sequence[str]) -> Report | None:
    """The last well-formed report among `lines`, or None."""
    for line in reversed(lines):
        found = _REPORT_LINE.fullmatch(line.strip())
        if found:
            return Report(found["version"], found["written"])
    return None


def nodes_status(site: Site, kube: Kube) -> NodesStatus:
    namespace = site.namespace("nodes")
    daemon_set = kube.read_daemon_set(namespace, NAME)
    applied = None
    if daemon_set is not None:
        template = daemon_set["spec"]["template"]["metadata"]
        applied = (template.get("annotations") or {}).get(VERSION_ANNOTATION)
    pods = kube.pods(namespace, SELECTOR) if daemon_set is not None else []
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_node.setdefault(pod["spec"].get("nodeName") or "", []).append(pod)
    nodes = []
    for node in kube.node_names("kubernetes.io/os=linux"):
        if applied is None:
            nodes.append(NodeTrust(node, False, problem=f"daemonset {namespace}/{NAME} is absent"))
            continue
        nodes.append(_node(kube, namespace, node, by_node.get(node, []), applied))
    return NodesStatus(applied, nodes)


def _node(
    kube: Kube, namespace: str, node: str, pods: list[dict[str, Any]], applied: str
) -> NodeTrust:
    if not pods:
        return NodeTrust(node, False, problem="no pod of the DaemonSet runs here")
    # The newest pod first: during a rollout the old one may still be there.
    pods = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
    for pod in pods:
        name = pod["metadata"]["name"]
        report = parse_report(kube.log_tail(namespace, name, CONTAINER, LOG_LINES))
        if report is None:
            continue
        current = report.version == applied
        problem = "" if current else f"holds version {report.version[:12]}, not the applied one"
        return NodeTrust(node, current, report.version, report.written, name, problem)
    name = pods[0]["metadata"]["name"]
    return NodeTrust(node, False, pod=name, problem=f"pod {name} has not reported yet")
