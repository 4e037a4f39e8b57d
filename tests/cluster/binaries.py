"""The node's programs: Kubernetes and etcd built by tests/tools/install-cluster-tools.sh, CoreDNS,
crane and helm by tests/tools/install-go-tools.sh (all cached by version), and the Debian ones."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.tools import ToolMissing, go_tool, tools_cache

PINS = Path(__file__).parents[1] / "tools" / "cluster-tools.txt"
DEBIAN = ("containerd", "runc", "ctr", "docker-registry", "busybox", "htpasswd", "nsenter")


def cluster_pins() -> dict[str, str]:
    pins = {}
    for line in PINS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, version = line.split()
            pins[name] = version
    return pins


def cluster_tool(name: str, program: str) -> Path:
    """Program `program` of the set `name` in cluster-tools.txt (e.g. policy-controller)."""
    return _built(name) / program


def _built(name: str) -> Path:
    version = cluster_pins()[name]
    directory = tools_cache() / f"{name}-{version}"
    if not (directory / ".complete").exists():
        raise ToolMissing(
            f"{name} {version} is not built in {directory}: "
            "run tests/tools/install-cluster-tools.sh (or bash .ci/setup)"
        )
    return directory / "bin"


@dataclass(frozen=True)
class NodeBinaries:
    kubernetes: Path  # the directory with kube-apiserver, kubelet, kubectl, ...
    etcd: Path
    coredns: Path
    crane: Path
    helm: Path

    def kube(self, name: str) -> Path:
        return self.kubernetes / name

    @property
    def path(self) -> str:
        """PATH for commands run in the cluster: these programs first, then the system's."""
        dirs = [self.kubernetes, self.etcd.parent, self.crane.parent, self.helm.parent]
        return ":".join([*map(str, dirs), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"])


def find_binaries() -> NodeBinaries:
    missing = [name for name in DEBIAN if shutil.which(name) is None]
    if missing:
        raise ToolMissing(f"not installed: {', '.join(missing)} (run bash .ci/setup)")
    return NodeBinaries(
        kubernetes=_built("kubernetes"),
        etcd=_built("etcd") / "etcd",
        coredns=go_tool("coredns"),
        crane=go_tool("crane"),
        helm=go_tool("helm"),
    )
