"""`airgap nodes apply` and `airgap nodes status` on the real cluster: the DaemonSet writes the
site's trust files and the internal registry's containerd configuration onto the node, with
their bytes and modes; an unchanged apply restarts nothing; a trust change rolls out and the
node's files change; a node that cannot take the new version is reported behind (exit 1) and
catches up by itself; and containerd pulls from the internal registry through the hosts.toml
the DaemonSet wrote.

No Sigstore stack is installed: the trust material is made as install makes it (new keys, the
trusted root, the signing config, the TUF repository's published root). The site points the
DaemonSet at a trust directory under the node's state and at the node containerd's own
certs.d, whose entry for the internal registry the fixture wrote first (kept and put back).

The tests of this module run in order against one DaemonSet (module-scoped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.nodes.containerd import hosts_toml
from provisioner.nodes.render import NAME, RECORD
from provisioner.stack.site import Site, load_site
from provisioner.trust.layout import RepoLayout, pinned_root
from tests.cluster import workloads
from tests.cluster.node import PULL_SECRET, Cluster
from tests.provisioner.nodes.material import BUSYBOX, write_mapping, write_trust_dir

NAMESPACE = "airgap-system"


@dataclass
class NodesSite:
    site: Site
    tuf_repo: Path
    files: dict[str, bytes]  # the trust directory's files, as last written

    @property
    def trust_dir(self) -> Path:
        return self.site.path.parent / "trust"

    @property
    def node_trust(self) -> Path:
        assert self.site.nodes is not None
        return Path(str(self.site.nodes.trust_dir))

    @property
    def node_registry(self) -> Path:
        assert self.site.nodes is not None
        return Path(str(self.site.nodes.containerd_certs_dir)) / self.site.registry.host

    def root_json(self) -> bytes:
        generation = RepoLayout(self.tuf_repo).current_generation()
        assert generation is not None
        return pinned_root(generation).read_bytes()

    def new_trust(self) -> None:
        """New keys, as a reinstall with --delete-keys makes them."""
        self.files = write_trust_dir(self.site, self.trust_dir, tuf_repo=self.tuf_repo)


def airgap(cluster: Cluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return cluster.run(
        [sys.executable, "-m", "provisioner.cli", *args], timeout=timeout, check=False
    )


def apply(cluster: Cluster, nodes: NodesSite, *more: str) -> dict[str, Any]:
    done = airgap(
        cluster, "nodes", "apply", "--site", str(nodes.site.path), "--trust", str(nodes.tuf_repo),
        "--output", "json", *more,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def status(cluster: Cluster, nodes: NodesSite) -> tuple[int, dict[str, Any]]:
    done = airgap(cluster, "nodes", "status", "--site", str(nodes.site.path), "--output", "json")
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def pod(cluster: Cluster) -> dict[str, Any]:
    listed = cluster.kubectl_json(
        "-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={NAME}"
    )
    running = [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in listed["items"]]
    return dict(running[0])


def record(nodes: NodesSite) -> dict[str, str]:
    recorded: dict[str, str] = json.loads((nodes.node_trust / RECORD).read_text())
    return recorded


@pytest.fixture(scope="module")
def nodes(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodesSite]:
    directory = tmp_path_factory.mktemp("nodes-site")
    credentials = directory / "registry-auth.json"
    shutil.copyfile(Path(cluster.env["DOCKER_CONFIG"]) / "config.json", credentials)
    os.chmod(credentials, 0o600)
    # The node's own busybox, already in the internal registry, as a bundle would carry it.
    repository, digest = cluster.images["busybox"].split("@")
    write_mapping(directory / "mapping.json", BUSYBOX, repository, digest)
    document = {
        "apiVersion": "airgap.dev/v1",
        "kind": "Site",
        "charts": "charts",
        "registry": {
            "host": cluster.registry,
            "caFile": str(cluster.pki.ca),
            "pullSecret": PULL_SECRET,
            "credentials": credentials.name,
            "mapping": "mapping.json",
        },
        "storage": {"class": "manual"},
        "nodes": {
            "image": BUSYBOX,
            "trustDir": str(cluster.paths.hostpath / "nodes" / "sigstore"),
            "containerdCertsDir": str(cluster.paths.certs_d),
        },
    }
    (directory / "site.yaml").write_text(yaml.safe_dump(document))
    site = load_site(directory / "site.yaml")
    tuf_repo = directory / "tuf"
    files = write_trust_dir(site, directory / "trust", tuf_repo=tuf_repo)
    fixture_hosts = cluster.paths.certs_d / cluster.registry / "hosts.toml"
    original = fixture_hosts.read_bytes()
    yield NodesSite(site, tuf_repo, files)
    cluster.kubectl(
        "delete", "namespace", "--ignore-not-found", NAMESPACE, "nodes-pull", timeout=240
    )
    fixture_hosts.write_bytes(original)  # the session's other tests pull through it
    (fixture_hosts.parent / "ca.crt").unlink(missing_ok=True)


def test_apply_writes_every_trust_file_and_the_registry_config_with_their_bytes_and_modes(
    cluster: Cluster, nodes: NodesSite
) -> None:
    summary = apply(cluster, nodes)
    assert summary["changed"] is True
    trust = nodes.node_trust
    expected = {**nodes.files, "root.json": nodes.root_json()}
    assert {p.name for p in trust.iterdir()} == {*expected, RECORD}
    for name, data in expected.items():
        assert (trust / name).read_bytes() == data, name
    registry = nodes.node_registry
    assert (registry / "hosts.toml").read_bytes() == hosts_toml(nodes.site, with_ca=True)
    assert (registry / "ca.crt").read_bytes() == cluster.pki.ca.read_bytes()
    for path in [*trust.iterdir(), registry / "hosts.toml", registry / "ca.crt"]:
        assert (path.stat().st_mode & 0o7777, path.stat().st_uid) == (0o644, 0), path
    for directory in (trust, registry):
        assert directory.stat().st_mode & 0o7777 == 0o755
    assert record(nodes)["version"] == summary["version"]

    code, shown = status(cluster, nodes)
    assert code == 0 and shown["ok"] is True and shown["applied"] == summary["version"]
    (node,) = shown["nodes"]
    assert node["node"] == cluster.node_name and node["current"] is True
    assert (node["version"], node["written"]) == (summary["version"], record(nodes)["written"])


def test_an_unchanged_apply_restarts_nothing(cluster: Cluster, nodes: NodesSite) -> None:
    before, written = pod(cluster), record(nodes)
    summary = apply(cluster, nodes)
    assert summary["changed"] is False, summary["steps"]
    assert {s["action"] for s in summary["steps"]} <= {"unchanged", "ready"}
    after = pod(cluster)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert record(nodes) == written


def test_a_trust_change_rolls_out_and_the_nodes_files_change(
    cluster: Cluster, nodes: NodesSite
) -> None:
    before, old = pod(cluster), record(nodes)
    old_root = (nodes.node_trust / "trusted_root.json").read_bytes()
    nodes.new_trust()
    summary = apply(cluster, nodes)
    assert summary["version"] != old["version"]
    assert pod(cluster)["metadata"]["uid"] != before["metadata"]["uid"]
    new_root = (nodes.node_trust / "trusted_root.json").read_bytes()
    assert new_root == nodes.files["trusted_root.json"] != old_root
    assert (nodes.node_trust / "root.json").read_bytes() == nodes.root_json()
    assert record(nodes)["version"] == summary["version"]
    deleted = [s["subject"] for s in summary["steps"] if s["action"] == "deleted"]
    assert deleted == [f"configmap {NAMESPACE}/{NAME}-{old['version'][:12]}"]
    configmaps = cluster.kubectl_json(
        "-n", NAMESPACE, "get", "configmaps", "-l", f"app.kubernetes.io/name={NAME}"
    )
    assert [c["metadata"]["name"] for c in configmaps["items"]] == [
        f"{NAME}-{summary['version'][:12]}"
    ]


def test_a_node_that_cannot_take_the_new_version_is_behind_until_it_can(
    cluster: Cluster, nodes: NodesSite
) -> None:
    # The writer is root without capabilities: a trust directory owned by someone else is
    # not writable to it (no CAP_DAC_OVERRIDE), as the security context promises.
    held = record(nodes)
    os.chown(nodes.node_trust, 1000, 1000)
    try:
        nodes.new_trust()
        failed = airgap(
            cluster, "nodes", "apply", "--site", str(nodes.site.path),
            "--trust", str(nodes.tuf_repo), "--timeout", "20",
        )  # fmt: skip
        assert failed.returncode == 2
        message = failed.stderr.strip().splitlines()[-1]
        assert message.startswith(f"airgap: {NAMESPACE}/daemonset {NAME} is not ready"), message
        assert "could not be written" in failed.stderr  # the pod's log, in the details
        code, shown = status(cluster, nodes)
        assert code == 1 and shown["ok"] is False
        assert shown["behind"] == [cluster.node_name]
        assert record(nodes) == held
    finally:
        os.chown(nodes.node_trust, 0, 0)
    # The pod tries again by itself: the node catches up with no apply.
    cluster.wait_until("the node to catch up", lambda: status(cluster, nodes)[0] == 0, timeout=60)
    assert (nodes.node_trust / "trusted_root.json").read_bytes() == nodes.files["trusted_root.json"]


def _pull_pod(cluster: Cluster) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pull", "namespace": "nodes-pull"},
        "spec": workloads.pod_spec(
            [
                {
                    "name": "main",
                    "image": cluster.images["busybox"],
                    "imagePullPolicy": "Always",  # containerd asks the registry, every time
                    "command": ["/bin/true"],
                }
            ],
            restartPolicy="Never",
        ),
    }


def _pull_state(cluster: Cluster) -> str:
    shown = cluster.kubectl_json("-n", "nodes-pull", "get", "pod", "pull")
    if shown["status"].get("phase") == "Succeeded":
        return "Succeeded"
    for container in shown["status"].get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            return f"{waiting['reason']}: {waiting.get('message', '')}"
    return str(shown["status"].get("phase", ""))


def test_containerd_pulls_from_the_internal_registry_through_the_hosts_toml_written(
    cluster: Cluster, nodes: NodesSite
) -> None:
    workloads.namespace(cluster, "nodes-pull")
    registry = nodes.node_registry
    # containerd reads this file at every pull: one sending the registry's pulls to a port
    # nothing listens on makes them fail. (The test node's containerd trusts the test CA
    # anyway, through SSL_CERT_FILE, so a missing file would not show.)
    host = cluster.registry.rsplit(":", 1)[0]
    (registry / "hosts.toml").write_text(
        f'server = "https://{host}:1"\n[host."https://{host}:1"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    cluster.apply([_pull_pod(cluster)])
    seen = [""]

    def pull_failed() -> bool:
        seen[0] = _pull_state(cluster)
        return seen[0].startswith("ErrImagePull")

    cluster.wait_until("the pull to fail", pull_failed)
    assert f"{host}:1" in seen[0], seen[0]
    cluster.kubectl("-n", "nodes-pull", "delete", "pod", "pull", "--wait=true")

    # The DaemonSet's pod, started again (as after a node's reboot), writes it back.
    cluster.kubectl("-n", NAMESPACE, "delete", "pod", pod(cluster)["metadata"]["name"])
    written = hosts_toml(nodes.site, with_ca=True)
    cluster.wait_until(
        "hosts.toml written", lambda: (registry / "hosts.toml").read_bytes() == written, timeout=60
    )
    cluster.apply([_pull_pod(cluster)])
    cluster.wait_until("the pull to succeed", lambda: _pull_state(cluster) == "Succeeded")
