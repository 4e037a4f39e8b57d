"""`airgap status` and `airgap uninstall` for an installed site.

status: each component's release (chart, revision), the image digests its pods run, whether
its workloads are ready, and what its service proves (the probes of install: log size, keys),
plus the TUF repository's expiry when a repository is given. Not ready anywhere: exit 1.

uninstall: the releases in reverse order and what install made for them (the served TUF
repository, the OIDC discovery binding). The keys, the recorded tree IDs, the database's
claim and volume and the namespaces stay, so a later install comes back with the same keys
and logs; `delete_keys` removes those too (new keys, new logs next time: every verifier's
trust must be replaced).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from offline.errors import AirgapError
from provisioner.stack.install import (
    OIDC_DISCOVERY_BINDING,
    TUF_CONFIGMAP,
    Prepared,
    rendered_workloads,
    secret_names,
)
from provisioner.stack.kube import Kube, ProbeFailed
from provisioner.stack.probes import check_ctlog, check_fulcio, check_rekor, check_tsa, check_tuf
from provisioner.stack.releases import Releases
from provisioner.stack.site import CT_LOG_PREFIX, SERVICES, Site
from provisioner.stack.state import STATE_CONFIGMAP
from provisioner.stack.storage import claims
from provisioner.stack.values import REGISTRY_CA_CONFIGMAP, component_namespace


@dataclass
class ComponentStatus:
    component: str
    release: str | None  # chart and revision; None when not installed
    ready: bool
    images: list[str] = field(default_factory=list)
    serving: str = ""  # what the probe proved, or why it failed

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "ready": self.ready,
            "images": self.images,
            "serving": self.serving,
        }


def stack_status(
    site: Site, kube: Kube, releases: Releases, prepared: Prepared
) -> list[ComponentStatus]:
    from offline.trust.root import parse_trusted_root

    trusted = parse_trusted_root(prepared.trusted_root)
    public = prepared.public
    checks: dict[str, Callable[[Callable[[str], bytes]], str]] = {
        "fulcio": lambda get: check_fulcio(get, public.fulcio_chain, [i.url for i in site.issuers]),
        "ctlog": lambda get: check_ctlog(get, CT_LOG_PREFIX, public.ctlog, public.fulcio_root),
    }
    if "rekor" in prepared.state.trees:
        tree = prepared.state.trees["rekor"]
        checks["rekor"] = lambda get: check_rekor(get, public.rekor, trusted, tree)
    if public.tsa_chain is not None:
        chain = public.tsa_chain
        post = partial(kube.service_post, component_namespace(site, "tsa"), SERVICES["tsa"])
        checks["tsa"] = lambda get: check_tsa(get, post, chain)
    if prepared.tuf is not None:
        tuf = prepared.tuf
        checks["tuf"] = lambda get: check_tuf(get, tuf.pinned_root, tuf.targets)
    statuses = []
    for component in prepared.components:
        rendered = prepared.rendered[component]
        revision = releases.revision(rendered.release, rendered.namespace)
        status = ComponentStatus(
            component,
            None if revision is None else f"{rendered.chart.name} revision {revision}",
            ready=revision is not None,
        )
        for workload in rendered_workloads(rendered):
            if workload.kind == "Job":
                continue
            if not kube.is_ready(workload):
                status.ready = False
            status.images += kube.running_images(workload)
        check = checks.get(component)
        if status.ready and check is not None:
            namespace, service = component_namespace(site, component), SERVICES[component]
            try:
                status.serving = check(partial(kube.service_get, namespace, service))
            except (ProbeFailed, AirgapError) as exc:
                status.ready, status.serving = False, str(exc)
        statuses.append(status)
    return statuses


def uninstall(
    site: Site,
    kube: Kube,
    releases: Releases,
    components: list[str],
    *,
    delete_keys: bool,
    timeout: int,
    record: Callable[[str, str], None],
) -> None:
    """Remove what install made; `record(subject, action)` for each."""
    if "policy-controller" in components:
        from provisioner.admission.webhook import delete_policies

        removed = delete_policies(kube, timeout)
        record("policy-controller's TrustRoots and ClusterImagePolicies", f"removed {removed}")
    for component in reversed(components):
        namespace = component_namespace(site, component)
        removed = releases.uninstall(component, namespace, timeout=timeout)
        record(f"release {component}", "removed" if removed else "absent")
    tuf_namespace = component_namespace(site, "tuf")
    _delete(kube, record, "ConfigMap", TUF_CONFIGMAP, tuf_namespace)
    if "policy-controller" in components and site.registry.ca_file is not None:
        namespace = component_namespace(site, "policy-controller")
        _delete(kube, record, "ConfigMap", REGISTRY_CA_CONFIGMAP, namespace)
    _delete(kube, record, "ClusterRoleBinding", OIDC_DISCOVERY_BINDING, None)
    if site.registry.credentials is not None and site.registry.pull_secret is not None:
        # Written by install from the site's credentials: a copy of them, not a key.
        namespaces = [component_namespace(site, c) for c in components]
        namespaces += [site.namespace(c) for c, _name in secret_names(site)]
        for namespace in dict.fromkeys(namespaces):
            _delete(kube, record, "Secret", site.registry.pull_secret, namespace)
    if not delete_keys:
        record("keys, tree IDs and the database", "kept (--delete-keys removes them)")
        return
    for component, name in secret_names(site):
        _delete(kube, record, "Secret", name, site.namespace(component))
    _delete(kube, record, "ConfigMap", STATE_CONFIGMAP, site.namespace("trillian"))
    for claim in claims(site):
        meta = claim["metadata"]
        _delete(kube, record, "PersistentVolumeClaim", meta["name"], meta["namespace"])
        kube.wait_deleted("PersistentVolumeClaim", meta["name"], meta["namespace"], timeout)
    for name in kube.airgap_volumes():  # the claims' hostPath volumes (their data stays)
        _delete(kube, record, "PersistentVolume", name, None)
        kube.wait_deleted("PersistentVolume", name, None, timeout)


def _delete(
    kube: Kube, record: Callable[[str, str], None], kind: str, name: str, namespace: str | None
) -> None:
    subject = f"{kind.lower()} {namespace + '/' if namespace else ''}{name}"
    record(subject, "removed" if kube.delete(kind, name, namespace) else "absent")
