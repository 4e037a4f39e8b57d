"""A site with a `nodes` block, its trust directory and an import mapping carrying busybox."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.stack.mapping import ImageMapping, load_mapping
from provisioner.stack.site import Site, load_site
from tests.provisioner.nodes.material import BUSYBOX, DIGEST, write_mapping, write_trust_dir

REGISTRY = "registry.lab:5000"


@dataclass(frozen=True)
class NodesSite:
    site: Site
    mapping: ImageMapping
    trust_dir: Path
    files: dict[str, bytes]


def write_site(directory: Path, **nodes: object) -> Path:
    import yaml

    document = {
        "apiVersion": "airgap.dev/v1",
        "kind": "Site",
        "charts": "charts",
        "registry": {
            "host": REGISTRY,
            "mapping": "mapping.json",
            "caFile": "registry-ca.pem",
            "pullSecret": "internal-registry",
        },
        "storage": {"class": "manual"},
        "nodes": {"image": BUSYBOX, **nodes},
    }
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def lab(tmp_path: Path) -> NodesSite:
    from tests.stack import pki

    site = load_site(write_site(tmp_path))
    ca = pki.fulcio_root(pki.ec_key(), common_name="lab registry CA")
    (tmp_path / "registry-ca.pem").write_bytes(pki.cert_pem(ca))
    write_mapping(tmp_path / "mapping.json", BUSYBOX, f"{REGISTRY}/carried/busybox", DIGEST)
    files = write_trust_dir(site, tmp_path / "trust")
    return NodesSite(site, load_mapping(site.registry.mapping), tmp_path / "trust", files)
