"""`airgap hosts apply` against a real OpenSSH server on loopback (tests/sshd.py): two CD hosts
with a root directory each, so nothing is written to this machine's /etc.

Once per module: an image is signed keylessly by real cosign against the private Sigstore
stack (tests/stack), the operator's checkpoint store pins the stack's Rekor and `proofs fetch`
completes the signature, and the image with its signature is copied into an OCI layout (what a
CD host gets on disk). The verifier's wheelhouse is built from the wheels .ci/setup cached, with
no index, and carried in a signed bundle. Then, in order: a check-mode run writes nothing; the
run installs everything and, with every Sigstore service stopped, each host's own `airgap
verify` passes the signed image and refuses the unsigned one, with nothing but what the
playbook installed; a rerun changes nothing; a changed trusted root is replaced; node-prep
writes containerd's route once, and a host whose key is not the known one is unreachable, never
trusted. No run prints a secret of the operator's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.offline.images.test_verify_images import (
    SIGNER,
    Cosign,
    check,
    push_random,
    run,
    write_docker_config,
)
from tests.provisioner.hosts.wheel_cache import cache_dir
from tests.registries import RegistryServer
from tests.sshd import SshServer, keygen, sshd_server_fixture  # noqa: F401
from tests.stack import SigstoreStack, pki
from tests.tools import go_tool

pytestmark = [pytest.mark.slow, pytest.mark.stack]

REGISTRY_PASSWORD = "registry-password-never-printed-5521"
TUF_PASSWORDS = {
    "AIRGAP_TUF_ROOT_KEY_PASSWORD": "tuf-root-password-never-printed-8812",
    "AIRGAP_TUF_ONLINE_KEY_PASSWORD": "tuf-online-password-never-printed-1457",
}
SECRETS = (REGISTRY_PASSWORD, *TUF_PASSWORDS.values())
TRUST_FILES = ("trusted_root.json", "rekor.pub", "ctfe.pub", "fulcio_v1.crt.pem")
# The hosts' Python for modules and the venv (this machine's pyenv shims are not a host's).
HOST_PYTHON = "/usr/bin/python3"


@dataclass
class Operator:
    """The operator's side: a site with trust/ as `airgap install` writes it, a pinned
    checkpoint store, the verifier's bundle, and the signed image on disk."""

    dir: Path
    stack: SigstoreStack
    site: Path
    trust: Path
    store: Path
    tuf: Path
    bundle: Path
    bundle_key: Path
    registry_ca: Path
    layout: Path
    sshd: SshServer
    known_hosts: Path
    outputs: list[str]

    def inventory(self, name: str, hosts: dict[str, dict[str, Any]]) -> Path:
        common = {
            "ansible_host": self.sshd.host,
            "ansible_port": self.sshd.port,
            "ansible_user": self.sshd.user,
            "ansible_ssh_private_key_file": str(self.sshd.client_key),
            "ansible_python_interpreter": HOST_PYTHON,
            "airgap_python": HOST_PYTHON,
        }
        document = {"all": {"hosts": {host: {**common, **extra} for host, extra in hosts.items()}}}
        path = self.dir / f"{name}.yml"
        path.write_text(yaml.safe_dump(document))
        return path

    def root(self, host: str) -> Path:
        return self.dir / "roots" / host

    def apply(
        self, inventory: Path, *extra: str, playbook: str = "cd-host"
    ) -> tuple[int, dict[str, Any]]:
        """The real command, in its own process, with a private TMPDIR that must be empty
        afterwards (ansible-runner's artifacts hold every task's result)."""
        tmp = self.dir / "run-tmp"
        tmp.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
        env["TMPDIR"] = str(tmp)
        wheels = ["--bundle", str(self.bundle), "--key", str(self.bundle_key)]
        args = [sys.executable, "-m", "provisioner.cli", "hosts", "apply"]
        args += ["--inventory", str(inventory), "--playbook", playbook, "--site", str(self.site)]
        args += ["--checkpoints", str(self.store), "--known-hosts", str(self.known_hosts)]
        args += ["--trust", str(self.tuf)]
        args += [*(wheels if playbook == "cd-host" else []), "--output", "json", *extra]
        result = subprocess.run(
            args, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False
        )
        self.outputs += [result.stdout, result.stderr]
        assert "Traceback" not in result.stderr, result.stderr
        assert list(tmp.iterdir()) == [], "the run left files behind"
        report = json.loads(result.stdout) if result.stdout.startswith("{") else {}
        assert report, f"exit {result.returncode}: {result.stdout}\n{result.stderr}"
        return result.returncode, report

    def verify_on(
        self, host: str, *images: str, identity: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The host's own `airgap` (the playbook's wrapper over its venv), as a CD script runs
        it: no trust options, no AIRGAP_* variables, a HOME with nothing in it."""
        home = self.dir / "cd-home"
        home.mkdir(exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8"}
        command = [str(self.root(host) / "usr/local/bin/airgap"), "verify", "--pinning", "require"]
        command += ["--certificate-identity", identity or self.stack.identity(SIGNER)]
        command += ["--certificate-oidc-issuer", self.stack.oidc_issuer, "--output", "json"]
        return run([*command, *images], env)


def host_result(report: dict[str, Any], host: str) -> dict[str, int]:
    return dict(report["hosts"][host])


def _oras_copy(image: str, layout: Path, tag: str, env: dict[str, str]) -> None:
    oras: list[str | os.PathLike[str]] = [go_tool("oras"), "copy", "--no-tty", "--from-plain-http"]
    oras += ["-r", image]
    check(run([*oras, "--to-oci-layout", f"{layout}:{tag}"], env), f"oras copy {image}")


def _airgap(args: Sequence[str | Path], env: dict[str, str]) -> str:
    return check(run([sys.executable, "-m", "provisioner.cli", *map(str, args)], env), str(args))


@pytest.fixture(scope="module")
def operator(
    sigstore_stack: SigstoreStack,
    referrers_registry: RegistryServer,
    sshd_server: SshServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Operator:
    stack = sigstore_stack
    directory = tmp_path_factory.mktemp("hosts")
    wheels = cache_dir()
    if not wheels.is_dir():
        pytest.fail(f"{wheels} is missing: run .ci/setup (it caches the verifier's wheels)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}

    # Signed by the stack, pinned and completed while Rekor is reachable, then on disk.
    cosign = Cosign(
        stack,
        directory / "home",
        write_docker_config(directory / "docker", []),
        None,
        frozenset({referrers_registry.host}),
    )
    signed = push_random(referrers_registry, "hosts/app", "1.0", 41)
    unsigned = push_random(referrers_registry, "hosts/unsigned", "1.0", 42)
    cosign.sign(signed.by_digest)
    store = directory / "operator-checkpoints"
    store.mkdir()
    trust = ["--trusted-root", str(stack.trusted_root), "--checkpoints", str(store)]
    _airgap(["checkpoint", "fetch", "--rekor", stack.rekor_url, *trust], env)
    http = ["--allow-http-registry", referrers_registry.host]
    _airgap(["proofs", "fetch", "--rekor", stack.rekor_url, *trust, *http, signed.by_digest], env)
    layout = directory / "layout"
    _oras_copy(signed.by_tag, layout, "app", cosign.env)
    _oras_copy(unsigned.by_tag, layout, "unsigned", cosign.env)

    # The site, with trust/ beside it as `airgap install` writes it, and registry credentials
    # that no host needs and no output may show.
    site_dir = directory / "site"
    trust_dir = site_dir / "trust"
    trust_dir.mkdir(parents=True)
    shutil.copy(stack.trusted_root, trust_dir / "trusted_root.json")
    shutil.copy(stack.rekor_public_key, trust_dir / "rekor.pub")
    shutil.copy(stack.ctlog_public_key, trust_dir / "ctfe.pub")
    shutil.copy(stack.fulcio_root, trust_dir / "fulcio_v1.crt.pem")
    ca = pki.fulcio_root(pki.ec_key(), common_name="internal registry CA")
    (site_dir / "registry-ca.pem").write_bytes(pki.cert_pem(ca))
    auth = {"auths": {"registry.internal:5000": {"username": "ci", "password": REGISTRY_PASSWORD}}}
    (site_dir / "registry-auth.json").write_text(json.dumps(auth))
    (site_dir / "site.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "airgap.dev/v1",
                "kind": "Site",
                "charts": "charts",
                "registry": {
                    "host": "registry.internal:5000",
                    "caFile": "registry-ca.pem",
                    "pullSecret": "internal-registry",
                    "credentials": "registry-auth.json",
                    "mapping": "mapping.json",
                },
                "storage": {"class": "manual"},
            }
        )
    )

    # The verifier's wheels, built with no index, carried in a signed bundle.
    # From a copy of the source: pip builds in the tree it is given, and the checkout stays
    # as it is.
    source = directory / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for tree in ("offline", "provisioner", "charts-values", "playbooks"):
        shutil.copytree(REPO / tree, source / tree, ignore=shutil.ignore_patterns("__pycache__"))
    out = directory / "verifier"
    wheelhouse: list[str | Path] = ["hosts", "wheelhouse", "-o", out, "--source", source]
    _airgap([*wheelhouse, "--no-index", "--find-links", wheels], env)
    key = directory / "operator.key"
    _airgap(["bundle", "keygen", key], env)
    bundle = directory / "verifier-bundle"
    spec = out / "verifier-bundle.yaml"
    _airgap(["bundle", "create", spec, "-o", bundle, "--sign-key", key], env)

    # The site's TUF repository: its root goes to the hosts (its keys never do).
    tuf = directory / "tuf"
    _airgap(["trust", "init", "--dir", tuf], {**env, **TUF_PASSWORDS})
    published = ["--target", f"trusted_root.json={stack.trusted_root}"]
    _airgap(["trust", "build", "--dir", tuf, *published], {**env, **TUF_PASSWORDS})

    known_hosts = directory / "known_hosts"
    known_hosts.write_text(sshd_server.known_hosts_line())
    return Operator(
        directory,
        stack,
        site_dir / "site.yaml",
        trust_dir,
        store,
        tuf,
        bundle,
        key.with_suffix(".pub"),
        site_dir / "registry-ca.pem",
        layout,
        sshd_server,
        known_hosts,
        [],
    )


@pytest.fixture(scope="module")
def cd_hosts(operator: Operator) -> Path:
    return operator.inventory(
        "cd-hosts",
        {name: {"airgap_root": str(operator.root(name))} for name in ("cd-a", "cd-b")},
    )


def test_check_mode_reports_what_would_change_and_writes_nothing(
    operator: Operator, cd_hosts: Path
) -> None:
    # One host is enough to show it (and --limit works): ansible is slow to start.
    code, report = operator.apply(cd_hosts, "--check", "--limit", "cd-a")
    assert code == 0, json.dumps(report)
    assert report["check"] is True and report["ok"] is True
    counts = host_result(report, "cd-a")
    assert counts["changed"] > 0 and counts["failed"] == counts["unreachable"] == 0
    assert list(report["hosts"]) == ["cd-a"]
    assert not operator.root("cd-a").exists()


@pytest.fixture(scope="module")
def applied(operator: Operator, cd_hosts: Path) -> dict[str, Any]:
    code, report = operator.apply(cd_hosts)
    assert code == 0, json.dumps(report)
    return report


def test_the_verifier_s_wheel_carries_the_playbooks(operator: Operator) -> None:
    (wheel,) = (operator.bundle / "files" / "wheelhouse").glob("airgap-*.whl")
    carried = {
        name.split("/data/share/airgap/", 1)[1]
        for name in zipfile.ZipFile(wheel).namelist()
        if "/data/share/airgap/playbooks/" in name
    }
    playbooks = REPO / "playbooks"
    assert carried == {str(p.relative_to(REPO)) for p in playbooks.rglob("*.yml")}


def test_cd_host_installs_the_trust_the_seed_and_the_verifier(
    operator: Operator, applied: dict[str, Any]
) -> None:
    for host in ("cd-a", "cd-b"):
        counts = host_result(applied, host)
        assert counts["changed"] > 0 and counts["failed"] == counts["unreachable"] == 0
        sigstore = operator.root(host) / "etc/sigstore"
        for name in TRUST_FILES:
            assert (sigstore / name).read_bytes() == (operator.trust / name).read_bytes()
            assert (sigstore / name).stat().st_mode & 0o777 == 0o644
        assert (sigstore / "registry-ca.pem").read_bytes() == operator.registry_ca.read_bytes()
        tuf_root = operator.tuf / "current" / "root.json"
        assert (sigstore / "root.json").read_bytes() == tuf_root.read_bytes()
        seed = json.loads((sigstore / "checkpoints.json").read_text())
        assert len(seed["logs"]) == 1
        command = operator.root(host) / "usr/local/bin/airgap"
        assert command.stat().st_mode & 0o777 == 0o755
        venv = operator.root(host) / "opt/airgap/venv"
        assert (venv / "bin/airgap").is_file()
        stores = list((operator.root(host) / "var/lib/airgap/checkpoints").iterdir())
        assert any((s / "state.json").is_file() for s in stores)


def test_the_host_s_verifier_verifies_the_signed_image_with_what_was_installed(
    operator: Operator, applied: dict[str, Any]
) -> None:
    # Every Sigstore service down: what the host verifies with is what the playbook installed.
    with operator.stack.stopped():
        _verify_on_both_hosts(operator)


def _verify_on_both_hosts(operator: Operator) -> None:
    for host in ("cd-a", "cd-b"):
        passed = operator.verify_on(host, f"oci:{operator.layout}:app")
        assert passed.returncode == 0, passed.stdout + passed.stderr
        (image,) = json.loads(passed.stdout)["images"]
        assert image["verified"] is True
        # Pinned by the store the playbook seeded (--pinning require refuses without one).
        assert any("pinned" in check["reason"] for check in image["checks"]), image
        # The verdict is real: unsigned and wrongly signed images fail on the same host.
        unsigned = operator.verify_on(host, f"oci:{operator.layout}:unsigned")
        assert unsigned.returncode == 1, unsigned.stdout + unsigned.stderr
        other = operator.stack.identity("system:serviceaccount:release:someone-else")
        wrong = operator.verify_on(host, f"oci:{operator.layout}:app", identity=other)
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr


def test_a_second_run_changes_nothing(
    operator: Operator, cd_hosts: Path, applied: dict[str, Any]
) -> None:
    code, report = operator.apply(cd_hosts, "--limit", "cd-a")
    assert code == 0, json.dumps(report)
    counts = host_result(report, "cd-a")
    assert counts["changed"] == 0 and counts["ok"] > 0, counts


def test_a_changed_trusted_root_is_replaced(
    operator: Operator, cd_hosts: Path, applied: dict[str, Any]
) -> None:
    # The same keys in new bytes (as a re-issued root would be): the hosts get the new file.
    path = operator.trust / "trusted_root.json"
    changed = json.dumps(json.loads(path.read_text()), indent=4).encode()
    path.write_bytes(changed)
    code, report = operator.apply(cd_hosts, "--limit", "cd-a")
    assert code == 0, json.dumps(report)
    assert host_result(report, "cd-a")["changed"] == 1  # the root, and nothing else
    assert (operator.root("cd-a") / "etc/sigstore/trusted_root.json").read_bytes() == changed
    assert operator.verify_on("cd-a", f"oci:{operator.layout}:app").returncode == 0


def test_node_prep_routes_containerd_once_and_a_failed_or_unknown_host_is_reported(
    operator: Operator, tmp_path: Path
) -> None:
    # The impostor answers on the same address, but is named so that known_hosts has no key
    # for it; the inventory's own key for it is another server's.
    stranger = keygen(tmp_path / "stranger")
    stranger_key = " ".join(stranger.with_suffix(".pub").read_text().split()[:2])
    inventory = operator.inventory(
        "nodes",
        {
            "node-a": {"airgap_root": str(operator.root("node-a"))},
            "impostor": {
                "ansible_host": "localhost",
                "airgap_root": str(operator.root("impostor")),
                "airgap_ssh_host_keys": [stranger_key],
            },
            "misconfigured": {"airgap_root": "relative/root"},
        },
    )
    code, report = operator.apply(inventory, playbook="node-prep")
    assert code == 1, json.dumps(report)
    assert host_result(report, "node-a")["failed"] == 0
    assert host_result(report, "node-a")["changed"] > 0
    assert host_result(report, "impostor")["unreachable"] == 1
    assert host_result(report, "misconfigured")["failed"] == 1
    failures = {f["host"]: f for f in report["failures"]}
    assert set(failures) == {"impostor", "misconfigured"}
    assert failures["impostor"]["unreachable"] is True
    assert "host key" in failures["impostor"]["reason"].lower()
    assert "airgap_root must be empty or an absolute path" in failures["misconfigured"]["reason"]
    assert not operator.root("impostor").exists()

    certs = operator.root("node-a") / "etc/containerd/certs.d/registry.internal:5000"
    assert (certs / "ca.crt").read_bytes() == operator.registry_ca.read_bytes()
    hosts_toml = (certs / "hosts.toml").read_text()
    assert 'server = "https://registry.internal:5000"' in hosts_toml
    assert f'ca = "{certs / "ca.crt"}"' in hosts_toml
    sigstore = operator.root("node-a") / "etc/sigstore"
    assert (sigstore / "trusted_root.json").read_bytes() == (
        operator.trust / "trusted_root.json"
    ).read_bytes()
    assert not (operator.root("node-a") / "opt").exists()  # no verifier on nodes

    code, again = operator.apply(inventory, "--limit", "node-a", playbook="node-prep")
    assert code == 0, json.dumps(again)
    assert host_result(again, "node-a")["changed"] == 0


def test_a_tampered_verifier_bundle_is_refused_before_any_host_is_touched(
    operator: Operator, tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(operator.bundle, tampered)
    wheel = next((tampered / "files" / "wheelhouse").glob("airgap-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    inventory = operator.inventory(
        "tampered", {"cd-t": {"airgap_root": str(operator.root("cd-t"))}}
    )
    args: list[str | os.PathLike[str]] = [sys.executable, "-m", "provisioner.cli", "hosts"]
    args += ["apply", "--inventory", inventory]
    args += ["--site", operator.site, "--checkpoints", operator.store]
    args += [
        "--known-hosts",
        operator.known_hosts,
        "--bundle",
        tampered,
        "--key",
        operator.bundle_key,
    ]
    result = run(args, {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")})
    operator.outputs += [result.stdout, result.stderr]
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and wheel.name in lines[0], result.stderr
    assert not operator.root("cd-t").exists()


def test_a_limit_that_matches_no_host_is_an_error(operator: Operator, cd_hosts: Path) -> None:
    args: list[str | os.PathLike[str]] = [sys.executable, "-m", "provisioner.cli", "hosts"]
    args += ["apply", "--inventory", cd_hosts, "--playbook", "node-prep", "--site", operator.site]
    args += ["--checkpoints", operator.store, "--limit", "db-*"]
    result = run(args, {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"airgap: --limit db-* matches no host of inventory {cd_hosts}"
    ), result.stderr


def test_no_run_printed_or_installed_a_secret(operator: Operator, applied: dict[str, Any]) -> None:
    """The registry's password and the TUF keys' passwords are the operator's; no host needs
    them. (The TUF private keys themselves are encrypted with them and never copied.)"""
    assert operator.outputs, "the applied fixture ran the command"
    for output in operator.outputs:
        for secret in SECRETS:
            assert secret not in output
    # What the playbooks wrote besides the verifier's own code (opt/airgap).
    written = [
        path
        for top in ("etc", "usr", "var")
        for path in (operator.dir / "roots").glob(f"*/{top}/**/*")
        if path.is_file() and not path.is_symlink()
    ]
    assert written
    for path in written:
        data = path.read_bytes()
        assert not any(secret.encode() in data for secret in SECRETS), path
        assert b"PRIVATE KEY" not in data, path
