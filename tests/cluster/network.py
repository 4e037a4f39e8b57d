"""The node's private network and mount namespaces, and the guard around them.

The node lives in a network namespace of its own with no route to or from the host: its node IP
sits on an `ifb` device (this kernel has no `dummy`; `ifb` drops whatever is sent to it), so a
packet for anything outside the node dies inside it. Every cluster process also shares one
private mount namespace, owned by an "anchor" process (`unshare --mount --propagation slave`):
kubelet mounts the pods' secret volumes there and runc must see them, and the paths kubelet and
containerd hard-code (`/var/lib/kubelet`, `/run/containerd`, ...) get private bind mounts there, so
nothing of the cluster shows on the host and two clusters can run side by side.

In the host namespace the cluster's addresses would be routed to the default gateway, off the
machine. While the namespace exists the host gets `unreachable` routes for them (with a metric
unique to this cluster, so concurrent clusters never remove each other's), and every command
that talks to the cluster runs through `NodeNamespace.enter`, which checks inside the very
namespace it runs in that the node IP is local before it runs anything.

Every step that changes the machine records how to undo it; `destroy` undoes them all in reverse,
after a failed start too, and `leftovers` lists what a teardown failed to remove.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# The exit status of the guard when the node IP is not local where the command would run.
GUARD_REFUSED = 97


class NamespaceError(RuntimeError):
    """Setting up or tearing down the node's namespaces failed."""


class GuardRefused(NamespaceError):
    """A command meant for the cluster would not have run inside the cluster's namespace."""


@dataclass(frozen=True)
class Addresses:
    """The node's addresses: the same in every test cluster, since each has its own namespace."""

    node_ip: str = "10.200.0.2"
    node_cidr: str = "10.200.0.0/24"
    pod_cidr: str = "10.244.0.0/24"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    kubernetes_service_ip: str = "10.96.0.1"
    dns_ip: str = "10.96.0.10"

    @property
    def routed_off_the_machine(self) -> tuple[str, ...]:
        """The ranges the host would send to its default gateway: each gets `unreachable`."""
        return (self.node_cidr, self.cluster_cidr, self.service_cidr)


# Global sysctls kubelet rewrites (they are not per network namespace): saved and restored.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
# Paths kubelet, containerd and the CNI plugins hard-code on the host.
HARD_CODED_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/run/containerd", "/var/lib/cni")


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise NamespaceError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


@dataclass
class NodeNamespace:
    """One cluster's network namespace, anchor mount namespace and cgroup root."""

    name: str
    state: Path
    addresses: Addresses = field(default_factory=Addresses)
    anchor: subprocess.Popen[bytes] | None = None
    netns_inode: int | None = None
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    host_iptables: list[str] = field(default_factory=list)
    # The anchor of a namespace another process made and runs (`python -m tests.cluster run`).
    attached_anchor: int | None = None

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.name

    @property
    def route_metric(self) -> int:
        # Unique among the clusters on this machine (their names are), so one teardown never
        # removes another cluster's routes.
        return 40000 + zlib.crc32(self.name.encode()) % 20000

    @property
    def cgroup_root(self) -> str:
        return f"/{self.name}"

    def _did(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    # ---- creation -------------------------------------------------------------------------

    def create(self) -> None:
        """Make the namespaces; on failure undo what was made and raise."""
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        a = self.addresses
        self.state.mkdir(parents=True, exist_ok=True)
        self._save_sysctls()
        # kube-proxy programs iptables inside the namespace only; the host's rules must not move.
        self.host_iptables = host_iptables_rules()
        for cidr in a.routed_off_the_machine:
            route = ["unreachable", cidr, "metric", str(self.route_metric)]
            run(["ip", "route", "add", *route])
            self._did(f"host route {cidr}", functools.partial(self._del_route, route))
        run(["ip", "netns", "add", self.name])
        self._did("netns", self._delete_netns)
        self.netns_inode = self.netns_path.stat().st_ino
        ns = ["ip", "-n", self.name]
        run([*ns, "link", "set", "lo", "up"])
        run([*ns, "link", "add", "node0", "type", "ifb"])
        run([*ns, "addr", "add", f"{a.node_ip}/24", "dev", "node0"])
        run([*ns, "link", "set", "node0", "up"])
        # Node processes must route to ClusterIPs before kube-proxy's OUTPUT DNAT rewrites them;
        # the route ends in the ifb black hole, never outside.
        run([*ns, "route", "add", a.service_cidr, "dev", "node0"])
        for setting in (
            "net.ipv4.ip_forward=1",
            "net.bridge.bridge-nf-call-iptables=1",
            "net.ipv4.conf.all.route_localnet=1",
        ):
            # `ip netns exec` remounts /sys, which is fine for one sysctl; components use
            # nsenter, which keeps the cgroup mounts visible.
            run(["ip", "netns", "exec", self.name, "sysctl", "-qw", setting])
        self._start_anchor()
        for path in HARD_CODED_PATHS:
            private = self.state / "host" / path.lstrip("/")
            private.mkdir(parents=True, exist_ok=True)
            Path(path).mkdir(parents=True, exist_ok=True)
            run([*self.enter_unguarded(), "mount", "--bind", str(private), path])
        self._make_cgroups()

    def _delete_netns(self) -> None:
        run(["ip", "netns", "del", self.name], check=False)

    def _del_route(self, route: list[str]) -> None:
        run(["ip", "route", "del", *route], check=False)

    def _save_sysctls(self) -> None:
        for name in KUBELET_SYSCTLS:
            path = sysctl_path(name)
            if path.exists():
                self.saved_sysctls[name] = path.read_text().strip()
        self._did("sysctls", self._restore_sysctls)

    def _restore_sysctls(self) -> None:
        for name, value in self.saved_sysctls.items():
            path = sysctl_path(name)
            if path.read_text().strip() != value:
                path.write_text(value)

    def _start_anchor(self) -> None:
        self.anchor = subprocess.Popen(
            [
                "nsenter",
                f"--net={self.netns_path}",
                "--",
                "unshare",
                "--mount",
                "--propagation",
                "slave",
                "--",
                "sleep",
                "infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._did("anchor", self._stop_anchor)
        # unshare execs sleep once the mount namespace exists: wait for that.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{self.anchor.pid}/comm").read_text().strip() == "sleep":
                    return
            if self.anchor.poll() is not None:
                break
            time.sleep(0.02)
        raise NamespaceError("the anchor of the node's mount namespace did not start")

    def _stop_anchor(self) -> None:
        if self.anchor is not None and self.anchor.poll() is None:
            self.anchor.kill()
            self.anchor.wait(10)

    def _make_cgroups(self) -> None:
        root = Path("/sys/fs/cgroup")
        for hierarchy in sorted(root.iterdir()):
            if hierarchy.name == "unified" or not (hierarchy / "cgroup.procs").exists():
                continue
            directory = hierarchy / self.name
            directory.mkdir(exist_ok=True)

            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (directory / knob).write_text((hierarchy / knob).read_text())
        self._did("cgroups", self._remove_cgroups)

    def _remove_cgroups(self) -> None:
        # Every hierarchy, the unified one too: kubelet makes its cgroup root there as well.
        for directory in Path("/sys/fs/cgroup").glob(f"*/{self.name}"):
            for child in sorted(directory.rglob("*"), key=lambda p: -len(p.parts)):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                directory.rmdir()

    # ---- entering -------------------------------------------------------------------------

    def enter_unguarded(self) -> list[str]:
        """The nsenter prefix into the node's network and mount namespaces (no route check:
        for the setup steps that build the namespace the guard checks)."""
        return [
            "nsenter",
            f"--net={self.netns_path}",
            f"--mount=/proc/{self._anchor_pid()}/ns/mnt",
            "--",
        ]

    def _anchor_pid(self) -> int:
        """The anchor's PID, once it proves to be alive inside this very network namespace."""
        pid = self.anchor.pid if self.anchor is not None else self.attached_anchor
        try:
            inside = os.readlink(f"/proc/{pid}/ns/net") == f"net:[{self.netns_path.stat().st_ino}]"
        except OSError:
            inside = False
        if pid is None or not inside or _zombie(pid):
            raise GuardRefused(f"cluster namespace {self.name} has no running anchor process")
        return pid

    def enter(self, command: Sequence[str]) -> list[str]:
        """`command` run inside the node's namespaces, behind the guard."""
        return [*self.enter_unguarded(), *self.guarded(command)]

    def guarded(self, command: Sequence[str]) -> list[str]:
        """`command`, run only once a check made where it runs finds the node IP local: a
        command that would reach the cluster's addresses through the host's routes (off the
        machine) is refused before it runs."""
        node_ip = self.addresses.node_ip
        script = (
            f'ip -o route get {node_ip} 2>/dev/null | grep -q "^local {re.escape(node_ip)} " '
            f'|| {{ echo "refused: {node_ip} is not local here: not inside the cluster '
            f'namespace" >&2; exit {GUARD_REFUSED}; }}; exec "$@"'
        )
        return ["sh", "-c", script, "guard", *command]

    def call_inside(self, function: Callable[[], T]) -> T:
        """`function()` run in a thread of this process that has entered the node's network
        namespace (a network namespace is per thread: the rest of the process stays on the
        host), once the node IP proves local there. For library code under test that talks to
        the cluster in-process (kubernetes and helm clients); sockets it opens stay inside."""
        outcome: list[T] = []
        failure: list[BaseException] = []

        def body() -> None:
            try:
                fd = os.open(self.netns_path, os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        error = ctypes.get_errno()
                        raise OSError(error, f"setns into {self.name}: {os.strerror(error)}")
                finally:
                    os.close(fd)
                with socket.socket() as probe:
                    try:
                        probe.bind((self.addresses.node_ip, 0))
                    except OSError as exc:
                        raise GuardRefused(
                            f"refused: {self.addresses.node_ip} is not local in {self.name}"
                        ) from exc
                outcome.append(function())
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=body, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]

    # ---- teardown -------------------------------------------------------------------------

    def kill_processes_inside(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL, every process still in the node's network namespace or its
        cgroups (pods, shims, anything a component started), except the anchor."""
        anchor = self.anchor.pid if self.anchor is not None else None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            pids = [p for p in self.processes_inside() if p != anchor]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                time.sleep(0.1)

    def processes_inside(self) -> list[int]:
        """PIDs whose network namespace is the node's, or that sit in its cgroups."""
        found: set[int] = set()
        if self.netns_inode is not None:
            wanted = f"net:[{self.netns_inode}]"
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        if os.readlink(entry / "ns" / "net") == wanted:
                            found.add(int(entry.name))
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            directory = hierarchy / self.name
            if directory.is_dir():
                for procs in directory.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        found.update(int(line) for line in procs.read_text().split())
        return sorted(p for p in found if not _zombie(p))

    def destroy(self) -> None:
        """Undo every step made, in reverse; keep going past failures and report them at the
        end, so one stuck step never leaves the rest behind."""
        self.kill_processes_inside()
        failures = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep tearing down; report below
                failures.append(f"{what}: {exc}")
        if failures:
            raise NamespaceError("teardown failed: " + "; ".join(failures))

    def leftovers(self) -> list[str]:
        """What of this namespace is still on the machine (empty after a clean teardown)."""
        left = []
        if self.netns_path.exists() or self.name in run(["ip", "netns", "list"], check=False):
            left.append(f"network namespace {self.name}")
        left += [f"process {pid}" for pid in self.processes_inside()]
        if self.anchor is not None and self.anchor.poll() is None:
            left.append(f"anchor process {self.anchor.pid}")
        state = str(self.state)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if state in line or f"/run/netns/{self.name} " in line:
                left.append(f"mount {line.split()[4]}")
        left += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob(f"*/{self.name}") if d.is_dir()]
        routes = run(["ip", "route", "show"], check=False)
        left += [
            f"host route {line.strip()}"
            for line in routes.splitlines()
            if f"metric {self.route_metric}" in line
        ]
        now_rules = host_iptables_rules()
        left += [f"host iptables rule {r}" for r in now_rules if r not in self.host_iptables]
        for name, value in self.saved_sysctls.items():
            now = sysctl_path(name).read_text().strip()
            if now != value:
                left.append(f"sysctl {name}={now} (was {value})")
        return left

    def remove_state(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)


def host_iptables_rules() -> list[str]:
    """The host's IPv4 rules and chains (without packet counters), as `iptables-save` lists them."""
    rules = run(["iptables-save"], check=False).splitlines()
    return [r.split(" [")[0] if r.startswith(":") else r for r in rules if not r.startswith("#")]


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# Test clusters are named `airgap<PID of the test process><label>`.
_CLUSTER_NAME = re.compile(r"airgap(\d+)[a-z]*")


def reap_abandoned() -> list[str]:
    """Remove the namespaces, processes, cgroups and host routes of test clusters whose test
    process is gone (killed before its teardown ran); the names of those removed."""
    reaped = []
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _CLUSTER_NAME.fullmatch(name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        abandoned = NodeNamespace(name, Path("/nonexistent"))
        abandoned.netns_inode = abandoned.netns_path.stat().st_ino
        abandoned.kill_processes_inside()
        abandoned._remove_cgroups()
        run(["ip", "netns", "del", name], check=False)
        for cidr in abandoned.addresses.routed_off_the_machine:
            abandoned._del_route(["unreachable", cidr, "metric", str(abandoned.route_metric)])
        reaped.append(name)
    return reaped
