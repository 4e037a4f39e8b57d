"""The container images a rendered chart runs, and whether a bundle spec carries them.

`manifest_images` walks the objects `helm template` rendered (charts.py runs helm) for every pod
spec they hold; `compare_images` names each image no spec entry provides. Nothing here runs helm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offline.errors import UsageError
from offline.oci.imageref import ImageRef, parse_image_ref

# Object kinds whose top-level `spec` is itself a pod spec.
_POD_KINDS = frozenset({"Pod"})
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, order=True)
class ChartImage:
    """An image a rendered chart runs: `resource` is `Kind/name`, `chart` is `name-version`."""

    image: str
    resource: str
    container: str
    chart: str


def compare_images(chart_images: Sequence[ChartImage], spec_images: Sequence[str]) -> list[str]:
    """One message per chart image that no spec image provides (empty: the spec covers the
    charts). References compare normalized (`docker.io/library/x:latest` is `x`); an image
    rendered with a digest needs a spec entry with that digest, a tag-only image one with the
    same repository and tag. Spec images no chart uses are fine."""
    spec = [parse_image_ref(text) for text in spec_images]
    missing: dict[tuple[str, str], list[str]] = {}
    for item in chart_images:
        try:
            ref = parse_image_ref(item.image)
        except UsageError as exc:
            missing.setdefault((item.chart, item.image), []).append(
                f"{item.resource} container {item.container}; invalid reference: {exc}"
            )
            continue
        if not any(_provides(candidate, ref) for candidate in spec):
            missing.setdefault((item.chart, item.image), []).append(
                f"{item.resource} container {item.container}"
            )
    return [
        f"chart {chart}: image {image} is not in the spec's images (used by {'; '.join(users)})"
        for (chart, image), users in sorted(missing.items())
    ]


def _provides(spec: ImageRef, rendered: ImageRef) -> bool:
    """Whether spec entry `spec` carries the image `rendered` names."""
    if spec.name != rendered.name:
        return False
    if rendered.digest is not None:
        return spec.digest == rendered.digest
    # A tag-only image: the spec entry for that tag (usually pinned by a digest as well).
    return spec.tag == rendered.tag


def manifest_images(document: Any) -> Iterator[tuple[str, str, str]]:
    """(resource, container, image) for every container of every pod spec in `document`."""
    if not isinstance(document, Mapping):
        return
    kind = str(document.get("kind") or "?")
    if kind.endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from manifest_images(item)
        return
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    resource = f"{kind}/{name or '?'}"
    for pod_spec in _pod_specs(kind, document):
        for list_name in _CONTAINER_LISTS:
            containers = pod_spec.get(list_name)
            if not isinstance(containers, list):
                continue
            for container in containers:
                if isinstance(container, Mapping) and container.get("image") not in (None, ""):
                    label = str(container.get("name") or "?")
                    yield resource, label, str(container["image"]).strip()


def _pod_specs(kind: str, document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Pod specs of an object: a Pod's spec, a pod template's spec (Deployment, StatefulSet,
    DaemonSet, ReplicaSet, Job, and any custom kind shaped the same), a CronJob's job
    template's, a PodTemplate's."""

    def dig(node: Any, *keys: str) -> Mapping[str, Any] | None:
        for key in keys:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
        return node if isinstance(node, Mapping) else None

    candidates = [
        dig(document, "spec") if kind in _POD_KINDS else None,
        dig(document, "spec", "template", "spec"),
        dig(document, "spec", "jobTemplate", "spec", "template", "spec"),
        dig(document, "template", "spec") if kind == "PodTemplate" else None,
    ]
    yield from (spec for spec in candidates if spec is not None)
