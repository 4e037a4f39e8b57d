"""A real OpenSSH server for the tests: Debian's `/usr/sbin/sshd`, on 127.0.0.1 only.

`sshd_server` (session scope) runs `sshd -D -e -f <temp config>` as the current user with
temporary ed25519 host keys, public-key authentication only (one generated client key in a
temporary `AuthorizedKeysFile`), `StrictModes no`, `UsePAM no` and the in-process
`internal-sftp` subsystem. It listens on two free loopback ports:

- `port`: a normal account (shell commands such as `sha256sum` work over exec channels);
- `sftp_only_port`: the same account behind `ForceCommand internal-sftp`, like a chrooted
  drop-box account, where every exec request gets an SFTP server instead of a shell.

It is ready when both ports answer with an `SSH-2.0` banner; startup failures `pytest.fail`
with the tail of sshd's log, which is also attached to the report of any failed test that used
the server. A missing sshd is a failure, never a skip: the Debian `openssh-server` package is a
test dependency.

When the tests run as root (containers), sshd insists on its privilege-separation directory
`/run/sshd` (no config option turns that off in OpenSSH 9); the fixture creates it, empty and
root-owned 0755, as Debian's service unit would, and never starts the system service. As an
unprivileged user sshd needs no such directory and can only log in as that same user.

A test module imports the fixture to use it: `from tests.sshd import sshd_server_fixture`
(with `# noqa: F401`); the import is all it takes, no conftest entry.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.stack.procs import tail, terminate

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
PRIVSEP_DIR = Path("/run/sshd")
STARTUP_TIMEOUT = 20.0
# A free port can be taken between our probe and sshd's bind (other suites run in parallel).
START_ATTEMPTS = 3


@dataclass
class SshServer:
    """A running sshd and what a client needs to reach it."""

    host: str
    port: int
    sftp_only_port: int
    user: str
    client_key: Path
    host_public_key: str  # "ssh-ed25519 AAAA..." (no host name)
    directory: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def host_key_name(self) -> str:
        """The known_hosts name of the main port, as OpenSSH and paramiko write it."""
        return self.known_hosts_name(self.port)

    def known_hosts_name(self, port: int) -> str:
        return self.host if port == 22 else f"[{self.host}]:{port}"

    def known_hosts_line(self, port: int | None = None) -> str:
        """One known_hosts line that trusts this server's host key on `port` (default main)."""
        return f"{self.known_hosts_name(port or self.port)} {self.host_public_key}\n"

    def destination(self, path: Path | str) -> str:
        return f"{self.user}@{self.host}:{path}"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        terminate(self.process)


def keygen(path: Path, comment: str = "airgap-test", passphrase: str = "") -> Path:
    """An ed25519 key pair at `path` and `path`.pub, private key 0600."""
    subprocess.run(
        [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    path.chmod(0o600)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_privsep_dir() -> None:
    if os.geteuid() != 0 or PRIVSEP_DIR.is_dir():
        return
    try:
        PRIVSEP_DIR.mkdir(mode=0o755)
    except FileExistsError:
        pass  # another test session made it in the meantime
    except OSError as exc:
        pytest.fail(f"sshd runs as root here and needs {PRIVSEP_DIR}, which cannot be made: {exc}")


def _config(directory: Path, port: int, sftp_only_port: int, host_key: Path) -> str:
    return "\n".join(
        [
            f"ListenAddress 127.0.0.1:{port}",
            f"ListenAddress 127.0.0.1:{sftp_only_port}",
            f"HostKey {host_key}",
            f"PidFile {directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}",
            # The temp dir and the user's home are not root-owned 0755 all the way up.
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            # Match blocks come last: everything after one belongs to it.
            f"Match LocalPort {sftp_only_port}",
            "    ForceCommand internal-sftp",
            "",
        ]
    )


def _banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        return s.recv(64)


def _wait_ready(server: SshServer) -> str | None:
    """None when both ports greet with SSH-2.0; otherwise why not (sshd exited)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = [server.port, server.sftp_only_port]
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"sshd exited with status {server.process.returncode}"
        try:
            while pending:
                if not _banner(pending[0]).startswith(b"SSH-2.0-"):
                    break
                pending.pop(0)
        except OSError:
            pass
        if not pending:
            return None
        time.sleep(0.05)
    return f"sshd did not answer on ports {pending} within {STARTUP_TIMEOUT:.0f} s"


def start_sshd(directory: Path) -> SshServer:
    """Start sshd with its keys and config in `directory`; the caller stops it."""
    if not SSHD.is_file() or not SSH_KEYGEN.is_file():
        pytest.fail(
            f"{SSHD} or {SSH_KEYGEN} is missing: install the Debian packages openssh-server "
            "and openssh-client (the SSH push tests need a real sshd)"
        )
    _ensure_privsep_dir()
    directory.mkdir(parents=True, exist_ok=True)
    host_key = keygen(directory / "ssh_host_ed25519_key", "airgap-test-host")
    client_key = keygen(directory / "client_ed25519", "airgap-test-client")
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    host_public = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    failure = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        port, sftp_only_port = _free_port(), _free_port()
        while sftp_only_port == port:
            sftp_only_port = _free_port()
        config = directory / "sshd_config"
        config.write_text(_config(directory, port, sftp_only_port, host_key))
        log_path = directory / f"sshd-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = SshServer(
            host="127.0.0.1",
            port=port,
            sftp_only_port=sftp_only_port,
            user=getpass.getuser(),
            client_key=client_key,
            host_public_key=host_public,
            directory=directory,
            log_path=log_path,
            process=process,
        )
        problem = _wait_ready(server)
        if problem is None:
            return server
        server.stop()
        failure = f"{problem}\n--- sshd log ---\n{server.log_tail()}"
        if "Address already in use" not in server.log_tail():
            break
    pytest.fail(f"could not start {SSHD}: {failure}")


@pytest.fixture(scope="session", name="sshd_server")
def sshd_server_fixture(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SshServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    # Registered while the server runs, so that importing the fixture is all a test module
    # needs (no conftest entry, no pytest_plugins).
    reporter = _LogReporter(server)
    pytestconfig.pluginmanager.register(reporter, f"sshd-log-{id(server)}")
    try:
        yield server
    finally:
        pytestconfig.pluginmanager.unregister(reporter)
        server.stop()


class _LogReporter:
    def __init__(self, server: SshServer) -> None:
        self.server = server

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        """On a failed test that used sshd, add the tail of its log to the report."""
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if report.failed and "sshd_server" in getattr(item, "fixturenames", ()):
            report.sections.append(("sshd log (tail)", self.server.log_tail()))
