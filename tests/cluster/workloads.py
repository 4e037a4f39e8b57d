"""Small workloads the cluster tests run: a namespace ready for pods from the internal registry,
a pod run to completion, a service account with a Role. Each talks through `Cluster`."""

from __future__ import annotations

import time
from typing import Any

from tests.cluster.node import PULL_SECRET, Cluster, ClusterError


def namespace(cluster: Cluster, name: str) -> str:
    """Namespace `name` with its default service account and the internal registry's pull
    secret (pods are admitted only once the service account exists)."""
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
    cluster.wait_until(
        f"service account in {name}",
        lambda: cluster.succeeds(["kubectl", "-n", name, "get", "sa", "default"]),
    )
    cluster.pull_secret(name)
    return name


def pod_spec(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A pod spec pulling with the internal registry's pull secret."""
    return {"imagePullSecrets": [{"name": PULL_SECRET}], "containers": containers, **extra}


def run_to_completion(
    cluster: Cluster, ns: str, name: str, spec: dict[str, Any], attempts: int = 4
) -> str:
    """Run pod `name` (restartPolicy Never), which must succeed; the logs of all its
    containers. A failed run is retried a few times (bounded): a Service reached right after
    its rollout may not be routed yet (kube-proxy programs endpoints a moment later), and a
    busy machine widens that moment."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"restartPolicy": "Never", **spec},
    }
    phase = [""]

    def finished() -> bool:
        shown = cluster.output(
            ["kubectl", "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}"],
            check=False,
        )
        phase[0] = shown.strip()
        return phase[0] in ("Succeeded", "Failed")

    logs = ""
    for attempt in range(1, attempts + 1):
        cluster.apply([pod])
        cluster.wait_until(f"pod {ns}/{name} to finish", finished, timeout=150, every=1.0)
        logs = cluster.kubectl("-n", ns, "logs", f"pod/{name}", "--all-containers")
        if phase[0] == "Succeeded":
            return logs
        if attempt < attempts:
            cluster.kubectl("-n", ns, "delete", "pod", name, "--wait=true", timeout=120)
            time.sleep(2)
    raise ClusterError(f"pod {ns}/{name} failed {attempts} times; its last logs:\n{logs}")


def service_account(ns: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Service account `name` bound to a Role `name` of `rules` (one List object)."""
    meta = {"name": name, "namespace": ns}
    rbac = "rbac.authorization.k8s.io"
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta, "rules": rules},
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            },
        ],
    }
