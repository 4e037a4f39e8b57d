"""The test cluster is a real one: pods run, Services route, DNS answers, Jobs complete,
DaemonSets write to the node, volumes bind, and images come only from the site's internal
registry, with its pull secret."""

from __future__ import annotations

import json
import time

import pytest

from tests.cluster.node import Cluster
from tests.cluster.workloads import namespace


@pytest.fixture(scope="module")
def workloads(cluster: Cluster) -> str:
    """A namespace with a web Deployment (2 replicas) behind a Service, and a client pod."""
    ns = namespace(cluster, "workloads")
    probe = cluster.images["probe"]
    cluster.apply(
        f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      imagePullSecrets: [{{name: internal-registry}}]
      containers:
      - name: web
        image: {probe}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {ns}}}
spec:
  imagePullSecrets: [{{name: internal-registry}}]
  containers:
  - name: client
    image: {cluster.images["busybox"]}
    command: [sleep, "100000"]
"""
    )
    cluster.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=180s", timeout=200)
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/client", "--timeout=180s")
    return ns


def _from_client(cluster: Cluster, ns: str, *command: str) -> str:
    """Run `command` in the client pod; retried for a bounded time, because kube-proxy programs
    a new Service's endpoints a moment after the rollout reports done."""
    deadline = time.monotonic() + 60
    while True:
        result = cluster.run(
            ["kubectl", "-n", ns, "exec", "client", "--", *command], check=False, timeout=30
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout
        time.sleep(1)


def test_a_service_is_reached_by_cluster_ip_from_another_pod(
    cluster: Cluster, workloads: str
) -> None:
    ip = cluster.kubectl("-n", workloads, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    answer = _from_client(cluster, workloads, "cluster-probe", "get", f"http://{ip}/")
    assert answer.startswith("hello from web-")


def test_a_service_is_reached_by_its_dns_name_from_another_pod(
    cluster: Cluster, workloads: str
) -> None:
    name = f"web.{workloads}.svc.cluster.local"
    assert _from_client(cluster, workloads, "cluster-probe", "get", f"http://{name}/").startswith(
        "hello from web-"
    )


def test_both_replicas_answer_behind_the_service(cluster: Cluster, workloads: str) -> None:
    hosts = {
        _from_client(cluster, workloads, "cluster-probe", "get", "http://web/").split()[-1]
        for _ in range(30)
    }
    pods = cluster.kubectl("-n", workloads, "get", "pods", "-l", "app=web", "-o", "name")
    assert hosts == {line.removeprefix("pod/") for line in pods.split()}


def test_a_job_runs_to_completion(cluster: Cluster, workloads: str) -> None:
    cluster.apply(
        f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: once, namespace: {workloads}}}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      imagePullSecrets: [{{name: internal-registry}}]
      containers:
      - name: once
        image: {cluster.images["busybox"]}
        command: [sh, -c, 'echo job-ran; cluster-probe get http://web/']
"""
    )
    cluster.kubectl(
        "-n", workloads, "wait", "--for=condition=complete", "job/once", "--timeout=180s"
    )
    assert "job-ran" in cluster.kubectl("-n", workloads, "logs", "job/once")


def test_a_daemonset_writes_a_file_the_node_can_read(cluster: Cluster, workloads: str) -> None:
    hostpath = cluster.paths.hostpath / "daemonset"
    cluster.apply(
        f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: writer, namespace: {workloads}}}
spec:
  selector: {{matchLabels: {{app: writer}}}}
  template:
    metadata: {{labels: {{app: writer}}}}
    spec:
      imagePullSecrets: [{{name: internal-registry}}]
      containers:
      - name: writer
        image: {cluster.images["busybox"]}
        command: [sh, -c, 'echo "written by $(hostname)" > /host/ds.txt.new
          && mv /host/ds.txt.new /host/ds.txt && sleep 100000']
        volumeMounts: [{{name: host, mountPath: /host}}]
      volumes: [{{name: host, hostPath: {{path: {hostpath}, type: DirectoryOrCreate}}}}]
"""
    )
    cluster.kubectl("-n", workloads, "rollout", "status", "ds/writer", "--timeout=180s")
    written = hostpath / "ds.txt"
    cluster.wait_until("the DaemonSet's file", written.exists, timeout=60)
    pod = cluster.kubectl("-n", workloads, "get", "pods", "-l", "app=writer", "-o", "name")
    assert written.read_text() == f"written by {pod.strip().removeprefix('pod/')}\n"


def test_a_claim_binds_a_volume_and_a_pod_writes_into_it(cluster: Cluster, workloads: str) -> None:
    volume = cluster.paths.hostpath / "pv1"
    cluster.apply(
        f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv1}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {{path: {volume}, type: DirectoryOrCreate}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {workloads}}}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: volume-writer, namespace: {workloads}}}
spec:
  restartPolicy: Never
  imagePullSecrets: [{{name: internal-registry}}]
  containers:
  - name: writer
    image: {cluster.images["busybox"]}
    command: [sh, -c, 'echo persisted > /data/f.txt']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
"""
    )
    cluster.kubectl(
        "-n", workloads, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data",
        "--timeout=60s",
    )  # fmt: skip
    cluster.kubectl(
        "-n", workloads, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/volume-writer",
        "--timeout=180s",
    )  # fmt: skip
    assert (volume / "f.txt").read_text() == "persisted\n"


def _pull_failure(cluster: Cluster, ns: str, pod: str) -> str:
    """The waiting reason of `pod`'s container once the pull has failed."""
    reasons: list[str] = []

    def failed() -> bool:
        status = json.loads(cluster.kubectl("-n", ns, "get", "pod", pod, "-o", "json"))
        for container in status["status"].get("containerStatuses", []):
            reason = container["state"].get("waiting", {}).get("reason", "")
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                reasons.append(reason)
                return True
            assert "running" not in container["state"], f"{pod} pulled and ran"
        return False

    cluster.wait_until(f"{pod} to fail its pull", failed, timeout=90)
    events = cluster.kubectl(
        "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={pod}"
    )
    return reasons[0] + "\n" + events


def _pod(name: str, ns: str, image: str, *, pull_secret: bool, policy: str = "IfNotPresent") -> str:
    secrets = "imagePullSecrets: [{name: internal-registry}]" if pull_secret else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  {secrets}
  containers:
  - {{name: c, image: "{image}", imagePullPolicy: {policy}, command: [sleep, "100000"]}}
"""


def test_a_pod_pulls_from_the_internal_registry_with_the_pull_secret(
    cluster: Cluster, workloads: str
) -> None:
    image = cluster.images["busybox"]
    assert image.startswith(f"{cluster.registry}/")
    cluster.apply(_pod("pulled", workloads, image, pull_secret=True))
    cluster.kubectl("-n", workloads, "wait", "--for=condition=Ready", "pod/pulled")
    status = json.loads(cluster.kubectl("-n", workloads, "get", "pod", "pulled", "-o", "json"))
    assert status["status"]["containerStatuses"][0]["imageID"].endswith(image.split("@")[1])


def test_an_image_that_is_not_in_the_registry_fails_with_err_image_pull(
    cluster: Cluster, workloads: str
) -> None:
    missing = f"{cluster.registry}/cluster/not-there:1"
    cluster.apply(_pod("missing", workloads, missing, pull_secret=True))
    failure = _pull_failure(cluster, workloads, "missing")
    assert failure.startswith("ErrImagePull") or "ErrImagePull" in failure
    assert "not found" in failure


def test_without_the_pull_secret_the_internal_registry_refuses_the_pull(
    cluster: Cluster, workloads: str
) -> None:
    # The image is on the node already (other pods run it): `Always` makes kubelet ask the
    # registry again, as it would for an image the node does not have.
    image = cluster.images["busybox"]
    cluster.apply(_pod("anonymous", workloads, image, pull_secret=False, policy="Always"))
    assert "401 Unauthorized" in _pull_failure(cluster, workloads, "anonymous")


def test_a_public_image_name_is_never_pulled_from_outside(cluster: Cluster, workloads: str) -> None:
    cluster.apply(_pod("public", workloads, "docker.io/library/busybox:1.36", pull_secret=True))
    failure = _pull_failure(cluster, workloads, "public")
    # Resolving docker.io fails inside the node: no route to any nameserver, or anywhere.
    assert "docker.io" in failure
    assert "network is unreachable" in failure


def test_the_diagnosis_shows_every_component_log_and_describes_what_is_not_ready(
    cluster: Cluster, workloads: str
) -> None:
    cluster.apply(
        _pod("stuck", workloads, f"{cluster.registry}/cluster/absent:1", pull_secret=True)
    )
    _pull_failure(cluster, workloads, "stuck")

    diagnosis = cluster.diagnose()

    for component in ("etcd", "kube-apiserver", "kubelet", "containerd", "registry"):
        assert f"---- {component} (" in diagnosis
    assert f"---- describe pod {workloads}/stuck ----" in diagnosis
    assert "absent:1" in diagnosis


def test_the_cluster_with_its_workloads_stays_under_two_gib_resident(
    cluster: Cluster, workloads: str
) -> None:
    sizes = cluster.resident_memory()
    assert {"kube-apiserver", "etcd", "kubelet", "containerd", "pods"} <= set(sizes)
    total = sum(sizes.values())
    print({name: size // 2**20 for name, size in sizes.items()}, total // 2**20, "MiB")
    assert total < 2 * 2**30
