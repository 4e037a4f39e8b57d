"""What installing policy-controller from its upstream chart needs beyond helm
(../shared/reference/cluster-stack.md §3):

- stale leases: the chart's post-delete hook deletes knative's Leases; when it could not run
  (no kubectl image, a failed uninstall) they stay, and a new webhook never becomes leader for
  its certificate (`tls: no certificates configured`, probes failing). Before a first install
  into the namespace they are deleted.
- uninstall: the chart's CRDs go with the release, and with them every TrustRoot and
  ClusterImagePolicy; their finalizers need the controller, so they are deleted (and waited
  for) while it still runs, or the CRDs would hang in Terminating and block the next install.
- real readiness: a Ready pod is not yet an answering webhook (its Service endpoints and
  certificate lag behind: the first object applied right after got `connection refused`).
  Ready means the API server got an answer from both webhooks: a server-side dry run of a
  ClusterImagePolicy goes through defaulting and validation without being stored.
"""

from __future__ import annotations

import time
from typing import Any

from provisioner.stack.kube import ClusterUnreachable, Kube, StepNotReady

GROUP, VERSION = "policy.sigstore.dev", "v1alpha1"
PROBE_NAME = "airgap-admission-probe"
POLL_SECONDS = 2.0


def delete_leases(kube: Kube, namespace: str) -> int:
    """Delete every Lease in policy-controller's namespace (knative's leader election, which a
    release that is not installed does not hold); how many there were."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    leases = client.CoordinationV1Api(kube.api_client)
    try:
        items: list[Any] = leases.list_namespaced_lease(namespace).items
        for lease in items:
            try:
                leases.delete_namespaced_lease(str(lease.metadata.name), namespace)
            except ApiException as exc:
                if exc.status != 404:  # gone meanwhile is what was wanted
                    raise
    except ApiException as exc:
        raise ClusterUnreachable(f"the API server refused: {exc.status} {exc.reason}") from exc
    return len(items)


def probe_policy() -> dict[str, Any]:
    """A ClusterImagePolicy that matches no image: what the dry run sends."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": PROBE_NAME},
        "spec": {
            "images": [{"glob": "airgap.invalid/admission-probe"}],
            "authorities": [{"name": "probe", "static": {"action": "fail"}}],
        },
    }


def wait_admitting(kube: Kube, timeout: float) -> float:
    """Until policy-controller's webhooks answer a dry-run create; the seconds it took.
    StepNotReady at the deadline (with the API server's last answer), or at once when the
    webhook answers with a refusal (it runs, but not as airgap set it up)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    custom = client.CustomObjectsApi(kube.api_client)
    started = time.monotonic()
    last = ""
    while True:
        try:
            custom.create_cluster_custom_object(
                GROUP, VERSION, "clusterimagepolicies", probe_policy(), dry_run="All"
            )
            return time.monotonic() - started
        except ApiException as exc:
            if exc.status in (400, 403, 422):  # answered, and refused
                raise StepNotReady(
                    f"policy-controller's webhook refused a ClusterImagePolicy: {exc.status} "
                    f"{_reason(exc)}",
                    "",
                ) from exc
            last = f"{exc.status} {_reason(exc)}"  # 404: CRD not served yet; 500: no answer
        except (HTTPError, OSError) as exc:
            last = str(exc)
        if time.monotonic() - started > timeout:
            raise StepNotReady(
                f"policy-controller's webhook does not answer {timeout:.0f}s after its pods "
                f"are ready: {last}",
                "",
            )
        time.sleep(POLL_SECONDS)


def _reason(exc: Any) -> str:
    import json

    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or exc.reason)


def delete_policies(kube: Kube, timeout: float) -> int:
    """Delete every TrustRoot and ClusterImagePolicy and wait until they are gone (their
    finalizers run in the controller); how many there were. None when the CRDs are absent."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(kube.api_client)

    def listed(plural: str) -> list[dict[str, Any]]:
        found: Any = custom.list_cluster_custom_object(GROUP, VERSION, plural)
        items: list[dict[str, Any]] = found["items"]
        return items

    deleted = 0
    for plural in ("clusterimagepolicies", "trustroots"):
        try:
            items = listed(plural)
            for item in items:
                name = item["metadata"]["name"]
                try:
                    custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            deleted += len(items)
            deadline = time.monotonic() + timeout
            while listed(plural):
                if time.monotonic() > deadline:
                    raise StepNotReady(
                        f"{plural} are still there {timeout:.0f}s after deletion", ""
                    )
                time.sleep(POLL_SECONDS)
        except ApiException as exc:
            if exc.status == 404:  # no such resource: the CRDs are not installed
                continue
            raise ClusterUnreachable(f"the API server refused: {exc.status} {exc.reason}") from exc
    return deleted
