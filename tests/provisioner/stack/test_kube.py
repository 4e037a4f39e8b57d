"""The installer's cluster calls, on the real test cluster: readiness is real readiness, and a
workload that never becomes ready is explained (object, reason, events, last log lines) in one
line plus details, with exit 2."""

from __future__ import annotations

import pytest

from provisioner.stack.kube import ClusterUnreachable, Kube, StepNotReady, Workload
from tests.cluster.node import Cluster


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Kube:
    return Kube.from_kubeconfig(cluster.pki.kubeconfig("admin"))


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, kube: Kube) -> str:
    assert cluster.call(lambda: kube.ensure_namespace("kube-test")) == "created"
    assert cluster.call(lambda: kube.ensure_namespace("kube-test")) == "unchanged"
    cluster.wait_until(
        "service account in kube-test",
        lambda: cluster.succeeds(["kubectl", "-n", "kube-test", "get", "sa", "default"]),
    )
    return cluster.pull_secret("kube-test") and "kube-test"


def _deployment(name: str, image: str, command: list[str] | None = None) -> dict[str, object]:
    container: dict[str, object] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kube-test"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "imagePullSecrets": [{"name": "internal-registry"}],
                    "containers": [container],
                },
            },
        },
    }


def test_a_deployment_that_serves_is_ready(cluster: Cluster, kube: Kube, namespace: str) -> None:
    cluster.apply([_deployment("serving", cluster.images["probe"])])
    cluster.call(lambda: kube.wait_ready(Workload("Deployment", namespace, "serving"), 120))


def test_a_rollout_to_an_image_that_never_runs_is_not_ready_while_the_old_pod_serves(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    workload = Workload("Deployment", namespace, "rolled")
    cluster.apply([_deployment("rolled", cluster.images["probe"])])
    cluster.call(lambda: kube.wait_ready(workload, 120))
    cluster.apply([_deployment("rolled", f"{cluster.registry}/site/not-carried:2")])
    with pytest.raises(StepNotReady) as failed:
        cluster.call(lambda: kube.wait_ready(workload, 20))
    assert "ErrImagePull" in str(failed.value) or "ImagePullBackOff" in str(failed.value)


def test_a_completed_job_is_ready_and_a_failed_one_is_explained_at_once(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    def job(name: str, script: str) -> dict[str, object]:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "imagePullSecrets": [{"name": "internal-registry"}],
                        "containers": [
                            {"name": "main", "image": cluster.images["busybox"],
                             "command": ["sh", "-c", script]}
                        ],
                    }
                },
            },
        }  # fmt: skip

    cluster.apply([job("works", "echo done"), job("breaks", "echo schema-missing >&2; exit 3")])
    cluster.call(lambda: kube.wait_ready(Workload("Job", namespace, "works"), 120))
    with pytest.raises(StepNotReady) as failed:
        cluster.call(lambda: kube.wait_ready(Workload("Job", namespace, "breaks"), 300))
    assert str(failed.value).startswith("kube-test/job breaks is not ready (failed)")
    assert "schema-missing" in failed.value.details
    assert failed.value.exit_code == 2


def test_a_missing_image_is_named_with_its_pull_error(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    missing = f"{cluster.registry}/site/not-carried:1"
    cluster.apply([_deployment("unpulled", missing)])
    with pytest.raises(StepNotReady) as failed:
        cluster.call(lambda: kube.wait_ready(Workload("Deployment", namespace, "unpulled"), 20))
    message = str(failed.value)
    assert message.startswith(
        "kube-test/deployment unpulled is not ready (after 20s): pod unpulled-"
    )
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert "\n" not in message
    assert "not-carried" in failed.value.details


def test_a_crashing_container_shows_its_last_log_lines(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    crash = ["sh", "-c", "echo 'cannot open /var/run/rekor-signer/key.pem'; exit 1"]
    cluster.apply([_deployment("crashing", cluster.images["busybox"], crash)])
    with pytest.raises(StepNotReady) as failed:
        cluster.call(lambda: kube.wait_ready(Workload("Deployment", namespace, "crashing"), 25))
    assert "cannot open /var/run/rekor-signer/key.pem" in failed.value.details
    assert "crashing" in str(failed.value)


def test_secrets_are_read_back_and_never_replaced(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "signer", "namespace": namespace},
        "stringData": {"key.pem": "KEY-1"},
    }
    assert cluster.call(lambda: kube.read_secret_data(namespace, "signer")) is None
    cluster.call(lambda: kube.create_secret(secret))
    assert cluster.call(lambda: kube.read_secret_data(namespace, "signer")) == {"key.pem": b"KEY-1"}
    other = {**secret, "stringData": {"key.pem": "KEY-2"}}
    with pytest.raises(ClusterUnreachable, match="409 Conflict"):
        cluster.call(lambda: kube.create_secret(other))
    assert cluster.call(lambda: kube.read_secret_data(namespace, "signer")) == {"key.pem": b"KEY-1"}


def test_from_the_host_namespace_the_cluster_is_unreachable_in_one_line(cluster: Cluster) -> None:
    outside = Kube.from_kubeconfig(cluster.pki.kubeconfig("admin"))
    with pytest.raises(ClusterUnreachable, match="did not answer") as failed:
        outside.ensure_namespace("never")
    assert "\n" not in str(failed.value)
