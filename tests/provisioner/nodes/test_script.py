"""The script the DaemonSet runs, run here by the same busybox sh against a directory standing
for the pod's filesystem (`$AIRGAP_ROOT`): what it writes, with which modes, what it records
and logs, and that a pass with nothing to do changes nothing."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from pathlib import Path

from provisioner.nodes.material import read_material
from provisioner.nodes.render import MATERIAL, RECORD, REGISTRY_MOUNT, TRUST_MOUNT, render
from provisioner.nodes.status import parse_report
from tests.cluster.images import BUSYBOX
from tests.provisioner.nodes.conftest import NodesSite


def one_pass(root: Path, lab: NodesSite) -> str:
    """Lay the ConfigMap out as the pod sees it, run the script until its first report, stop
    it as the kubelet does (SIGTERM), and return the report line."""
    objects = render(lab.site, lab.mapping, read_material(lab.site, None, None))
    material = root / MATERIAL.lstrip("/")
    if material.exists():
        for old in material.iterdir():
            old.unlink()
    material.mkdir(parents=True, exist_ok=True)
    for key, data in objects.config_map["binaryData"].items():
        (material / key).write_bytes(base64.b64decode(data))
    for mount in (TRUST_MOUNT, REGISTRY_MOUNT):
        (root / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(BUSYBOX), "sh", str(material / "write.sh")],
        env={"AIRGAP_ROOT": str(root), "PATH": "/nonexistent"},  # busybox's own applets only
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return line.strip()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_every_file_lands_with_its_bytes_mode_0644_and_the_version_is_recorded(
    tmp_path: Path, lab: NodesSite
) -> None:
    root = tmp_path / "pod"
    report = parse_report([one_pass(root, lab)])
    trust = root / TRUST_MOUNT.lstrip("/")
    registry = root / REGISTRY_MOUNT.lstrip("/")
    for name, data in lab.files.items():
        assert (trust / name).read_bytes() == data
        assert mode(trust / name) == 0o644
    assert (registry / "ca.crt").read_bytes() == (
        lab.trust_dir.parent / "registry-ca.pem"
    ).read_bytes()
    assert b'server = "https://registry.lab:5000"' in (registry / "hosts.toml").read_bytes()
    assert mode(trust) == mode(registry) == 0o755
    recorded = json.loads((trust / RECORD).read_text())
    objects = render(lab.site, lab.mapping, read_material(lab.site, None, None))
    assert report is not None and report.version == recorded["version"] == objects.version
    assert report.written == recorded["written"]
    assert not [p for p in [*trust.iterdir(), *registry.iterdir()] if "airgap-tmp" in p.name]


def test_a_pass_with_nothing_to_change_writes_nothing(tmp_path: Path, lab: NodesSite) -> None:
    root = tmp_path / "pod"
    first = one_pass(root, lab)
    trust = root / TRUST_MOUNT.lstrip("/")
    inodes = {p.name: p.stat().st_ino for p in trust.iterdir()}
    second = one_pass(root, lab)
    assert re.search(r" changed=0$", second)
    assert parse_report([first]) == parse_report([second])  # same version, same time written
    assert {p.name: p.stat().st_ino for p in trust.iterdir()} == inodes


def test_a_file_changed_on_the_node_is_put_back_and_its_mode_too(
    tmp_path: Path, lab: NodesSite
) -> None:
    root = tmp_path / "pod"
    one_pass(root, lab)
    trust = root / TRUST_MOUNT.lstrip("/")
    (trust / "trusted_root.json").write_text("{}")
    os.chmod(trust / "rekor.pub", 0o666)
    assert one_pass(root, lab).endswith(" changed=2")
    assert (trust / "trusted_root.json").read_bytes() == lab.files["trusted_root.json"]
    assert mode(trust / "rekor.pub") == 0o644


def test_a_file_the_new_version_no_longer_has_is_removed(tmp_path: Path, lab: NodesSite) -> None:
    root = tmp_path / "pod"
    one_pass(root, lab)
    (lab.trust_dir / "signing_config.v0.2.json").unlink()
    report = one_pass(root, lab)
    assert not (root / TRUST_MOUNT.lstrip("/") / "signing_config.v0.2.json").exists()
    assert report.endswith(" changed=1")
