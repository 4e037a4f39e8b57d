"""The installer's view of the cluster, through the `kubernetes` client: namespaces and secrets
made once and compared afterwards, and waits on real readiness that explain themselves.

    kube = Kube.from_kubeconfig(Path("~/.kube/config"), context=None)
    kube.ensure_namespace("rekor-system")
    kube.wait_ready(Workload("Deployment", "rekor-system", "rekor-server"), timeout=300)

A workload that does not become ready raises `StepNotReady`: one line naming the object and the
most telling reason (a container's waiting reason, the newest warning event), and `details` with
its events and the last log lines of each of its pods' containers, for the operator to read.
Secret values never appear in either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from offline.errors import EnvironmentFailure, UsageError

POLL_SECONDS = 1.0
# A container that crashes right after it starts counts as ready for a moment (without a
# readiness probe): ready means ready for this long with no container restarting meanwhile.
SETTLE_SECONDS = 3.0
LOG_LINES = 20
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


class StepNotReady(EnvironmentFailure):
    """A workload did not become ready in time; `details` holds its events and pod logs."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


class ClusterUnreachable(EnvironmentFailure):
    """The API server did not answer (or refused our credentials)."""


class ProbeFailed(EnvironmentFailure):
    """A service answered a readiness probe with an error, or with the wrong content."""


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in WORKLOAD_KINDS:
            raise UsageError(f"cannot wait for a {self.kind}: one of {', '.join(WORKLOAD_KINDS)}")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind.lower()} {self.name}"


class Kube:
    """Typed calls on one cluster. Built from a kubeconfig; every API error that is not ours to
    explain becomes `ClusterUnreachable` with the API's own reason."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None, context: str | None = None) -> Kube:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        new_client: Any = config.new_client_from_config  # untyped upstream
        try:
            api_client = new_client(
                config_file=None if kubeconfig is None else str(kubeconfig), context=context
            )
        except (ConfigException, OSError) as exc:
            raise UsageError(f"kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
        return cls(api_client)

    # ---- objects made once ----------------------------------------------------------------

    def ensure_namespace(self, name: str) -> str:
        """'created' or 'unchanged'."""
        if self._read(lambda: self.core.read_namespace(name)) is not None:
            return "unchanged"
        body: Any = {"metadata": {"name": name}}  # the client serializes plain dicts as well
        self._call(lambda: self.core.create_namespace(body))
        return "created"

    def read_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The secret's data, decoded; None when there is no such secret."""
        import base64

        secret = self._read(lambda: self.core.read_namespaced_secret(name, namespace))
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def create_secret(self, manifest: Mapping[str, Any]) -> None:
        """Create a secret that must not exist yet (a key is never replaced)."""
        namespace = manifest["metadata"]["namespace"]
        body: Any = dict(manifest)
        self._call(lambda: self.core.create_namespaced_secret(namespace, body))

    def namespace_exists(self, name: str) -> bool:
        return self._read(lambda: self.core.read_namespace(name)) is not None

    def exists(self, workload: Workload) -> bool:
        if workload.kind == "Job":
            read = self.batch.read_namespaced_job
            return self._read(lambda: read(workload.name, workload.namespace)) is not None
        return self._read_workload(workload) is not None

    def ensure_service_account(
        self, namespace: str, name: str, release: str, pull_secret: str
    ) -> str:
        """A ServiceAccount that a chart makes but cannot give a pull secret: made first with
        Helm's ownership marks (the release adopts it), the pull secret on it."""
        found = self._read(lambda: self.core.read_namespaced_service_account(name, namespace))
        if found is not None:
            return self.add_pull_secret(namespace, name, pull_secret)
        body: Any = {
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {
                    "meta.helm.sh/release-name": release,
                    "meta.helm.sh/release-namespace": namespace,
                },
            },
            "imagePullSecrets": [{"name": pull_secret}],
        }
        self._call(lambda: self.core.create_namespaced_service_account(namespace, body))
        return "created"

    def is_ready(self, workload: Workload) -> bool:
        return self._readiness(workload) == "ready"

    def running_images(self, workload: Workload) -> list[str]:
        """The image each of the workload's pods runs, by digest (as the node resolved it)."""
        images = set()
        for pod in self._pods_of(workload):
            for status in pod.status.container_statuses or []:
                images.add(status.image_id or status.image)
        return sorted(images)

    def replace_pods(self, workload: Workload) -> int:
        """Delete the workload's pods so that their controller starts new ones now (a pod
        waiting for a Secret to mount retries only every minute or two); how many."""
        pods = self._pods_of(workload)
        delete = self.core.delete_namespaced_pod
        for pod in pods:
            self._read(partial(delete, pod.metadata.name, workload.namespace))
        return len(pods)

    def airgap_volumes(self) -> list[str]:
        listed = self._call(
            lambda: self.core.list_persistent_volume(
                label_selector="app.kubernetes.io/managed-by=airgap"
            )
        )
        return sorted(v.metadata.name for v in listed.items)

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The secret as the API's JSON (base64 `data`), for secrets.py; None when absent."""
        found = self._read(lambda: self.core.read_namespaced_secret(name, namespace))
        return None if found is None else self._plain(found)

    def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's `data`; None when there is no such ConfigMap."""
        found = self._read(lambda: self.core.read_namespaced_config_map(name, namespace))
        return None if found is None else dict(found.data or {})

    def ensure_replaceable(self, manifest: Mapping[str, Any]) -> str:
        """A Secret or ConfigMap that is not a key (a pull secret, the served TUF repository):
        created when absent, replaced when its content differs. 'created', 'updated' or
        'unchanged'."""
        kind, metadata = manifest["kind"], manifest["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        body: Any = dict(manifest)
        read: Callable[..., Any]
        create: Callable[..., Any]
        replace: Callable[..., Any]
        if kind == "Secret":
            read, create, replace = (
                self.core.read_namespaced_secret,
                self.core.create_namespaced_secret,
                self.core.replace_namespaced_secret,
            )
            fields = ("type", "data")
        elif kind == "ConfigMap":
            read, create, replace = (
                self.core.read_namespaced_config_map,
                self.core.create_namespaced_config_map,
                self.core.replace_namespaced_config_map,
            )
            fields = ("data", "binaryData")
        else:
            raise UsageError(f"{kind} {namespace}/{name}: not a Secret or ConfigMap")
        found = self._read(lambda: read(name, namespace))
        if found is None:
            self._call(lambda: create(namespace, body))
            return "created"
        current = self._plain(found)
        if all((current.get(f) or None) == (manifest.get(f) or None) for f in fields):
            return "unchanged"
        self._call(lambda: replace(name, namespace, body))
        return "updated"

    def ensure_created(self, manifest: Mapping[str, Any]) -> str:
        """An object made once and then left alone (a volume, a claim, a binding): 'created'
        or 'unchanged'. Claims and volumes are immutable where it matters anyway."""
        from kubernetes import client

        kind, metadata = manifest["kind"], manifest["metadata"]
        name, namespace = metadata["name"], metadata.get("namespace")
        body: Any = dict(manifest)
        rbac = client.RbacAuthorizationV1Api(self.api_client)
        calls: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "PersistentVolume": (
                lambda: self.core.read_persistent_volume(name),
                lambda: self.core.create_persistent_volume(body),
            ),
            "PersistentVolumeClaim": (
                lambda: self.core.read_namespaced_persistent_volume_claim(name, namespace),
                lambda: self.core.create_namespaced_persistent_volume_claim(namespace, body),
            ),
            "ClusterRoleBinding": (
                lambda: rbac.read_cluster_role_binding(name),
                lambda: rbac.create_cluster_role_binding(body),
            ),
        }
        if kind not in calls:
            raise UsageError(f"{kind} {name}: not an object airgap makes once")
        read, create = calls[kind]
        if self._read(read) is not None:
            return "unchanged"
        self._call(create)
        return "created"

    def ensure_daemon_set(self, manifest: Mapping[str, Any], spec_annotation: str) -> str:
        """A DaemonSet airgap renders whole, its hash in the `spec_annotation` annotation:
        created when absent, replaced when the hash differs, else left alone (so an unchanged
        apply restarts no pod). 'created', 'updated' or 'unchanged'."""
        metadata = manifest["metadata"]
        name, namespace = metadata["name"], metadata["namespace"]
        body: Any = dict(manifest)
        found = self._read(lambda: self.apps.read_namespaced_daemon_set(name, namespace))
        if found is None:
            self._call(lambda: self.apps.create_namespaced_daemon_set(namespace, body))
            return "created"
        wanted = metadata["annotations"][spec_annotation]
        if (found.metadata.annotations or {}).get(spec_annotation) == wanted:
            return "unchanged"
        self._call(lambda: self.apps.replace_namespaced_daemon_set(name, namespace, body))
        return "updated"

    def read_daemon_set(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The DaemonSet as the API's JSON; None when absent."""
        found = self._read(lambda: self.apps.read_namespaced_daemon_set(name, namespace))
        return None if found is None else self._plain(found)

    def config_map_names(self, namespace: str, selector: str) -> list[str]:
        listed = self._call(
            lambda: self.core.list_namespaced_config_map(namespace, label_selector=selector)
        )
        return sorted(c.metadata.name for c in listed.items)

    def node_names(self, selector: str | None = None) -> list[str]:
        listed = self._call(lambda: self.core.list_node(label_selector=selector or ""))
        return sorted(n.metadata.name for n in listed.items)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods matching `selector`, as the API's JSON."""
        listed = self._call(
            lambda: self.core.list_namespaced_pod(namespace, label_selector=selector)
        )
        return [self._plain(pod) for pod in listed.items]

    def log_tail(
        self, namespace: str, pod: str, container: str, lines: int = LOG_LINES
    ) -> list[str]:
        """The container's last log lines; [] when it has not started."""
        return self._log_tail(namespace, pod, container, lines=lines)

    def add_pull_secret(self, namespace: str, account: str, secret: str) -> str:
        """Add `secret` to the ServiceAccount's imagePullSecrets (for a chart that takes none):
        'updated' or 'unchanged'."""
        found = self._read(lambda: self.core.read_namespaced_service_account(account, namespace))
        if found is None:
            raise StepNotReady(f"serviceaccount {namespace}/{account} does not exist", "")
        names = [ref.name for ref in found.image_pull_secrets or []]
        if secret in names:
            return "unchanged"
        body: Any = {"imagePullSecrets": [{"name": n} for n in [*names, secret]]}
        self._call(lambda: self.core.patch_namespaced_service_account(account, namespace, body))
        return "updated"

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete an object airgap made; False when it was not there."""
        from kubernetes import client

        rbac = client.RbacAuthorizationV1Api(self.api_client)
        ns = namespace or ""
        calls: dict[str, Callable[[], Any]] = {
            "Secret": lambda: self.core.delete_namespaced_secret(name, ns),
            "ConfigMap": lambda: self.core.delete_namespaced_config_map(name, ns),
            "PersistentVolumeClaim": lambda: self.core.delete_namespaced_persistent_volume_claim(
                name, ns
            ),
            "PersistentVolume": lambda: self.core.delete_persistent_volume(name),
            "ClusterRoleBinding": lambda: rbac.delete_cluster_role_binding(name),
            "Namespace": lambda: self.core.delete_namespace(name),
        }
        return self._read(calls[kind]) is not None

    def wait_deleted(self, kind: str, name: str, namespace: str | None, timeout: float) -> None:
        """Until a deleted claim or volume is gone (its protection finalizer holds it while a
        pod still uses it); StepNotReady at the deadline."""
        reads: dict[str, Callable[[], Any]] = {
            "PersistentVolumeClaim": lambda: self.core.read_namespaced_persistent_volume_claim(
                name, namespace or ""
            ),
            "PersistentVolume": lambda: self.core.read_persistent_volume(name),
        }
        deadline = time.monotonic() + timeout
        while self._read(reads[kind]) is not None:
            if time.monotonic() > deadline:
                where = f"{namespace}/" if namespace else ""
                raise StepNotReady(
                    f"{kind.lower()} {where}{name} is still there {timeout:.0f}s after its "
                    f"deletion (a pod still uses it?)",
                    "",
                )
            time.sleep(POLL_SECONDS)

    def service_get(self, namespace: str, service: str, path: str) -> bytes:
        """GET `path` from a Service through the API server's proxy: how the installer reaches
        in-cluster services from outside the cluster. A non-2xx answer raises ProbeFailed."""
        from kubernetes.client.exceptions import ApiException

        found = self._read(lambda: self.core.read_namespaced_service(service, namespace))
        if found is None:
            raise ProbeFailed(f"service {namespace}/{service} does not exist")
        port = found.spec.ports[0].port
        try:
            answer: Any = self.core.connect_get_namespaced_service_proxy_with_path(
                f"{service}:{port}", namespace, path.lstrip("/"), _preload_content=False
            )
        except ApiException as exc:
            raise ProbeFailed(
                f"GET {path} from service {namespace}/{service}: {exc.status} {exc.reason}"
            ) from exc
        except OSError as exc:
            raise ClusterUnreachable(f"the API server did not answer: {exc}") from exc
        return bytes(answer.data)

    def _plain(self, found: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self.api_client.sanitize_for_serialization(found)
        return plain

    # ---- readiness ------------------------------------------------------------------------

    def wait_ready(self, workload: Workload, timeout: float) -> None:
        """Poll until `workload` is ready (a Job: complete); `StepNotReady` at the deadline or
        as soon as a Job has failed for good."""
        deadline = time.monotonic() + timeout
        settled: tuple[float, int] | None = None  # since when ready, with how many restarts
        while True:
            state = self._readiness(workload)
            now = time.monotonic()
            if state == "ready":
                if workload.kind == "Job":
                    return
                restarts = self._restarts(workload)
                if settled is None or settled[1] != restarts:
                    settled = (now, restarts)
                elif now - settled[0] >= SETTLE_SECONDS:
                    return
            else:
                settled = None
            if state == "failed" or now > deadline:
                raise self.not_ready(workload, "failed" if state == "failed" else f"{timeout:.0f}s")
            time.sleep(POLL_SECONDS)

    def _readiness(self, w: Workload) -> str:
        if w.kind == "Job":
            job = self._read(lambda: self.batch.read_namespaced_job_status(w.name, w.namespace))
            if job is None:
                return "absent"
            for condition in job.status.conditions or []:
                if condition.status == "True" and condition.type in ("Complete", "Failed"):
                    return "ready" if condition.type == "Complete" else "failed"
            return "waiting"
        found = self._read_workload(w)
        if found is None:
            return "absent"
        status, spec = found.status, found.spec
        if (found.metadata.generation or 0) > (status.observed_generation or 0):
            return "waiting"  # the controller has not seen the latest spec yet
        if w.kind == "DaemonSet":
            wanted, ready = status.desired_number_scheduled, status.number_ready
            current, total = status.updated_number_scheduled, status.current_number_scheduled
        else:
            wanted, ready = spec.replicas, status.ready_replicas
            current, total = status.updated_replicas, status.replicas
        if w.kind == "StatefulSet" and status.current_revision != status.update_revision:
            return "waiting"
        # As `kubectl rollout status`: every pod of the new spec ready, and no old pod left
        # (during a rollout the old pods may still be the ready ones).
        return (
            "ready"
            if wanted is not None and (ready or 0) == wanted == (current or 0) == (total or 0)
            else "waiting"
        )

    def _read_workload(self, w: Workload) -> Any:
        """A Deployment, StatefulSet or DaemonSet with its spec and status; None if absent."""
        read = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
        }[w.kind]
        return self._read(lambda: read(w.name, w.namespace))

    def _restarts(self, workload: Workload) -> int:
        return sum(
            status.restart_count
            for pod in self._pods_of(workload)
            for status in pod.status.container_statuses or []
        )

    # ---- diagnosis ------------------------------------------------------------------------

    def not_ready(self, workload: Workload, after: str) -> StepNotReady:
        pods = self._pods_of(workload)
        events = self._events(workload.namespace, [workload.name, *(p.metadata.name for p in pods)])
        reason = _telling_reason(pods, events)
        message = f"{workload} is not ready ({'failed' if after == 'failed' else 'after ' + after})"
        if reason:
            message += f": {reason}"
        details = [f"events of {workload} and its pods:"]
        details += [f"  {e}" for e in events] or ["  (none)"]
        for pod in pods:
            for container in pod.spec.containers:
                lines = self._log_tail(workload.namespace, pod.metadata.name, container.name)
                if not lines:  # restarting: what the crashed run said
                    lines = self._log_tail(
                        workload.namespace, pod.metadata.name, container.name, previous=True
                    )
                details.append(f"last log lines of {pod.metadata.name}/{container.name}:")
                details += [f"  {line}" for line in lines] or ["  (none)"]
        return StepNotReady(message, "\n".join(details))

    def _pods_of(self, w: Workload) -> list[Any]:
        if w.kind == "Job":
            selector = f"job-name={w.name}"
        else:
            found = self._read_workload(w)
            if found is None or not found.spec.selector.match_labels:
                return []
            selector = ",".join(f"{k}={v}" for k, v in found.spec.selector.match_labels.items())
        listed = self._call(
            lambda: self.core.list_namespaced_pod(w.namespace, label_selector=selector)
        )
        return list(listed.items)

    def _events(self, namespace: str, names: Iterable[str]) -> list[str]:
        wanted = set(names)
        listed = self._call(lambda: self.core.list_namespaced_event(namespace))
        events = [e for e in listed.items if e.involved_object.name in wanted]
        events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return [
            f"{e.type} {e.reason} {e.involved_object.kind.lower()}/{e.involved_object.name}: "
            f"{(e.message or '').strip()}"
            for e in events
        ]

    def _log_tail(
        self,
        namespace: str,
        pod: str,
        container: str,
        previous: bool = False,
        lines: int = LOG_LINES,
    ) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            text = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=lines, previous=previous
            )
        except ApiException:
            return []  # not started yet: the events say why
        return str(text).splitlines()[-lines:]

    # ---- calls ----------------------------------------------------------------------------

    def _read(self, call: Callable[[], Any]) -> Any:
        """`call`'s answer, or None when the object does not exist."""
        return self._call(call, missing_ok=True)

    def _call(self, call: Callable[[], Any], missing_ok: bool = False) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise ClusterUnreachable(f"the API server refused: {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterUnreachable(f"the API server did not answer: {exc}") from exc


def _telling_reason(pods: list[Any], events: list[str]) -> str:
    """The one reason an operator most needs: a container stuck waiting or crashing, else the
    newest warning event."""
    for pod in pods:
        for status in pod.status.container_statuses or []:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason not in (None, "ContainerCreating"):
                detail = (waiting.message or "").strip().splitlines()
                return f"pod {pod.metadata.name}: {waiting.reason}" + (
                    f" ({detail[0][:200]})" if detail else ""
                )
    warnings = [e for e in events if e.startswith("Warning ")]
    return warnings[-1][:300] if warnings else ""
