"""A small process manager for the servers the integration tests run.

Each program is started with its own log file (stdout and stderr together), waited on until a
real readiness check passes (an HTTP answer or a TCP connect, polled against a deadline, never a
fixed sleep), and stopped with SIGTERM, then SIGKILL. Every error this module raises carries the
tail of every managed log, so a failed start says why.

Secrets never go into logs from here: the command line written at the top of each log has the
values given in `secrets` replaced, and the servers get their passwords from files or environment
variables where they allow it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
TAIL_LINES = 40

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - non-glibc platforms
    _libc = None


class StackError(RuntimeError):
    """A managed program failed to start, died, or a setup command failed."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def tcp_open(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def http_ok(url: str, status: int = 200) -> Callable[[], bool]:
    """True once `url` answers with `status` (any other answer or no answer: not yet)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status) == status
        except urllib.error.HTTPError as exc:
            return exc.code == status
        except (OSError, ValueError):
            return False

    return check


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no server outlives a killed run."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; a stopped process is left alone."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    stop_grace: float = 15.0  # seconds between SIGTERM and SIGKILL

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None


@dataclass
class ProcessManager:
    """Starts, watches and stops named programs; one log file per name under `log_dir`."""

    log_dir: Path
    base_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    # Every log written so far, including those of one-shot commands and stopped servers.
    logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        merged.update(self.base_env)
        if env:
            merged.update(env)
        return merged

    def _open_log(self, name: str, argv: Sequence[str], secrets: Iterable[str]) -> Path:
        path = self.log_dir / f"{name}.log"
        self.logs[name] = path
        shown = " ".join(argv)
        for secret in secrets:
            if secret:
                shown = shown.replace(secret, "***")
        with path.open("a") as f:
            f.write(f"==== {time.strftime('%H:%M:%S')} {shown}\n")
        return path

    def start(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        ready: Callable[[], bool] | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        cwd: Path | None = None,
        stop_grace: float = 15.0,
    ) -> Process:
        if name in self.processes and self.processes[name].running():
            raise StackError(f"{name} is already running (pid {self.processes[name].pid})")
        args = [os.fspath(a) for a in argv]
        log = self._open_log(name, args, secrets)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env(env),
                cwd=cwd,
                preexec_fn=_die_with_parent,
            )
        process = Process(name, args, log, popen, stop_grace)
        self.processes[name] = process
        if ready is not None:
            self.wait_ready(process, ready, timeout)
        return process

    def wait_ready(self, process: Process, check: Callable[[], bool], timeout: float) -> None:
        """Poll `check` until it passes; fail at once if the process exits, or at the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not process.running():
                raise self.error(
                    f"{process.name} exited with status {process.popen.returncode} before it "
                    f"was ready"
                )
            if check():
                return
            if time.monotonic() > deadline:
                raise self.error(f"{process.name} was not ready after {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def run(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        input: bytes | None = None,
    ) -> str:
        """Run a one-shot command to completion; its output goes to its log and is returned."""
        args = [os.fspath(a) for a in argv]
        log = self._open_log(name, args, secrets)
        try:
            result = subprocess.run(
                args,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                env=self._env(env),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise self.error(f"{name} did not finish within {timeout:.0f}s") from exc
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        with log.open("a") as f:
            f.write(stderr)
            f.write(stdout)
            f.write(f"==== exit status {result.returncode}\n")
        if result.returncode != 0:
            raise self.error(f"{name} failed with exit status {result.returncode}")
        return stdout

    def stop(self, name: str, timeout: float | None = None) -> None:
        """SIGTERM, wait up to `timeout` (default: the process's stop_grace), then SIGKILL.
        Stopping a stopped process is a no-op."""
        process = self.processes.pop(name, None)
        if process is None or not process.running():
            return
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(process.stop_grace if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.popen.kill()
            process.popen.wait(10)
        with process.log.open("a") as f:
            f.write(
                f"==== {time.strftime('%H:%M:%S')} stopped (status {process.popen.returncode})\n"
            )

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def check_alive(self) -> None:
        dead = [p for p in self.processes.values() if not p.running()]
        if dead:
            names = ", ".join(f"{p.name} (status {p.popen.returncode})" for p in dead)
            raise self.error(f"managed processes died: {names}")

    def log_tails(self, lines: int = TAIL_LINES) -> str:
        parts = []
        for name, path in self.logs.items():
            parts.append(f"---- {name} ({path}) ----\n{tail(path, lines)}")
        return "\n".join(parts)

    def error(self, message: str) -> StackError:
        return StackError(f"{message}\n{self.log_tails()}")
