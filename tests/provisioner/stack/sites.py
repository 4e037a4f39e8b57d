"""Site documents for the stack's tests: the least a site.yaml must say, and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioner.stack.site import Site, parse_site

SITE_PATH = Path("/sites/lab/site.yaml")
REGISTRY = "registry.lab:5000"


def site_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "airgap.dev/v1",
        "kind": "Site",
        "charts": "bundle/charts",
        "registry": {"host": REGISTRY, "mapping": "mapping.json"},
        "storage": {"class": "manual"},
    }
    document.update(overrides)
    return document


def lab_site(**overrides: Any) -> Site:
    return parse_site(site_document(**overrides), SITE_PATH)
