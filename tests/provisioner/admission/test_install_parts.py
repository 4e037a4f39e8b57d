"""What `airgap install` adds for policy-controller: its chart's hooks are not workloads to wait
for (the leases-cleanup Job runs only on delete), and the webhook's readiness probe is a
ClusterImagePolicy the controller's validation accepts and that matches no image."""

from __future__ import annotations

from pathlib import Path

from provisioner.admission.webhook import probe_policy
from provisioner.stack.install import rendered_workloads
from provisioner.stack.kube import Workload
from provisioner.stack.render import RenderedComponent


def test_a_helm_hook_is_not_a_workload_the_install_waits_for() -> None:
    webhook = {"kind": "Deployment", "metadata": {"name": "policy-controller-webhook"}}
    hook = {
        "kind": "Job",
        "metadata": {"name": "leases-cleanup", "annotations": {"helm.sh/hook": "post-delete"}},
    }
    rendered = RenderedComponent(
        "policy-controller", "policy-controller", "cosign-system", Path("c.tgz"), {},
        [hook, webhook],
    )  # fmt: skip
    assert rendered_workloads(rendered) == [
        Workload("Deployment", "cosign-system", "policy-controller-webhook")
    ]


def test_the_readiness_probe_policy_matches_no_image_a_pod_can_name() -> None:
    spec = probe_policy()["spec"]
    (image,) = spec["images"]
    # `.invalid` is reserved (RFC 2606): no registry answers there.
    assert image["glob"].split("/")[0].endswith(".invalid")
    assert "*" not in image["glob"]
    (authority,) = spec["authorities"]
    assert authority["static"] == {"action": "fail"}
