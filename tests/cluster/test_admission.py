"""Admission on the real cluster: `airgap install` with policy-controller on (from the upstream
chart, images from the import mapping, offline TUF), then `airgap policy generate --enforce`
applied: in a namespace labelled for enforcement, a pod from an image the site's own stack
signed keyless is admitted; an unsigned image and one signed by another identity are denied
with policy-controller's message; `airgap verify` and the admission policy give the same verdict
on a table of cases. The generated Kyverno ClusterPolicy is checked against Kyverno's own CRD
by the API server (server-side dry run, strict field validation).

One install for the module (a few minutes); the tests run in order against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.carried_stack import CarriedStack
from tests.cluster.node import PULL_SECRET, Cluster
from tests.cluster.test_install import STACK_NAMESPACES, airgap, cluster_ip, run_install
from tests.cluster.workloads import namespace
from tests.tools import ToolMissing, go_tool, tools_cache

ISSUER = "https://kubernetes.default.svc.cluster.local"
ENFORCED = "admission-enforced"
SIGNERS = "admission-ci"  # the namespace of the service accounts that sign
BUILDER_ID = "https://ci.internal/builder"
POLICY_NAMESPACE = "cosign-system"
KYVERNO_PINS = Path(__file__).parents[1] / "tools" / "kyverno-crds.txt"


def identity(account: str) -> str:
    return f"https://kubernetes.io/namespaces/{SIGNERS}/serviceaccounts/{account}"


@dataclass
class Admission:
    cluster: Cluster
    site: Path
    trust_repo: Path
    summary: dict[str, Any]
    policy: Path
    work: Path

    @property
    def trust(self) -> Path:
        return self.site.parent / "trust"


# -- the install ----------------------------------------------------------------------------------


def site_with_policy_controller(carried: CarriedStack, chart: Path, directory: Path) -> Path:
    """The carried site with policy-controller on. Its chart is the upstream archive the
    session packaged, beside the carried charts (bundles/sigstore-stack.yaml does not carry it
    yet); its images are the carried bundle's (the import mapping has them)."""
    document = yaml.safe_load(carried.site.read_text())
    base = carried.site.parent
    charts = directory / "charts"
    charts.mkdir(parents=True)
    for archive in (base / document["charts"]).resolve().iterdir():
        os.symlink(archive, charts / archive.name)
    os.symlink(chart, charts / chart.name)
    document["charts"] = str(charts)
    for key in ("mapping", "caFile", "credentials"):
        if key in document["registry"]:
            document["registry"][key] = str((base / document["registry"][key]).resolve())
    document["policyController"] = {"enabled": True}
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def admission(
    cluster: Cluster,
    carried_stack: CarriedStack,
    sigstore_chart_packages: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Admission]:
    work = tmp_path_factory.mktemp("admission")
    trust_repo = work / "trust-repo"
    subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "trust", "init", "--dir", str(trust_repo)],
        check=True,
        capture_output=True,
    )
    chart = sigstore_chart_packages["policy-controller"]
    site = site_with_policy_controller(carried_stack, chart, work / "site")
    summary = run_install(cluster, site, trust_repo)
    yield Admission(cluster, site, trust_repo, summary, work / "images.yaml", work)
    airgap(cluster, "uninstall", "--site", str(site), "--delete-keys")
    namespaces = (ENFORCED, SIGNERS, POLICY_NAMESPACE, *STACK_NAMESPACES)
    cluster.kubectl("delete", "namespace", "--ignore-not-found", *namespaces, timeout=240)


def test_install_runs_policy_controller_from_the_internal_registry_and_waits_for_its_webhook(
    cluster: Cluster, admission: Admission
) -> None:
    steps = [s for s in admission.summary["steps"] if s["component"] == "policy-controller"]
    assert any(s["subject"] == "webhook" and s["action"] == "verified" for s in steps), steps
    pods = cluster.kubectl_json("-n", POLICY_NAMESPACE, "get", "pods")["items"]
    webhook = [p for p in pods if p["metadata"]["name"].startswith("policy-controller-webhook")]
    assert webhook
    for container in webhook[0]["spec"]["containers"]:
        assert container["image"].startswith(f"{cluster.registry}/")
        assert "@sha256:" in container["image"]
        assert "-disable-tuf=true" in container["args"]  # never the public TUF repository


# -- images: signed by the site, by someone else, not at all -------------------------------------


class Signer:
    """cosign v3 against the in-cluster Fulcio and Rekor, with service-account tokens."""

    def __init__(self, admission: Admission) -> None:
        cluster, trust = admission.cluster, admission.trust
        self.cluster = cluster
        self.work = admission.work
        self.trusted_root = trust / "trusted_root.json"
        # The client sits on the node, outside the cluster's DNS: it names the services by
        # their cluster IPs.
        self.fulcio = f"http://{cluster_ip(cluster, 'fulcio-system', 'fulcio-server')}"
        self.rekor = f"http://{cluster_ip(cluster, 'rekor-system', 'rekor-server')}"
        namespace(cluster, SIGNERS)

    def token(self, account: str) -> Path:
        self.cluster.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": account, "namespace": SIGNERS}}])  # fmt: skip
        token = self.cluster.kubectl(
            "-n", SIGNERS, "create", "token", account, "--audience", "sigstore"
        )
        path = self.work / f"{account}.token"
        path.touch(0o600)
        path.write_text(token.strip())
        return path

    def cosign(self, command: str, account: str, image: str, *flags: str) -> None:
        done = self.cluster.run(
            [str(go_tool("cosign")), command, "--yes", "--identity-token", str(self.token(account)),
             "--trusted-root", str(self.trusted_root), *flags, image],
            timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]

    def legacy(self, command: str, account: str, image: str, *flags: str) -> None:
        """In cosign's legacy format (`.sig`/`.att` tags, SET only): the one policy-controller
        v0.13.1 verifies against a TrustRoot (see provisioner/admission/policy_controller.py)."""
        self.cosign(command, account, image, "--new-bundle-format=false",
                    "--use-signing-config=false", "--fulcio-url", self.fulcio,
                    "--rekor-url", self.rekor, *flags)  # fmt: skip

    def sign(self, account: str, image: str) -> None:
        self.legacy("sign", account, image)

    def attest_provenance(self, account: str, image: str) -> None:
        predicate = {
            "buildDefinition": {"buildType": "https://ci.internal/build/v1",
                                "externalParameters": {}},
            "runDetails": {"builder": {"id": BUILDER_ID}},
        }  # fmt: skip
        path = self.work / "provenance.json"
        path.write_text(json.dumps(predicate))
        self.legacy("attest", account, image, "--type", "slsaprovenance1", "--predicate", str(path))


@dataclass(frozen=True)
class Case:
    name: str
    image: str  # by digest
    verified: bool  # what `airgap verify` and admission must both say


@pytest.fixture(scope="module")
def cases(cluster: Cluster, admission: Admission) -> list[Case]:
    """One copy of the probe image per case, each in its own repository, signed (or not) as
    the case says; the policy file naming them; the log's checkpoints fetched for pinning."""
    digest = cluster.images["probe"].split("@", 1)[1]
    base = f"{cluster.registry}/admission"

    def image(path: str) -> str:
        cluster.run(["crane", "copy", cluster.images["probe"], f"{base}/{path}:v1"], timeout=120)
        return f"{base}/{path}@{digest}"

    signer = Signer(admission)
    signed, unsigned, other = (
        image("platform/signed"),
        image("platform/unsigned"),
        image("platform/other-signer"),
    )
    attested, bare = image("attested/provenance"), image("attested/no-provenance")
    signer.sign("builder", signed)
    signer.sign("intruder", other)
    for reference in (attested, bare):
        signer.sign("builder", reference)
    signer.attest_provenance("builder", attested)

    builder = {"issuer": ISSUER, "subject": identity("builder")}
    policy = {
        "apiVersion": "airgap.dev/v1",
        "kind": "ImagePolicy",
        "policies": [
            {"name": "platform", "images": [f"{base}/platform/**"], "signers": [builder]},
            {"name": "attested", "images": [f"{base}/attested/**"], "signers": [builder],
             "attestations": [{"predicateType": "slsaprovenance1",
                               "slsa": {"builderId": BUILDER_ID}}]},
        ],
    }  # fmt: skip
    admission.policy.write_text(yaml.safe_dump(policy))
    # The legacy signatures carry a SET only: airgap pins the log, so their inclusion proofs
    # are fetched while Rekor is reachable, as an operator does (`airgap proofs fetch`).
    trust = ("--trusted-root", str(signer.trusted_root),
             "--checkpoints", str(admission.work / "checkpoints"))  # fmt: skip
    fetched = airgap(cluster, "checkpoint", "fetch", "--rekor", signer.rekor, *trust)
    assert fetched.returncode == 0, fetched.stderr
    ca = ("--registry-ca", str(cluster.pki.ca))
    proofs = airgap(cluster, "proofs", "fetch", "--rekor", signer.rekor, *trust, *ca,
                    signed, other, attested, bare)  # fmt: skip
    assert proofs.returncode == 0, proofs.stderr
    return [
        Case("signed by the site's builder", signed, True),
        Case("unsigned", unsigned, False),
        Case("signed by another identity", other, False),
        Case("signed, with the required provenance", attested, True),
        Case("signed, without the required provenance", bare, False),
    ]


# -- the generated policy, applied ---------------------------------------------------------------


def generate(admission: Admission, *extra: str) -> Path:
    out = admission.work / "generated"
    done = airgap(
        admission.cluster, "policy", "generate", "--site", str(admission.site),
        "--policy", str(admission.policy), "--trust", str(admission.trust_repo),
        "-o", str(out), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def ready(cluster: Cluster, kind: str, name: str) -> bool:
    found = cluster.kubectl_json("get", kind, name)
    conditions = found.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def enforced(cluster: Cluster, admission: Admission, cases: list[Case]) -> Path:
    """`policy generate --enforce` applied, its objects ready; the enforced namespace made."""
    out = generate(admission, "--enforce")
    text = (out / "policy-controller.yaml").read_text()
    cluster.kubectl("apply", "--server-side", "-f", "-", input=text)
    for document in yaml.safe_load_all(text):
        kind: str = document["kind"].lower()
        name: str = document["metadata"]["name"]
        cluster.wait_until(f"{kind} {name} ready", partial(ready, cluster, kind, name), 120)
    namespace(cluster, ENFORCED)
    cluster.kubectl("label", "namespace", ENFORCED, "policy.sigstore.dev/include=true")
    return out


def create_pod(
    cluster: Cluster, name: str, image: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ENFORCED},
        "spec": {
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "containers": [{"name": "probe", "image": image}],
        },
    }
    return cluster.run(["kubectl", "create", *extra, "-f", "-"], input=json.dumps(pod),
                       check=False, timeout=120)  # fmt: skip


def test_a_pod_from_an_image_the_site_signed_is_admitted(
    cluster: Cluster, enforced: Path, cases: list[Case]
) -> None:
    signed = cases[0]
    created = create_pod(cluster, "signed", signed.image)
    assert created.returncode == 0, created.stderr
    cluster.kubectl("-n", ENFORCED, "delete", "pod", "signed", "--wait=false")


@pytest.mark.parametrize(
    ("index", "expected"),
    [(1, "no signatures found"), (2, "none of the expected identities matched")],
)
def test_unsigned_and_foreign_images_are_denied_with_policy_controllers_message(
    cluster: Cluster, enforced: Path, cases: list[Case], index: int, expected: str
) -> None:
    case = cases[index]
    created = create_pod(cluster, f"denied-{index}", case.image)
    assert created.returncode != 0, f"{case.name} was admitted"
    assert 'admission webhook "policy.sigstore.dev" denied the request' in created.stderr
    assert "failed policy: airgap-platform" in created.stderr
    assert case.image in created.stderr
    assert expected in created.stderr, created.stderr


def verdict_of_airgap_verify(admission: Admission, case: Case) -> bool:
    done = airgap(
        admission.cluster, "verify", case.image, "--policy", str(admission.policy),
        "--trusted-root", str(admission.trust / "trusted_root.json"),
        "--checkpoints", str(admission.work / "checkpoints"),
        "--registry-ca", str(admission.cluster.pki.ca),
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def verdict_of_admission(cluster: Cluster, case: Case, index: int) -> bool:
    created = create_pod(cluster, f"case-{index}", case.image, "--dry-run=server")
    if created.returncode != 0:
        assert "policy.sigstore.dev" in created.stderr, created.stderr  # denied by the policy
    return created.returncode == 0


def test_airgap_verify_and_the_admission_policy_agree_on_every_case(
    cluster: Cluster, admission: Admission, enforced: Path, cases: list[Case]
) -> None:
    expected = {case.name: case.verified for case in cases}
    verify = {case.name: verdict_of_airgap_verify(admission, case) for case in cases}
    admitted = {case.name: verdict_of_admission(cluster, case, i) for i, case in enumerate(cases)}
    assert verify == expected
    assert admitted == expected


def test_in_warn_mode_a_failing_image_is_admitted_with_policy_controllers_warning(
    cluster: Cluster, admission: Admission, enforced: Path, cases: list[Case]
) -> None:
    out = generate(admission)  # the default: warn
    cluster.kubectl("apply", "--server-side", "-f", str(out / "policy-controller.yaml"))
    try:
        created = create_pod(cluster, "warned", cases[1].image, "--dry-run=server")
        assert created.returncode == 0, created.stderr
        assert "Warning" in created.stderr and "failed policy: airgap-platform" in created.stderr
    finally:
        cluster.kubectl("apply", "--server-side", "-f", str(enforced / "policy-controller.yaml"))


# -- Kyverno -------------------------------------------------------------------------------------


def kyverno_crd() -> Path:
    lines = [line.strip() for line in KYVERNO_PINS.read_text().splitlines()]
    version = next(line for line in lines if line and not line.startswith("#"))
    directory = tools_cache() / f"kyverno-crds-{version}"
    if not (directory / ".complete").exists():
        raise ToolMissing(f"Kyverno's CRDs {version} are not in {directory}: run "
                          "tests/tools/fetch-kyverno-crds.sh")  # fmt: skip
    return directory / "kyverno.io_clusterpolicies.yaml"


def established(cluster: Cluster) -> bool:
    found = cluster.kubectl_json("get", "crd", "clusterpolicies.kyverno.io")
    conditions = found.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def test_the_kyverno_policy_is_valid_for_kyverno_crd(
    cluster: Cluster, admission: Admission, cases: list[Case], tmp_path: Path
) -> None:
    crd = kyverno_crd()
    cluster.kubectl("apply", "--server-side", "-f", str(crd))
    try:
        cluster.wait_until("Kyverno's CRD established", partial(established, cluster), 60)
        for extra in ((), ("--enforce",)):
            out = generate(admission, *extra)
            checked = cluster.run(
                ["kubectl", "apply", "--dry-run=server", "--validate=strict",
                 "-f", str(out / "kyverno.yaml")],
                check=False,
            )  # fmt: skip
            assert checked.returncode == 0, checked.stderr
        # The check has teeth: a field Kyverno does not define is refused.
        (policy,) = yaml.safe_load_all((out / "kyverno.yaml").read_text())
        policy["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keyless"][
            "subjectRegex"
        ] = ".*"
        broken = tmp_path / "broken.yaml"
        broken.write_text(yaml.safe_dump(policy))
        refused = cluster.run(
            ["kubectl", "apply", "--dry-run=server", "--validate=strict", "-f", str(broken)],
            check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "subjectRegex" in refused.stderr
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f", str(crd), timeout=120)


# -- uninstall (last: the module's teardown then finds nothing left to remove) ---------------------


def crd_gone(cluster: Cluster, name: str) -> bool:
    return not cluster.succeeds(["kubectl", "get", "crd", name])


def test_uninstall_removes_the_policies_first_so_the_crds_and_leases_go_with_the_release(
    cluster: Cluster, admission: Admission, enforced: Path
) -> None:
    assert cluster.kubectl_json("-n", POLICY_NAMESPACE, "get", "leases")["items"]
    done = airgap(cluster, "uninstall", "--site", str(admission.site), "--output", "json")
    assert done.returncode == 0, done.stderr
    subjects = {s["subject"]: s["action"] for s in json.loads(done.stdout)["steps"]}
    # The TrustRoot and both ClusterImagePolicies, while the controller ran their finalizers.
    assert subjects["policy-controller's TrustRoots and ClusterImagePolicies"] == "removed 3"
    assert subjects["release policy-controller"] == "removed"
    for crd in ("clusterimagepolicies.policy.sigstore.dev", "trustroots.policy.sigstore.dev"):
        cluster.wait_until(f"crd {crd} gone", partial(crd_gone, cluster, crd), 120)
    # The chart's hook ran with the carried kubectl image: no lease holds a next install back.
    assert cluster.kubectl_json("-n", POLICY_NAMESPACE, "get", "leases")["items"] == []
