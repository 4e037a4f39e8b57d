"""Connecting to a host over SSH for a push: the `[user@]host:path` destination, the host key
checked against an OpenSSH known_hosts file (plain and hashed entries), and the login.

An unknown host is refused with its key fingerprint unless `accept_new_host_key` is set, which
appends the key to that file; a host whose key differs from the recorded one, of any type, is
always refused. Authentication uses the identity file if one is given (its passphrase from
AIRGAP_SSH_KEY_PASSPHRASE), otherwise the agent and the default keys; a password comes only
from AIRGAP_SSH_PASSWORD. Secrets never reach an argument list, a message or a log. What is
sent once connected is push_ssh.py's.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from offline.errors import AirgapError, EnvironmentFailure, UsageError, VerificationFailure

log = logging.getLogger(__name__)

PASSWORD_ENV = "AIRGAP_SSH_PASSWORD"
PASSPHRASE_ENV = "AIRGAP_SSH_KEY_PASSPHRASE"
# The CLI flag named in the unknown-host message.

_DESTINATION = re.compile(
    r"(?:(?P<user>[^@:/\[\]\s]+)@)?(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[^@:/\[\]\s]+):(?P<path>.*)",
    re.DOTALL,
)


class PushError(EnvironmentFailure):
    """The push could not be done: connection, authentication or a remote I/O failure."""


class HostKeyError(VerificationFailure):
    """The host's key is unknown or differs from the one on record."""


class UnknownHostKey(HostKeyError):
    """The host is not on record; only its owner can say whether the key offered is its own."""


@dataclass(frozen=True)
class Destination:
    user: str
    host: str  # without IPv6 brackets
    path: str
    port: int = 22

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host (OpenSSH's and paramiko's convention)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 22 else f" (port {self.port})"
        return f"{self.user}@{host}:{self.path}{port}"


def parse_destination(text: str, port: int = 22) -> Destination:
    """`[user@]host:path` (scp's form; `[v6addr]:path` for IPv6); the port is separate."""
    match = _DESTINATION.fullmatch(text)
    if match is None or match["host"].startswith("-"):
        raise UsageError(f"destination {text!r} is not USER@HOST:PATH (e.g. ops@bastion:/srv/in)")
    if not 0 < port < 65536:
        raise UsageError(f"SSH port {port} is out of range (1-65535)")
    host = match["host"].strip("[]")
    return Destination(
        user=match["user"] or getpass.getuser(), host=host, path=match["path"] or ".", port=port
    )


@dataclass(frozen=True)
class Connection:
    """A logged-in SSH client (the caller closes it) and the host key it was checked against."""

    client: paramiko.SSHClient
    host_key: str  # "ssh-ed25519 SHA256:..."
    host_key_added: bool  # accepted as new and appended to known_hosts


def connect(
    dest: Destination,
    *,
    known_hosts: Path,
    accept_new_host_key: bool,
    identity_file: Path | None,
    env: Mapping[str, str],
    timeout: float,
) -> Connection:
    """Log in to `dest` with its host key checked against `known_hosts`."""
    passphrase = env.get(PASSPHRASE_ENV) or None
    pkey = _load_identity(identity_file, passphrase) if identity_file else None
    policy = HostKeyPolicy(known_hosts, accept_new_host_key)
    client = paramiko.SSHClient()
    try:
        policy.load(client)
        client.set_missing_host_key_policy(policy)
        _log_in(client, dest, pkey, env, timeout)
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        server_key = transport.get_remote_server_key()
    except BaseException:
        client.close()
        raise
    return Connection(client, f"{server_key.get_name()} {server_key.fingerprint}", policy.added)


def _load_identity(path: Path, passphrase: str | None) -> paramiko.PKey:
    try:
        # Bytes, positional: paramiko 5 hands it straight to cryptography, which wants bytes.
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # paramiko 5 lets cryptography's TypeError through for a missing passphrase.
        if isinstance(exc, TypeError) and passphrase:
            raise UsageError(f"cannot load identity file {path}: unsupported key format") from None
        raise UsageError(
            f"identity file {path} is encrypted: put its passphrase in {PASSPHRASE_ENV}"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read identity file {path}: {exc.strerror}") from None
    except (paramiko.SSHException, paramiko.UnknownKeyType, ValueError):
        # Never echo the passphrase or the key material.
        raise UsageError(
            f"cannot load identity file {path}: not a private key, or the passphrase in "
            f"{PASSPHRASE_ENV} is wrong"
        ) from None


def _log_in(
    client: paramiko.SSHClient,
    dest: Destination,
    pkey: paramiko.PKey | None,
    env: Mapping[str, str],
    timeout: float,
) -> None:
    where = f"{dest.host}:{dest.port}"
    try:
        client.connect(
            dest.host,
            port=dest.port,
            username=dest.user,
            password=env.get(PASSWORD_ENV) or None,
            pkey=pkey,
            passphrase=env.get(PASSPHRASE_ENV) or None,
            # With an explicit key, use only that key (like IdentitiesOnly): predictable.
            allow_agent=pkey is None,
            look_for_keys=pkey is None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except AirgapError:
        raise  # from the host-key policy
    except paramiko.BadHostKeyException as exc:
        raise _changed_key(dest.known_hosts_name, exc.key, [exc.expected_key]) from None
    except paramiko.AuthenticationException:
        raise PushError(
            f"authentication as {dest.user} on {where} failed: check the identity file "
            f"(or {PASSWORD_ENV}) and that its public key is in the account's authorized_keys"
        ) from None
    except paramiko.SSHException as exc:
        if "no authentication methods" in str(exc).lower():
            raise PushError(
                f"no key or password to log in to {where}: give an identity file or set "
                f"{PASSWORD_ENV}"
            ) from None
        raise PushError(f"SSH handshake with {where} failed: {one_line(exc)}") from None
    except socket.gaierror:
        raise PushError(f"cannot resolve host name {dest.host!r}") from None
    except paramiko.ssh_exception.NoValidConnectionsError:
        raise PushError(
            f"cannot connect to {where}: connection refused (is sshd running, is the port right?)"
        ) from None
    except TimeoutError:
        raise PushError(f"cannot connect to {where}: timed out after {timeout:.0f} s") from None
    except OSError as exc:
        raise PushError(f"cannot connect to {where}: {exc.strerror or exc}") from None


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Called by paramiko when no key of the offered type is on record for the host."""

    def __init__(self, path: Path, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new
        self.added = False
        self.known = paramiko.HostKeys()

    def load(self, client: paramiko.SSHClient) -> None:
        if not self.path.exists():
            return
        try:
            self.known.load(str(self.path))
        except OSError as exc:
            raise UsageError(f"cannot read known_hosts {self.path}: {exc.strerror}") from None
        # paramiko compares the offered key with these (same type) itself.
        client.get_host_keys().load(str(self.path))

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        recorded = self.known.lookup(hostname)
        if recorded:
            # A key of another type is on record: that is a changed key too, whatever
            # accept_new says (paramiko alone would treat it as a new host).
            raise _changed_key(hostname, key, list(recorded.values()))
        shown = f"{key.get_name()} {key.fingerprint}"
        if not self.accept_new:
            raise UnknownHostKey(
                f"host {hostname} is not in {self.path}; its key is {shown}: if that is the "
                "host's real key (ask its owner), accept it as a new host key to add it"
            )
        _append_known_host(self.path, hostname, key)
        self.known.add(hostname, key.get_name(), key)
        self.added = True
        log.info("added %s %s to %s", hostname, shown, self.path)


def _changed_key(hostname: str, key: Any, recorded: Sequence[Any]) -> HostKeyError:
    was = ", ".join(f"{k.get_name()} {k.fingerprint}" for k in recorded)
    return HostKeyError(
        f"host key of {hostname} has CHANGED: it offers {key.get_name()} {key.fingerprint}, "
        f"known_hosts has {was}; refusing to connect (possible man-in-the-middle); if the host "
        f"was reinstalled, confirm the new key and remove the old one with "
        f"ssh-keygen -R '{hostname}'"
    )


def _append_known_host(path: Path, hostname: str, key: Any) -> None:
    # Append one line rather than rewriting the file: paramiko's writer would drop the lines
    # it does not understand (@cert-authority, @revoked, comments).
    line = f"{hostname} {key.get_name()} {key.get_base64()}\n".encode()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UsageError(f"cannot add the host key to {path}: {exc.strerror}") from None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (paramiko's may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
