"""`airgap nodes apply`: the node material's ConfigMap and the DaemonSet that writes it, applied
in the site's `nodes` namespace, then waited for until every node's pod has recorded the new
version (`kubectl rollout status` for a DaemonSet); ConfigMaps of earlier versions go last.

Everything that can be refused is refused before the first write: the site's `nodes` block, the
image in the import mapping, the material, the pull secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline.errors import UsageError
from provisioner.nodes.material import NodeMaterial, read_material
from provisioner.nodes.render import LABELS, NAME, SPEC_ANNOTATION, NodeObjects, render
from provisioner.stack.kube import Kube, Workload
from provisioner.stack.mapping import ImageMapping
from provisioner.stack.pull_secret import in_namespace, pull_secret_manifest
from provisioner.stack.site import Site

# subject, action, detail, seconds
Record = Callable[[str, str, str, float], None]
SELECTOR = ",".join(f"{k}={v}" for k, v in LABELS.items())


def prepare_nodes(
    site: Site, mapping: ImageMapping, trust_dir: Path | None, tuf_repo: Path | None
) -> NodeObjects:
    """The objects to apply, or the refusal."""
    if site.nodes is None:
        raise UsageError(
            f"site {site.path} has no nodes block: add nodes: {{image: ...}} naming the small "
            "shell image the bundle carries (see charts-values/site.example.yaml)"
        )
    material: NodeMaterial = read_material(site, trust_dir, tuf_repo)
    return render(site, mapping, material)


def apply_nodes(
    site: Site, kube: Kube, objects: NodeObjects, *, timeout: float, record: Record
) -> None:
    namespace = site.namespace("nodes")
    pull_secret = _pull_secret(site, kube, namespace)
    short = objects.version[:12]
    record(f"namespace {namespace}", kube.ensure_namespace(namespace), "", 0.0)
    if pull_secret is not None:
        action = kube.ensure_replaceable(pull_secret)
        record(f"pull secret {namespace}/{pull_secret['metadata']['name']}", action, "", 0.0)
    action = kube.ensure_replaceable(objects.config_map)
    record(f"configmap {namespace}/{objects.config_map_name}", action, f"version {short}", 0.0)
    action = kube.ensure_daemon_set(objects.daemon_set, SPEC_ANNOTATION)
    record(f"daemonset {namespace}/{NAME}", action, f"version {short}", 0.0)
    started = time.monotonic()
    kube.wait_ready(Workload("DaemonSet", namespace, NAME), timeout)
    record(
        f"daemonset {namespace}/{NAME}",
        "ready",
        f"every node holds version {short}",
        time.monotonic() - started,
    )
    # Only now: until every pod runs the new version, old pods still mount the old ones.
    for name in kube.config_map_names(namespace, SELECTOR):
        if name != objects.config_map_name:
            kube.delete("ConfigMap", name, namespace)
            record(f"configmap {namespace}/{name}", "deleted", "an earlier version", 0.0)


def _pull_secret(site: Site, kube: Kube, namespace: str) -> dict[str, Any] | None:
    """The pull secret to write (from registry.credentials), else None once checked that the
    namespace has it: without it, no node could pull the image."""
    registry = site.registry
    if registry.pull_secret is None:
        return None
    if registry.credentials is not None:
        return in_namespace(pull_secret_manifest(site), namespace)
    if kube.read_secret(namespace, registry.pull_secret) is None:
        raise UsageError(
            f"site {site.path}: secret {namespace}/{registry.pull_secret} (registry.pullSecret) "
            "does not exist; create it or give registry.credentials"
        )
    return None
