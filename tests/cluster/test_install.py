"""`airgap install` on the real cluster, from what crossed the gap: the stack's images and the
upstream charts carried in a bundle and imported (`carried_stack`), installed from the import
mapping with keys airgap made, each service proven by what it serves; reruns, deleted pods and
an uninstall rotate nothing; every refusal is one line, exit 2, and the next run finishes.

The tests of this module run in order against one install (module-scoped).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.carried_stack import CarriedStack
from tests.cluster.node import Cluster
from tests.tools import go_tool

STACK_NAMESPACES = (
    "trillian-system",
    "rekor-system",
    "fulcio-system",
    "ctlog-system",
    "tuf-system",
)
# Actions that mean "nothing was changed" in install's steps.
QUIET = {"unchanged", "ready", "complete", "verified"}


def airgap(cluster: Cluster, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`airgap ARGS` run inside the cluster's namespace (where an operator's kubectl reaches)."""
    return cluster.run(
        [sys.executable, "-m", "provisioner.cli", *args], timeout=timeout, check=False
    )


@dataclass
class Install:
    site: Path
    trust_repo: Path
    summary: dict[str, Any]

    def args(self, *more: str) -> list[str]:
        return ["--site", str(self.site), "--trust", str(self.trust_repo), *more]


def run_install(cluster: Cluster, site: Path, trust_repo: Path, *more: str) -> dict[str, Any]:
    done = airgap(
        cluster, "install", "--site", str(site), "--trust", str(trust_repo), "--output", "json",
        *more,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


@pytest.fixture(scope="module")
def trust_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's TUF repository, its keys made on the operator's machine (the host)."""
    repo = tmp_path_factory.mktemp("trust") / "repo"
    subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "trust", "init", "--dir", str(repo)],
        check=True,
        capture_output=True,
    )
    return repo


@pytest.fixture(scope="module")
def installed(cluster: Cluster, carried_stack: CarriedStack, trust_repo: Path) -> Iterator[Install]:
    summary = run_install(cluster, carried_stack.site, trust_repo)
    yield Install(carried_stack.site, trust_repo, summary)
    # The cluster is shared by the session: the next modules install the same charts by hand.
    airgap(cluster, "uninstall", "--site", str(carried_stack.site), "--delete-keys")
    namespaces = ("ci", *STACK_NAMESPACES)
    cluster.kubectl("delete", "namespace", "--ignore-not-found", *namespaces, timeout=240)


def snapshot(cluster: Cluster, install: Install) -> dict[str, Any]:
    """Everything that must never rotate: every Secret airgap made (keys, passwords), the
    recorded state, each log's tree, the trust files, the TUF root."""
    secrets = {}
    for ns in STACK_NAMESPACES:
        listed = cluster.kubectl_json(
            "-n", ns, "get", "secrets", "-l", "app.kubernetes.io/managed-by=airgap"
        )
        for item in listed["items"]:
            secrets[f"{ns}/{item['metadata']['name']}"] = item["data"]
    configmaps = {
        name: cluster.kubectl_json("-n", ns, "get", "configmap", name)["data"]
        for ns, name in (
            ("trillian-system", "airgap-install"),
            ("rekor-system", "rekor-config"),
            ("ctlog-system", "ctlog-config"),
        )
    }
    trust = install.site.parent / "trust"
    return {
        "secrets": secrets,
        "configmaps": configmaps,
        "trust": {p.name: p.read_bytes() for p in sorted(trust.iterdir())},
        "tuf-root": (install.trust_repo / "roots" / "1.root.json").read_bytes(),
    }


def helm_revisions(cluster: Cluster) -> dict[str, int]:
    """The stack's releases (other modules of the session leave their own)."""
    listed = json.loads(cluster.output(["helm", "list", "-A", "-o", "json"]))
    return {r["name"]: int(r["revision"]) for r in listed if r["namespace"] in STACK_NAMESPACES}


def actions(summary: dict[str, Any]) -> set[str]:
    return {step["action"] for step in summary["steps"]}


def verified(summary: dict[str, Any]) -> dict[str, str]:
    return {s["component"]: s["detail"] for s in summary["steps"] if s["action"] == "verified"}


# -- install --------------------------------------------------------------------------------------


def test_install_brings_up_every_component_from_the_internal_registry_and_proves_each(
    cluster: Cluster, installed: Install
) -> None:
    proven = verified(installed.summary)
    assert set(proven) == {"rekor", "fulcio", "ctlog", "tuf"}
    assert "signed with the site's key" in proven["rekor"]
    assert "signed with the site's key" in proven["ctlog"]
    assert proven["fulcio"].startswith("the site's CA")
    assert "verified by python-tuf" in proven["tuf"]
    for ns in STACK_NAMESPACES:
        pods = cluster.kubectl_json("-n", ns, "get", "pods")["items"]
        assert pods, ns
        for pod in pods:
            for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
                image = container["image"]
                assert image.startswith(f"{cluster.registry}/") and "@sha256:" in image, image


def test_the_keys_the_services_use_are_the_ones_in_the_written_trusted_root(
    cluster: Cluster, installed: Install
) -> None:
    trust = installed.site.parent / "trust"
    root = json.loads((trust / "trusted_root.json").read_text())
    signer = cluster.kubectl_json("-n", "rekor-system", "get", "secret", "rekor-signer")
    public_pem = base64.b64decode(signer["data"]["public"])
    assert (trust / "rekor.pub").read_bytes() == public_pem
    (tlog,) = root["tlogs"]
    assert tlog["baseUrl"] == "http://rekor-server.rekor-system.svc"
    # No private key left the key Secrets: not in a ConfigMap, not in the TUF namespace.
    for ns in STACK_NAMESPACES:
        dumped = cluster.kubectl("-n", ns, "get", "configmaps", "-o", "yaml")
        assert "PRIVATE KEY" not in dumped
    tuf_secrets = cluster.kubectl("-n", "tuf-system", "get", "secrets", "-o", "yaml")
    for encoded in yaml.safe_load(tuf_secrets)["items"]:
        for value in (encoded.get("data") or {}).values():
            assert b"PRIVATE KEY" not in base64.b64decode(value)


# -- reruns ---------------------------------------------------------------------------------------


def test_a_rerun_reports_unchanged_and_rotates_nothing(
    cluster: Cluster, installed: Install
) -> None:
    before, revisions = snapshot(cluster, installed), helm_revisions(cluster)
    again = run_install(cluster, installed.site, installed.trust_repo)
    assert again["changed"] is False, [s for s in again["steps"] if s["action"] not in QUIET]
    assert actions(again) <= QUIET
    assert snapshot(cluster, installed) == before
    assert helm_revisions(cluster) == revisions


def test_pods_deleted_in_every_component_come_back_with_the_same_keys_and_trees(
    cluster: Cluster, installed: Install
) -> None:
    before = snapshot(cluster, installed)
    for ns in STACK_NAMESPACES:
        cluster.kubectl("-n", ns, "delete", "pods", "--all", "--wait=false")
    again = run_install(cluster, installed.site, installed.trust_repo)
    assert again["changed"] is False
    assert set(verified(again)) == {"rekor", "fulcio", "ctlog", "tuf"}
    assert snapshot(cluster, installed) == before


def test_status_shows_each_component_ready_and_what_it_serves(
    cluster: Cluster, installed: Install
) -> None:
    done = airgap(cluster, "status", *installed.args("--output", "json"))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["ok"] is True and status["tuf"]["ok"] is True
    components = {c["component"]: c for c in status["components"]}
    assert set(components) == {"trillian", "rekor", "fulcio", "ctlog", "tuf"}
    assert all(c["ready"] for c in components.values())
    assert "entries, signed with the site's key" in components["rekor"]["serving"]
    assert all("@sha256:" in image for image in components["rekor"]["images"])


def test_with_a_nodes_block_install_ends_with_the_trust_on_every_node(
    cluster: Cluster, installed: Install
) -> None:
    # A copy of the site beside it (the same trust/ directory) that names a node image: the
    # carried curl stand-in is a small shell image (dash and busybox's applets).
    node_dir = cluster.paths.hostpath / "install-nodes"
    document = yaml.safe_load(installed.site.read_text())
    document["nodes"] = {
        "image": "docker.io/curlimages/curl:8.17.0",
        "trustDir": str(node_dir / "sigstore"),
        "containerdCertsDir": str(node_dir / "certs.d"),
    }
    site = installed.site.with_name("site-nodes.yaml")
    site.write_text(yaml.safe_dump(document))
    try:
        summary = run_install(cluster, site, installed.trust_repo)
        changed = {s["component"] for s in summary["steps"] if s["action"] not in QUIET}
        assert changed == {"nodes"}
        trust = installed.site.parent / "trust"
        generation = installed.trust_repo / "current"
        expected = {p.name: p.read_bytes() for p in trust.iterdir()}
        expected["root.json"] = (generation / "root.json").read_bytes()
        for name, data in expected.items():
            assert (node_dir / "sigstore" / name).read_bytes() == data, name
        again = run_install(cluster, site, installed.trust_repo)
        assert again["changed"] is False, [s for s in again["steps"] if s["action"] not in QUIET]
    finally:
        cluster.kubectl("delete", "namespace", "--ignore-not-found", "airgap-system", timeout=240)
        site.unlink()


def test_dry_run_prints_the_plan_and_the_values_and_changes_nothing(
    cluster: Cluster, installed: Install
) -> None:
    before, revisions = snapshot(cluster, installed), helm_revisions(cluster)
    done = airgap(cluster, "install", *installed.args("--dry-run", "--output", "json"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["dryRun"] is True
    assert plan["values"]["rekor"]["values"]["server"]["signer"] == "/key/private"
    assert "PRIVATE KEY" not in done.stdout
    assert snapshot(cluster, installed) == before
    assert helm_revisions(cluster) == revisions


# -- refusals -------------------------------------------------------------------------------------


def edited_site(install: Install, directory: Path, **changes: Any) -> Path:
    document = yaml.safe_load(install.site.read_text())
    base = install.site.parent
    for key in ("charts",):
        document[key] = str((base / document[key]).resolve())
    for key in ("mapping", "caFile", "credentials"):
        if key in document["registry"]:
            document["registry"][key] = str((base / document["registry"][key]).resolve())
    document.update(changes)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def refused(cluster: Cluster, site: Path, trust_repo: Path) -> str:
    done = airgap(
        cluster, "install", "--site", str(site), "--trust", str(trust_repo), "--timeout", "60"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("airgap: ")
    return last


def test_an_image_missing_from_the_mapping_is_refused_before_anything_is_applied(
    cluster: Cluster, installed: Install, tmp_path: Path
) -> None:
    before, revisions = snapshot(cluster, installed), helm_revisions(cluster)
    site = yaml.safe_load(installed.site.read_text())
    mapping = json.loads((installed.site.parent / site["registry"]["mapping"]).read_text())
    mapping["images"] = {k: v for k, v in mapping["images"].items() if "/fulcio" not in k}
    (tmp_path / "mapping.json").write_text(json.dumps(mapping))
    bad = edited_site(installed, tmp_path / "site")
    document = yaml.safe_load(bad.read_text())
    document["registry"]["mapping"] = str(tmp_path / "mapping.json")
    bad.write_text(yaml.safe_dump(document))
    line = refused(cluster, bad, installed.trust_repo)
    assert "chart fulcio: values key server.image" in line
    assert "not in the import mapping" in line
    assert snapshot(cluster, installed) == before
    assert helm_revisions(cluster) == revisions


def test_a_values_key_the_chart_schema_refuses_is_named_before_anything_is_applied(
    cluster: Cluster, installed: Install, tmp_path: Path
) -> None:
    before, revisions = snapshot(cluster, installed), helm_revisions(cluster)
    bad = edited_site(installed, tmp_path, values={"rekor": {"server": {"replicaCount": "two"}}})
    line = refused(cluster, bad, installed.trust_repo)
    assert "rekor" in line and "replicaCount" in line
    assert snapshot(cluster, installed) == before
    assert helm_revisions(cluster) == revisions


def test_a_secret_holding_another_key_stops_the_install_naming_it(
    cluster: Cluster, installed: Install
) -> None:
    original = cluster.kubectl_json("-n", "rekor-system", "get", "secret", "rekor-signer")
    other = cluster.kubectl_json("-n", "ctlog-system", "get", "secret", "ctlog-key")
    forged = {k: original["data"][k] for k in original["data"]}
    forged["public"] = other["data"]["public"]
    patch = json.dumps({"data": forged})
    cluster.kubectl("-n", "rekor-system", "patch", "secret", "rekor-signer", "-p", patch)
    try:
        line = refused(cluster, installed.site, installed.trust_repo)
        assert "secret rekor-system/rekor-signer" in line
        assert "BEGIN" not in line  # names the secret, never its contents
    finally:
        restore = json.dumps({"data": original["data"]})
        cluster.kubectl("-n", "rekor-system", "patch", "secret", "rekor-signer", "-p", restore)
    again = run_install(cluster, installed.site, installed.trust_repo)
    assert again["changed"] is False


def test_a_component_that_never_becomes_ready_is_named_with_its_reason_and_the_next_run_finishes(
    cluster: Cluster, installed: Install, tmp_path: Path
) -> None:
    before, revisions = snapshot(cluster, installed), helm_revisions(cluster)
    # Fulcio pointed at an image the internal registry does not have.
    missing = f"{cluster.registry}/sigstore/absent/fulcio"
    image = {"registry": cluster.registry, "repository": "sigstore/absent/fulcio",
             "version": "sha256:" + "0" * 64}  # fmt: skip
    bad = edited_site(installed, tmp_path, values={"fulcio": {"server": {"image": image}}})
    done = airgap(cluster, "install", "--site", str(bad), "--trust", str(installed.trust_repo),
                  "--timeout", "45")  # fmt: skip
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "deployment fulcio-server is not ready" in last
    assert "ImagePull" in last or "ErrImage" in last, last
    assert "last log lines" in done.stderr and "events of" in done.stderr
    assert missing in done.stderr
    # The changed value reached its release only: no other release was upgraded.
    upgraded = {name for name, rev in helm_revisions(cluster).items() if revisions[name] != rev}
    assert upgraded == {"fulcio"}
    again = run_install(cluster, installed.site, installed.trust_repo)
    assert set(verified(again)) == {"rekor", "fulcio", "ctlog", "tuf"}
    assert snapshot(cluster, installed) == before


# -- signing against the stack, verifying without it -----------------------------------------------


def cluster_ip(cluster: Cluster, ns: str, service: str) -> str:
    return cluster.kubectl("-n", ns, "get", "svc", service, "-o", "jsonpath={.spec.clusterIP}")


def test_a_keyless_signature_made_with_a_cluster_token_verifies_offline_and_with_cosign(
    cluster: Cluster, installed: Install, tmp_path: Path
) -> None:
    trust = installed.site.parent / "trust"
    # The client here sits on the node, outside the cluster's DNS: its signing config names the
    # same services by their cluster IPs.
    signing = json.loads((trust / "signing_config.v0.2.json").read_text())
    signing["caUrls"][0]["url"] = f"http://{cluster_ip(cluster, 'fulcio-system', 'fulcio-server')}"
    rekor = f"http://{cluster_ip(cluster, 'rekor-system', 'rekor-server')}"
    signing["rekorTlogUrls"][0]["url"] = rekor
    (tmp_path / "signing.json").write_text(json.dumps(signing))
    image = f"{cluster.registry}/signed/probe"
    digest = cluster.images["probe"].split("@", 1)[1]
    cluster.run(["crane", "copy", cluster.images["probe"], f"{image}:v1"], timeout=120)
    namespace, account = "ci", "builder"
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
    cluster.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": account, "namespace": namespace}}])  # fmt: skip
    token = cluster.kubectl("-n", namespace, "create", "token", account, "--audience", "sigstore")
    token_file = tmp_path / "token"  # a file: not on a command line, and cosign reads either
    token_file.touch(0o600)
    token_file.write_text(token.strip())
    signed = cluster.run(
        [str(go_tool("cosign")), "sign", "--yes", "--identity-token", str(token_file),
         "--signing-config", str(tmp_path / "signing.json"),
         "--trusted-root", str(trust / "trusted_root.json"), f"{image}@{digest}"],
        timeout=180, check=False,
    )  # fmt: skip
    fulcio_log = ""
    if signed.returncode != 0:
        fulcio_log = cluster.run(
            ["kubectl", "-n", "fulcio-system", "logs", "deploy/fulcio-server", "--tail=200"],
            check=False,
        ).stdout
    errors = [line for line in fulcio_log.splitlines() if "rror" in line or "ssuer" in line]
    assert signed.returncode == 0, signed.stderr[-1500:] + "\n".join(errors[:15])
    identity = f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{account}"
    issuer = "https://kubernetes.default.svc.cluster.local"
    checkpoints = tmp_path / "checkpoints"
    fetched = airgap(
        cluster, "checkpoint", "fetch", "--rekor", rekor,
        "--trusted-root", str(trust / "trusted_root.json"), "--checkpoints", str(checkpoints),
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr

    # The stack's services go away: what verifies now needs only the registry.
    services = ("rekor-system", "fulcio-system", "ctlog-system", "tuf-system")
    for ns in services:
        cluster.kubectl("-n", ns, "scale", "deployment", "--all", "--replicas=0")
    try:
        verify_offline(cluster, f"{image}@{digest}", trust, checkpoints, identity, issuer)
    finally:
        for ns in services:
            cluster.kubectl("-n", ns, "scale", "deployment", "--all", "--replicas=1")


def verify_offline(
    cluster: Cluster, image: str, trust: Path, checkpoints: Path, identity: str, issuer: str
) -> None:
    verify = [
        "verify", image, "--trusted-root", str(trust / "trusted_root.json"),
        "--checkpoints", str(checkpoints), "--registry-ca", str(cluster.pki.ca),
        "--certificate-oidc-issuer", issuer,
    ]  # fmt: skip
    good = airgap(cluster, *verify, "--certificate-identity", identity)
    assert good.returncode == 0, good.stdout + good.stderr
    other = identity.replace("builder", "someone-else")
    wrong = airgap(cluster, *verify, "--certificate-identity", other)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    cosign = cluster.run(
        [str(go_tool("cosign")), "verify", "--trusted-root", str(trust / "trusted_root.json"),
         "--certificate-identity", identity, "--certificate-oidc-issuer", issuer, image],
        timeout=120, check=False,
    )  # fmt: skip
    assert cosign.returncode == 0, cosign.stderr


def test_cosign_initializes_from_the_served_tuf_repository(
    cluster: Cluster, installed: Install, tmp_path: Path
) -> None:
    run_install(cluster, installed.site, installed.trust_repo)  # back to serving
    mirror = f"http://{cluster_ip(cluster, 'tuf-system', 'tuf-server')}"
    root = installed.trust_repo / "roots" / "1.root.json"
    home = tmp_path / "home"
    done = cluster.run(
        [str(go_tool("cosign")), "initialize", "--mirror", mirror, "--root", str(root)],
        env={"HOME": str(home)}, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cached = list(home.rglob("trusted_root.json"))
    expected = (installed.site.parent / "trust" / "trusted_root.json").read_bytes()
    assert cached and cached[0].read_bytes() == expected


# -- uninstall ------------------------------------------------------------------------------------


def test_uninstall_keeps_the_keys_and_a_reinstall_serves_the_same_logs(
    cluster: Cluster, installed: Install
) -> None:
    before = snapshot(cluster, installed)
    done = airgap(cluster, "uninstall", *installed.args())
    assert done.returncode == 0, done.stderr
    assert helm_revisions(cluster) == {}
    kept = cluster.kubectl_json("-n", "rekor-system", "get", "secret", "rekor-signer")
    assert kept["data"] == before["secrets"]["rekor-system/rekor-signer"]
    again = run_install(cluster, installed.site, installed.trust_repo)
    assert set(verified(again)) == {"rekor", "fulcio", "ctlog", "tuf"}
    after = snapshot(cluster, installed)
    assert after["secrets"] == before["secrets"]
    assert after["configmaps"] == before["configmaps"]  # the same trees, recorded and pinned
    assert after["trust"] == before["trust"]


def test_uninstall_with_delete_keys_leaves_nothing_of_the_stack_behind(
    cluster: Cluster, installed: Install
) -> None:
    done = airgap(cluster, "uninstall", *installed.args("--delete-keys"))
    assert done.returncode == 0, done.stderr
    assert helm_revisions(cluster) == {}
    for ns in STACK_NAMESPACES:
        for kind in ("secrets", "configmaps", "persistentvolumeclaims"):
            left = cluster.kubectl_json(
                "-n", ns, "get", kind, "-l", "app.kubernetes.io/managed-by=airgap"
            )["items"]
            assert left == [], (ns, kind)
    volumes = cluster.kubectl_json("get", "pv", "-l", "app.kubernetes.io/managed-by=airgap")
    assert volumes["items"] == []
    assert not cluster.succeeds(["kubectl", "get", "clusterrolebinding", "airgap-oidc-discovery"])
