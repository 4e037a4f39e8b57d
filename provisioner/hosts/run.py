"""One playbook run through ansible-runner, over OpenSSH with host keys checked, and what it
did per host.

Everything the run writes (ansible-runner's artifacts, which hold every task's result, the
known_hosts it assembles, the SSH control sockets) lives in a private temporary directory that
is removed afterwards; the run's own output is never printed (ansible-runner is quiet), only the
per-host summary and one line per failure that airgap makes from the events.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.errors import UsageError
from provisioner.hosts.ansible_env import ansible_env, ansible_program
from provisioner.hosts.inventory import Inventory

# Called with (what, host, task): what is "task" (a task starts; host is ""), "ok", "changed",
# "failed", "skipped" or "unreachable".
Progress = Callable[[str, str, str], None]
_OUTCOMES = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
MAX_REASON = 300


@dataclass
class HostResult:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    reason: str
    unreachable: bool

    def line(self) -> str:
        kind = "unreachable" if self.unreachable else "failed"
        return f"{self.host}: {kind} at {self.task!r}: {self.reason}"


@dataclass
class RunResult:
    playbook: str
    check: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    status: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "successful" and not any(
            h.failed or h.unreachable for h in self.hosts.values()
        )

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "check": self.check,
            "ok": self.ok,
            "changed": self.changed,
            "hosts": {name: h.to_json() for name, h in self.hosts.items()},
            "failures": [f.__dict__ for f in self.failures],
        }


# A unix socket path has at most 107 bytes; ssh's %C adds 40.
_MAX_CONTROL_DIR = 60


@dataclass(frozen=True)
class RunDir:
    """Where one run keeps its files (`path`) and its SSH control sockets (`control`)."""

    path: Path
    control: Path


@contextmanager
def private_dir() -> Iterator[RunDir]:
    """A 0700 directory for one run, removed with everything in it afterwards; the control
    sockets go to a short directory of their own when the temporary directory's path is long."""
    with tempfile.TemporaryDirectory(prefix="airgap-hosts-") as name:
        path = Path(name)
        path.chmod(0o700)
        for sub in ("tmp", "runner"):
            (path / sub).mkdir(mode=0o700)
        control = path / "cp"
        separate = len(str(control)) > _MAX_CONTROL_DIR
        control = Path(tempfile.mkdtemp(prefix="airgap-ssh-", dir="/tmp")) if separate else control
        control.mkdir(mode=0o700, exist_ok=True)
        try:
            yield RunDir(path, control)
        finally:
            _close_masters(control)
            if separate:
                shutil.rmtree(control, ignore_errors=True)


def ssh_args(control: Path, known_hosts: Path | None) -> str:
    """OpenSSH options for every connection. They come first on ssh's command line, and ssh
    keeps the first value it is given for an option: nothing later can turn checking off."""
    args = [
        "-o ControlMaster=auto",
        "-o ControlPersist=60s",
        f"-o ControlPath={control}/%C",
        "-o StrictHostKeyChecking=yes",
        "-o CheckHostIP=no",
    ]
    if known_hosts is not None:
        args += [f"-o UserKnownHostsFile={known_hosts}", "-o GlobalKnownHostsFile=/dev/null"]
    return " ".join(args)


def assemble_known_hosts(private: RunDir, inventory: Inventory, given: Path | None) -> Path | None:
    """The run's known_hosts: the given file's lines and the inventory's keys; None when
    neither gives any (then OpenSSH's own files are used, still strictly)."""
    lines = inventory.known_hosts_lines()
    if given is None and not lines:
        return None
    text = ""
    if given is not None:
        if not given.is_file():
            raise UsageError(f"known_hosts file {given} does not exist or is not a file")
        text = given.read_text()
        if text and not text.endswith("\n"):
            text += "\n"
    path = private.path / "known_hosts"
    path.write_text(text + "".join(lines))
    path.chmod(0o600)
    return path


def run_playbook(
    playbook: Path,
    inventory: Inventory,
    extravars: Mapping[str, Any],
    private: RunDir,
    *,
    known_hosts: Path | None,
    check: bool,
    limit: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    import ansible_runner

    result = RunResult(playbook.stem, check)
    for host in inventory.hosts:
        result.hosts[host.name] = HostResult()
    tracker = _Tracker(result, progress)
    env = ansible_env(private.path)
    env["ANSIBLE_SSH_ARGS"] = ssh_args(private.control, known_hosts)
    # ansible-runner starts `ansible-playbook` by name: the one beside airgap's Python first.
    programs = Path(ansible_program("ansible-playbook")).parent
    env["PATH"] = os.pathsep.join([str(programs), os.environ.get("PATH", os.defpath)])
    cmdline = []
    if check:
        cmdline.append("--check")
    if limit:
        cmdline += ["--limit", limit]
    runner = ansible_runner.run(
        private_data_dir=str(private.path / "runner"),
        playbook=str(playbook),
        inventory=str(inventory.path.resolve()),
        extravars=dict(extravars),
        envvars=env,
        cmdline=shlex.join(cmdline) or None,
        quiet=True,
        event_handler=tracker.event,
    )
    result.status = str(runner.status)
    stats = runner.stats or {}
    if limit and not stats.get("processed") and "no hosts" in _last_error(runner):
        raise UsageError(f"--limit {limit} matches no host of inventory {inventory.path}")
    _apply_stats(result, stats)
    if (
        result.status != "successful"
        and not result.failures
        and not any(h.failed or h.unreachable for h in result.hosts.values())
    ):
        # ansible-playbook itself stopped (a playbook error, a bad --limit): say why.
        result.failures.append(Failure("-", "ansible-playbook", _last_error(runner), False))
    return result


class _Tracker:
    def __init__(self, result: RunResult, progress: Progress | None) -> None:
        self.result = result
        self.progress = progress

    def event(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        task = str(data.get("task", ""))
        if kind == "playbook_on_task_start" and self.progress:
            self.progress("task", "", task)
        outcome = _OUTCOMES.get(kind)
        if outcome is None:
            return True
        host = str(data.get("host", ""))
        res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
        if outcome == "ok" and res.get("changed"):
            outcome = "changed"
        if outcome in ("failed", "unreachable") and not data.get("ignore_errors"):
            reason = _reason(res)
            self.result.failures.append(Failure(host, task, reason, outcome == "unreachable"))
        if self.progress:
            self.progress(outcome, host, task)
        return True  # keep the event in ansible-runner's (private, removed) artifacts


# What ssh says when it refuses or cannot connect, among its warning banners.
_SSH_REASONS = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Permission denied",
    "Connection refused",
    "Connection timed out",
    "Could not resolve hostname",
    "No route to host",
)


def _reason(res: Mapping[str, Any]) -> str:
    """One line from a failed task's result: its message, or the command's last error line,
    or for an unreachable host what ssh said. A no_log task's result is already censored by
    ansible before it reaches here."""
    msg = str(res.get("msg", "") or "")
    stderr = str(res.get("stderr", "") or "").strip()
    if (not msg or msg == "non-zero return code") and stderr:
        msg = stderr.splitlines()[-1]
    module_stderr = str(res.get("module_stderr", "") or "").strip()
    if module_stderr and msg.startswith("Module result deserialization failed"):
        msg = f"the module did not run: {module_stderr.splitlines()[0]}"
    said = [r for r in _SSH_REASONS if r in msg]
    if said:
        msg = "ssh: " + "; ".join(said)
    msg = " ".join(msg.split()) or "no reason given"
    return msg if len(msg) <= MAX_REASON else msg[: MAX_REASON - 1] + "…"


def _apply_stats(result: RunResult, stats: Mapping[str, Any]) -> None:
    fields = {
        "ok": "ok",
        "changed": "changed",
        "failures": "failed",
        "dark": "unreachable",
        "skipped": "skipped",
    }
    for key, name in fields.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(result.hosts.setdefault(host, HostResult()), name, int(count))
    processed = stats.get("processed") or {}
    if processed:  # hosts a --limit left out are not reported
        result.hosts = {n: h for n, h in result.hosts.items() if n in processed}


def _last_error(runner: Any) -> str:
    try:
        text = str(runner.stdout.read())
    except (OSError, AttributeError):
        return f"ansible-playbook ended with status {runner.status} (rc {runner.rc})"
    lines: list[str] = [line.strip() for line in text.splitlines() if "ERROR" in line]
    if lines:
        return lines[0].split("ERROR", 1)[1].strip(" !:]") or lines[0]
    return f"ansible-playbook ended with status {runner.status} (rc {runner.rc})"


def _close_masters(directory: Path) -> None:
    """End the SSH connections the run kept open (ControlPersist), rather than leave them."""
    if not directory.is_dir():
        return
    for socket in directory.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "airgap-control"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=10,
            env={**os.environ, "LC_ALL": "C"},
        )
