"""One component's chart, ready to install: its values built (values.py) and checked
(chart_check.py) before anything is applied. What the install command and its dry run call.

    ready = render_component("rekor", chart_tgz, site, mapping, public)
    ready.values       # what to give helm (pyhelm3) for the release
    ready.documents    # what helm renders with them: every image internal, by digest
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.create.charts import merge_values as merge
from provisioner.stack.chart_check import chart_files, check_images, check_known_keys, render
from provisioner.stack.keys import PublicMaterial
from provisioner.stack.mapping import ImageMapping
from provisioner.stack.site import Site
from provisioner.stack.values import build_values, component_namespace


@dataclass(frozen=True)
class RenderedComponent:
    component: str
    release: str
    namespace: str
    chart: Path
    values: dict[str, Any]
    documents: list[Any]


def render_component(
    component: str,
    chart: Path,
    site: Site,
    mapping: ImageMapping,
    public: PublicMaterial,
    *,
    helm: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RenderedComponent:
    """Build `component`'s values for `chart` (a directory or a packaged archive, subcharts
    vendored) and check them: known keys, helm's schema check, internal images by digest."""
    files = chart_files(chart)
    values = build_values(component, site, mapping, public, files.values)
    if overrides:  # what only the install knows: recorded tree IDs, the served repository
        values = merge(values, dict(overrides))
    if site.values.get(component):  # the site's own, last: the chart's schema checks them
        values = merge(values, dict(site.values[component]))
    check_known_keys(values, files)
    namespace = component_namespace(site, component)
    documents = render(chart, values, release=component, namespace=namespace, helm=helm)
    check_images(documents, site.registry.host, component)
    return RenderedComponent(component, component, namespace, chart, values, documents)
