"""Building bundles in tests: a spec file written from Python, an operator key, and a source
registry holding a realistic image graph (tests/image_graphs.py)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from offline.oci.sources import RegistryOptions
from provisioner.bundle.signing import PrivateKey, generate_key, load_private_key
from provisioner.bundle.spec import load_spec
from provisioner.copy.inventory import Inventory
from provisioner.create.create import CreateResult, create_bundle
from tests.image_graphs import Graph, populate
from tests.registries import TEST_RETRY, RegistryServer


@dataclass
class SourceImage:
    reference: str  # host/repo:tag
    graph: Graph


def unique_repository(request: Any, suffix: str) -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = "-".join(part for part in name.split("-") if part)[:80].rstrip("-")
    return f"bundles/{name}-{suffix}"


def push_graph(
    server: RegistryServer, repository: str, rng: random.Random, tag: str = "v1"
) -> SourceImage:
    with server.client() as registry:
        graph = populate(registry.repository(repository), rng, tag)
    return SourceImage(f"{server.host}/{repository}:{tag}", graph)


def registry_options(*servers: RegistryServer) -> RegistryOptions:
    """Options reaching the test registries (their CA; plain HTTP where they use it)."""
    ca = next((s.ca.ca_cert for s in servers if s.ca is not None), None)
    return RegistryOptions(
        credentials={s.host: s.credentials for s in servers if s.credentials is not None},
        ca_bundle=ca,
        insecure_http_hosts=frozenset(s.host for s in servers if not s.tls),
        retry=TEST_RETRY,
    )


def write_spec(path: Path, **fields: Any) -> Path:
    document = {"apiVersion": "airgap.dev/v1", "kind": "BundleSpec", "name": "test", **fields}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def operator_key(directory: Path) -> tuple[Path, PrivateKey]:
    private = directory / "operator.key"
    public = generate_key(private, "ecdsa-p256")
    return public, load_private_key(private)


def create(
    spec_path: Path,
    out: Path,
    key: PrivateKey,
    options: RegistryOptions,
    since: Inventory | None = None,
    warnings: list[str] | None = None,
    helm: str | None = None,
) -> CreateResult:
    return create_bundle(
        load_spec(spec_path),
        out,
        signing_key=key,
        options=options,
        since=since,
        helm=helm,
        warn=None if warnings is None else warnings.append,
    )
