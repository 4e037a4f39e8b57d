"""What a target registry already holds: the input of a delta bundle.

    airgap bundle inventory --registry registry.internal:5000 -o site.inventory.json
    airgap bundle create bundles/stack.yaml -o update --since site.inventory.json

The file (`airgap-inventory/v1`, canonical JSON) lists the digests of every blob (layers and
configs) and every manifest reachable from the tags of the registry's repositories:

    {"format": "airgap-inventory/v1", "created": "2026-11-22T05:00:00Z",
     "registry": "registry.internal:5000", "prefix": "",
     "blobs": {"sha256:...": 1234, ...}, "manifests": ["sha256:...", ...]}

Blob sizes are kept so a delta bundle can record what it left out. The inventory is not secret
and not signed: a wrong one can only make a delta bundle that import refuses (it checks every
left-out blob is on the target before pushing anything that needs it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.digests import is_digest
from offline.errors import UsageError
from offline.inputs import read_input
from provisioner.bundle_manifest import canonical_json, format_created

FORMAT = "airgap-inventory/v1"


@dataclass(frozen=True)
class Inventory:
    registry: str
    prefix: str = ""
    blobs: dict[str, int] = field(default_factory=dict, hash=False)
    manifests: frozenset[str] = frozenset()
    created: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": FORMAT,
                "created": format_created(self.created),
                "registry": self.registry,
                "prefix": self.prefix,
                "blobs": dict(sorted(self.blobs.items())),
                "manifests": sorted(self.manifests),
            }
        )

    def write(self, path: str | Path) -> None:
        atomic_write(Path(path), self.to_bytes())


def load_inventory(path: str | Path) -> Inventory:
    where = f"inventory {path}"
    try:
        document = json.loads(read_input(path, "inventory"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where} is not valid JSON ({exc})") from None
    return parse_inventory(document, where)


def parse_inventory(document: Any, where: str) -> Inventory:
    if not isinstance(document, dict):
        raise UsageError(f"{where} is not a JSON object")
    if document.get("format") != FORMAT:
        raise UsageError(f"{where}: format is {document.get('format')!r}, expected {FORMAT!r}")
    registry, prefix = document.get("registry"), document.get("prefix", "")
    if not isinstance(registry, str) or not isinstance(prefix, str):
        raise UsageError(f"{where}: registry and prefix must be strings")
    blobs, manifests = document.get("blobs"), document.get("manifests")
    if not isinstance(blobs, dict) or not isinstance(manifests, list):
        raise UsageError(f"{where}: blobs must be an object and manifests a list")
    for digest, size in blobs.items():
        if not is_digest(digest) or not isinstance(size, int) or size < 0:
            raise UsageError(f"{where}: blob entry {digest!r}: {size!r} is malformed")
    for digest in manifests:
        if not isinstance(digest, str) or not is_digest(digest):
            raise UsageError(f"{where}: manifest {digest!r} is not a sha256 digest")
    try:
        created = datetime.strptime(str(document.get("created")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise UsageError(f"{where}: created is not a UTC time like 2026-01-01T00:00:00Z") from None
    return Inventory(
        registry=registry,
        prefix=prefix,
        blobs=dict(blobs),
        manifests=frozenset(manifests),
        created=created.replace(tzinfo=UTC),
    )
