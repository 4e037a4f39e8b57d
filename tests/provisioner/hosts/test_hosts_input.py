"""`airgap hosts apply` refuses bad input before any host is touched: one line, exit 2. Among
that input, anything that would let SSH skip host key checking. No SSH server is needed:
every case stops before the first connection (ansible-inventory itself reads the inventory)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.hosts.inventory import Host, Inventory
from provisioner.hosts.material import Wheelhouse
from provisioner.hosts.run import ssh_args
from provisioner.hosts.wheelhouse import find_wheelhouse
from tests.conftest import REPO

EXAMPLES = REPO / "offline" / "examples"
PLAYBOOKS = REPO / "playbooks"


def airgap(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A site with trust/ beside it (the public-good example root), a checkpoint store that
    pins the example's log, a wheelhouse directory with an airgap wheel, an inventory."""
    site_dir = tmp_path / "site"
    (site_dir / "trust").mkdir(parents=True)
    shutil.copy(EXAMPLES / "trusted_root.json", site_dir / "trust" / "trusted_root.json")
    site = site_dir / "site.yaml"
    site.write_text(
        "apiVersion: airgap.dev/v1\nkind: Site\ncharts: charts\n"
        "registry: {host: 'registry.internal:5000', mapping: m.json}\nstorage: {class: manual}\n"
    )
    store = tmp_path / "store"
    store.mkdir()
    added = airgap(
        "checkpoint", "add", EXAMPLES / "rekor-checkpoint.txt",
        "--trusted-root", EXAMPLES / "trusted_root.json", "--checkpoints", store,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "airgap-0.1.0-py3-none-any.whl").write_bytes(b"not used: no host is reached")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cd-a": {"ansible_port": 1}}}}))
    yield {"site": site, "store": store, "wheels": wheels, "inventory": inventory}


def apply(operator: dict[str, Path], *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return airgap(
        "hosts", "apply", "--site", operator["site"], "--checkpoints", operator["store"],
        "--wheelhouse", operator["wheels"], *extra,
    )  # fmt: skip


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("airgap: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_an_unknown_playbook_is_one_line(operator: dict[str, Path]) -> None:
    result = apply(operator, "--inventory", operator["inventory"], "--playbook", "site")
    refused(result, "unknown playbook 'site'", "cd-host", "node-prep")


def test_a_missing_inventory_is_one_line(operator: dict[str, Path], tmp_path: Path) -> None:
    result = apply(operator, "--inventory", tmp_path / "nope.yml")
    refused(result, "nope.yml", "does not exist")


def test_an_inventory_that_does_not_parse_is_one_line(
    operator: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts: [cd-a\n")
    refused(apply(operator, "--inventory", bad), f"inventory {bad} cannot be read")


def test_an_inventory_without_hosts_is_refused(operator: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  children: {cd: {}}\n")
    refused(apply(operator, "--inventory", empty), "lists no hosts")


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, "StrictHostKeyChecking=no"),
        ({"ansible_ssh_extra_args": "-o stricthostkeychecking accept-new"}, "accept-new"),
        ({"ansible_ssh_args": "-o UserKnownHostsFile=/dev/null"}, "/dev/null"),
        ({"ansible_host_key_checking": False}, "ansible_host_key_checking"),
        ({"ansible_ssh_host_key_checking": "no"}, "ansible_ssh_host_key_checking"),
        ({"ansible_connection": "paramiko"}, "not OpenSSH"),
    ],
)
def test_an_inventory_that_turns_host_key_checking_off_is_refused(
    operator: dict[str, Path], tmp_path: Path, variables: dict[str, Any], named: str
) -> None:
    inventory = tmp_path / "inventory.yml"
    # In a group's vars and behind a host: what counts is what the host ends up with.
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"children": {"cd": {"hosts": {"cd-a": {}, "cd-b": {}}, "vars": variables}}}}
        )
    )
    line = refused(apply(operator, "--inventory", inventory), "host cd-", named)
    assert "--known-hosts" in line


def test_a_host_key_that_is_not_a_key_is_refused(operator: dict[str, Path], tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"cd-a": {"airgap_ssh_host_keys": "ok"}}}})
    )
    refused(apply(operator, "--inventory", inventory), "host cd-a", "must be public keys")


def test_cd_host_needs_the_verifier_s_wheels(operator: dict[str, Path]) -> None:
    result = airgap(
        "hosts", "apply", "--site", operator["site"], "--checkpoints", operator["store"],
        "--inventory", operator["inventory"],
    )  # fmt: skip
    refused(result, "--bundle DIR --key PUB or --wheelhouse")


def test_a_store_that_pins_nothing_is_refused(operator: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty-store"
    empty.mkdir()
    result = airgap(
        "hosts", "apply", "--site", operator["site"], "--checkpoints", empty,
        "--wheelhouse", operator["wheels"], "--inventory", operator["inventory"],
    )  # fmt: skip
    refused(result, "pins no log", "airgap checkpoint fetch")


def test_a_site_without_trust_is_refused(operator: dict[str, Path]) -> None:
    (operator["site"].parent / "trust" / "trusted_root.json").unlink()
    refused(apply(operator, "--inventory", operator["inventory"]), "no trusted_root.json")


def test_a_private_key_among_the_trust_files_is_refused(operator: dict[str, Path]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    misplaced = operator["site"].parent / "trust" / "rekor.pub"
    misplaced.write_bytes(key)
    refused(apply(operator, "--inventory", operator["inventory"]), str(misplaced), "private key")


def test_a_wheelhouse_with_two_airgap_wheels_is_refused(tmp_path: Path) -> None:
    for version in ("0.1.0", "0.2.0"):
        (tmp_path / f"airgap-{version}-py3-none-any.whl").write_bytes(version.encode())
    with pytest.raises(Exception, match=r"2 airgap wheels .*keep one"):
        find_wheelhouse(tmp_path)


def test_the_wheel_archive_depends_on_the_wheels_alone(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "airgap-0.1.0-py3-none-any.whl").write_bytes(b"a" * 1000)
    (wheels / "idna-3.20-py3-none-any.whl").write_bytes(b"b" * 10)
    first = Wheelhouse(wheels, "0.1.0").archive(tmp_path / "1.tar").read_bytes()
    (wheels / "idna-3.20-py3-none-any.whl").touch()  # a new time, the same bytes
    assert Wheelhouse(wheels, "0.1.0").archive(tmp_path / "2.tar").read_bytes() == first
    (wheels / "idna-3.20-py3-none-any.whl").write_bytes(b"c" * 10)
    assert Wheelhouse(wheels, "0.1.0").archive(tmp_path / "3.tar").read_bytes() != first


def test_ssh_checks_host_keys_before_anything_an_inventory_adds(tmp_path: Path) -> None:
    args = ssh_args(tmp_path / "cp", tmp_path / "known_hosts").split()
    options = [args[i + 1] for i, a in enumerate(args) if a == "-o"]
    assert "StrictHostKeyChecking=yes" in options
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in options
    # ssh keeps the first value of an option: these come before ansible's and the inventory's.
    assert f"ControlPath={tmp_path / 'cp'}/%C" in options
    assert ssh_args(tmp_path, None).count("StrictHostKeyChecking=yes") == 1


def test_inventory_host_keys_are_written_for_their_address_and_port() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake"
    a = {"ansible_host": "10.0.0.5", "airgap_ssh_host_keys": key}
    b = {"ansible_host": "10.0.0.6", "ansible_port": 2222, "airgap_ssh_host_keys": [key]}
    inventory = Inventory(Path("inv"), (Host("a", a), Host("b", b), Host("c", {})))
    assert inventory.known_hosts_lines() == [f"10.0.0.5 {key}\n", f"[10.0.0.6]:2222 {key}\n"]


def _tasks(document: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for entry in document:
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from _tasks(entry.get(key, []))
        if "hosts" not in entry:
            yield entry


TASK_KEYWORDS = {
    "name", "register", "when", "loop", "loop_control", "diff", "environment", "changed_when",
    "failed_when", "no_log", "become", "tags", "check_mode", "vars",
}  # fmt: skip


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS.rglob("*.yml")), ids=lambda p: p.name)
def test_playbooks_use_only_ansible_builtin_modules(playbook: Path) -> None:
    modules = []
    for task in _tasks(yaml.safe_load(playbook.read_text())):
        action = [key for key in task if key not in TASK_KEYWORDS]
        assert len(action) == 1, f"{playbook.name}: {task.get('name')}: {action}"
        modules.append(action[0])
    assert modules
    assert all(m.startswith("ansible.builtin.") for m in modules), modules


def test_the_command_lists_hosts_in_its_help() -> None:
    result = airgap("hosts", "apply", "--help")
    assert result.returncode == 0
    assert "--inventory" in result.stdout and "--known-hosts" in result.stdout


def test_the_summary_has_a_line_per_host_and_one_per_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from provisioner.cli.hosts import _summary
    from provisioner.hosts.run import Failure, HostResult, RunResult

    result = RunResult("cd-host", check=False, status="failed")
    result.hosts["cd-a"] = HostResult(ok=12, changed=3)
    result.hosts["cd-b"] = HostResult(ok=2, unreachable=1)
    result.failures.append(Failure("cd-b", "Copy", "ssh: Host key verification failed", True))
    _summary(result)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "HOST    OK  CHANGED  FAILED  UNREACHABLE",
        "cd-a    12        3       0            0",
        "cd-b     2        0       0            1",
        "cd-host: failed on cd-b",
    ]
    assert err == "airgap: cd-b: unreachable at 'Copy': ssh: Host key verification failed\n"
    assert not result.ok


def _gather(operator: dict[str, Path], work: Path, checkpoints: Path | None) -> bytes:
    from provisioner.hosts.material import gather
    from provisioner.stack.site import load_site

    site = load_site(operator["site"])
    work.mkdir()
    material = gather(site, operator["site"].parent / "trust", None, checkpoints, work)
    assert material.logs_seeded == 1
    return material.checkpoint_seed.read_bytes()


def test_the_seed_is_the_same_bytes_for_the_same_store(
    operator: dict[str, Path], tmp_path: Path
) -> None:
    first = _gather(operator, tmp_path / "work-1", operator["store"])
    assert _gather(operator, tmp_path / "work-2", operator["store"]) == first
    assert b"rekor.sigstore.dev - 2605736670972794746" in first


def test_an_exported_seed_in_the_trust_dir_is_used_and_verified(
    operator: dict[str, Path], tmp_path: Path
) -> None:
    export = operator["site"].parent / "trust" / "checkpoints.json"
    exported = airgap("checkpoint", "export", export, "--checkpoints", operator["store"])
    assert exported.returncode == 0, exported.stderr
    from_store = _gather(operator, tmp_path / "work-store", operator["store"])
    assert _gather(operator, tmp_path / "work-export", None) == from_store

    # A root that the log's signature does not cover is refused, before any host is reached.
    document = json.loads(export.read_text())
    size = document["logs"][0]["checkpoints"][0]["size"]
    document["logs"][0]["checkpoints"][0]["size"] = size + 1
    export.write_text(json.dumps(document))
    result = apply(operator, "--inventory", operator["inventory"], "--checkpoints", export)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(export) in lines[0], result.stderr
