"""An Ansible inventory, read by ansible-inventory itself, and checked before any run: every
host is reached over OpenSSH with its host key checked, and nothing in the inventory may turn
that off.

Host keys come from a known_hosts file (`--known-hosts`) and/or from the inventory: a host
variable `airgap_ssh_host_keys` with one key or a list (`ssh-ed25519 AAAA...`), written into the
run's known_hosts for that host's address and port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.errors import UsageError
from provisioner.hosts.ansible_env import ansible_env, ansible_program

HOST_KEYS_VAR = "airgap_ssh_host_keys"
_CHECKING_VARS = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
_SSH_ARG_VARS = (
    "ansible_ssh_args",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_sftp_extra_args",
    "ansible_scp_extra_args",
)
_UNCHECKED = re.compile(
    r"StrictHostKeyChecking\s*[= ]\s*(no|off|false|0|accept-new)\b"
    r"|(User|Global)KnownHostsFile\s*[= ]\s*/dev/null",
    re.IGNORECASE,
)
_FALSE = {"false", "no", "off", "0", "n", "f"}
_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/=]+")
_CONNECTIONS = (None, "ssh", "ansible.builtin.ssh")


@dataclass(frozen=True)
class Host:
    name: str
    vars: Mapping[str, Any]

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host") or self.vars.get("ansible_ssh_host") or self.name)

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port") or self.vars.get("ansible_ssh_port") or 22)

    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]

    def known_hosts_lines(self) -> list[str]:
        lines = []
        for host in self.hosts:
            keys = host.vars.get(HOST_KEYS_VAR, [])
            for key in [keys] if isinstance(keys, str) else keys:
                lines.append(f"{host.known_hosts_name()} {key}\n")
        return lines


def read_inventory(path: Path, private_dir: Path) -> Inventory:
    """The inventory's hosts and their variables (group_vars and host_vars included), checked;
    a file that is missing or does not parse is a one-line UsageError."""
    if not path.is_file():
        raise UsageError(f"inventory {path} does not exist or is not a file")
    result = subprocess.run(
        [ansible_program("ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, **ansible_env(private_dir)},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise UsageError(f"inventory {path} cannot be read: {_first_reason(result.stderr)}")
    try:
        listing = json.loads(result.stdout)
    except ValueError:
        raise UsageError(f"inventory {path}: ansible-inventory printed no inventory") from None
    inventory = Inventory(path, _hosts(listing))
    if not inventory.hosts:
        raise UsageError(f"inventory {path} lists no hosts")
    for host in inventory.hosts:
        _check_host(path, host)
    return inventory


def _hosts(listing: dict[str, Any]) -> tuple[Host, ...]:
    hostvars: dict[str, Any] = listing.get("_meta", {}).get("hostvars", {})
    names: dict[str, None] = dict.fromkeys(hostvars)
    for group, entry in listing.items():
        if group != "_meta" and isinstance(entry, dict):
            names.update(dict.fromkeys(entry.get("hosts", [])))
    return tuple(Host(name, hostvars.get(name, {})) for name in names)


def _first_reason(stderr: str) -> str:
    """The first line that says why (ansible's own messages span many lines)."""
    for line in stderr.splitlines():
        line = line.strip()
        for marker in ("Failed to parse inventory with", "[ERROR]:", "ERROR!"):
            if marker in line:
                return line.split(marker, 1)[1].strip(" :.") or line
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "ansible-inventory failed"


def _check_host(path: Path, host: Host) -> None:
    def refuse(what: str) -> None:
        raise UsageError(
            f"inventory {path}: host {host.name}: {what}; airgap always checks SSH host keys "
            f"(give them with --known-hosts or the host variable {HOST_KEYS_VAR})"
        )

    connection = host.vars.get("ansible_connection")
    if connection not in _CONNECTIONS:
        refuse(f"ansible_connection {connection!r} is not OpenSSH")
    for name in _CHECKING_VARS:
        if name in host.vars and str(host.vars[name]).strip().lower() in _FALSE:
            refuse(f"{name} turns host key checking off")
    for name in _SSH_ARG_VARS:
        match = _UNCHECKED.search(str(host.vars.get(name, "")))
        if match:
            refuse(f"{name} has {match.group(0)!r}")
    keys = host.vars.get(HOST_KEYS_VAR, [])
    for key in [keys] if isinstance(keys, str) else keys if isinstance(keys, list) else [keys]:
        if not isinstance(key, str) or not _KEY.fullmatch(key.strip()):
            raise UsageError(
                f"inventory {path}: host {host.name}: {HOST_KEYS_VAR} must be public keys "
                "such as 'ssh-ed25519 AAAA...'"
            )
