"""Small workloads the cluster tests run: a namespace ready for pods from the internal registry,
a pod run to completion, a service account with a Role. Each talks through `Cluster`."""

from __future__ import annotations

from typing import Any

from tests.cluster.node import PULL_SECRET, Cluster


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


def run_to_completion(cluster: Cluster, ns: str, name: str, spec: dict[str, Any]) -> str:
    """Run pod `name` (restartPolicy Never), which must succeed; the logs of all its
    containers."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"restartPolicy": "Never", **spec},
    }
    cluster.apply([pod])
    cluster.kubectl(
        "-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}",
        "--timeout=120s",
    )  # fmt: skip
    return cluster.kubectl("-n", ns, "logs", f"pod/{name}", "--all-containers")


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
