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

`build_inventory` makes one from a target: `REGISTRY[/PREFIX]` (the repositories from the
catalog API, or the ones named when the registry has no catalog; in each, every tag, every
manifest reachable from a tag, index children and referrers included, cosign's tags being tags,
and every blob those manifests reference, with its size), or `oci:DIR` (every manifest the
layout's index.json lists, and what they reach). `parse_target` reads the target syntax shared
with `airgap bundle import`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.inputs import read_input
from offline.oci.digests import is_digest
from offline.oci.imageref import LAYOUT_PREFIX, is_valid_repository
from offline.oci.layout import OCILayout
from offline.oci.manifest import MANIFEST_MEDIA_TYPES, NotFound
from offline.oci.sources import RegistryOptions, Sources
from offline.oci.store import ImageSource
from provisioner.bundle.manifest import format_created

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
            },
            ascii_only=False,
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


# ---------------------------------------------------------------------------------- targets
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


@dataclass(frozen=True)
class Target:
    """Where images go (import) or what is looked at (inventory): a registry with an optional
    repository prefix, or an OCI image layout directory."""

    registry: str | None = None
    prefix: str = ""
    layout: Path | None = None

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    def repository_for(self, source_repository: str) -> str:
        """The target repository of a source repository path (its registry host dropped):
        `sigstore/fulcio` under the prefix `mirror` is `mirror/sigstore/fulcio`."""
        return "/".join(part for part in (self.prefix, source_repository) if part)

    def __str__(self) -> str:
        if self.layout is not None:
            return f"{LAYOUT_PREFIX}{self.layout}"
        return "/".join(part for part in (self.registry or "", self.prefix) if part)


def parse_target(text: str) -> Target:
    """`REGISTRY[/PREFIX]` (e.g. `registry.internal:5000/mirror`) or `oci:DIR`."""
    if text.startswith(LAYOUT_PREFIX):
        directory = text[len(LAYOUT_PREFIX) :]
        if not directory:
            raise UsageError(f"target {text!r} names no directory (oci:DIR)")
        return Target(layout=Path(directory))
    if "://" in text:
        raise UsageError(
            f"target {text!r}: give REGISTRY[/PREFIX] without a scheme "
            "(HTTPS is the default; plain HTTP is a registry option)"
        )
    host, _, prefix = text.strip().partition("/")
    prefix = prefix.strip("/")
    if not host or _HOST.fullmatch(host) is None:
        raise UsageError(f"target {text!r}: {host!r} is not a registry host[:port]")
    if prefix and not is_valid_repository(prefix):
        raise UsageError(
            f"target {text!r}: prefix {prefix!r} is not a repository path "
            "(lower-case letters, digits and . _ - between them, / between parts)"
        )
    return Target(registry=host, prefix=prefix)


# ----------------------------------------------------------------------------- building it
def build_inventory(
    target: str | Target,
    options: RegistryOptions | None = None,
    *,
    repositories: Sequence[str] | None = None,
) -> Inventory:
    """What `target` holds now. For a registry, the repositories come from its catalog (under
    the prefix), or are the full names given in `repositories` (for registries without the
    catalog API); a named repository that does not exist is an error."""
    where = parse_target(target) if isinstance(target, str) else target
    blobs: dict[str, int] = {}
    manifests: set[str] = set()
    if where.layout is not None:
        layout = OCILayout(where.layout)
        _walk(layout, [e.digest for e in layout.entries()], blobs, manifests, True)
        return Inventory(registry=str(where), blobs=blobs, manifests=frozenset(manifests))
    assert where.registry is not None
    # Imported here: the catalog is only for this (and import's mount search).
    from provisioner.copy.catalog import list_repositories

    with Sources(options) as sources:
        registry = sources.registry(where.registry)
        names = (
            list(repositories)
            if repositories is not None
            else list_repositories(registry, prefix=where.prefix)
        )
        referrers_api: bool | None = None
        for name in names:
            repository = registry.repository(name)
            try:
                tags = repository.list_tags()
            except NotFound:
                if repositories is None:
                    continue  # listed by the catalog, emptied since
                raise UsageError(
                    f"registry {where.registry} has no repository {name!r} to inventory"
                ) from None
            roots = []
            for tag in sorted(tags):
                descriptor = repository.resolve_optional(tag)
                if descriptor is not None:
                    roots.append(descriptor.digest)
            if roots and referrers_api is None:
                referrers_api = repository.has_referrers_api(roots[0])
            # Without the referrers API, referrers are listed under fallback tags, which are
            # tags like any other: asking for them per manifest would only repeat that.
            _walk(repository, roots, blobs, manifests, bool(referrers_api))
    return Inventory(
        registry=where.registry,
        prefix=where.prefix,
        blobs=blobs,
        manifests=frozenset(manifests),
    )


def _walk(
    source: ImageSource,
    roots: Iterable[str],
    blobs: dict[str, int],
    manifests: set[str],
    ask_referrers: bool,
) -> None:
    """Every manifest reachable from `roots` in one repository (index children, referrers),
    into `manifests`, and the blobs they reference into `blobs`."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            manifest = source.fetch_manifest(digest)
        except NotFound:
            continue  # an index child the store does not hold (a platform filtered out)
        manifests.add(digest)
        for child in manifest.children():
            if manifest.is_index and child.media_type in MANIFEST_MEDIA_TYPES:
                pending.append(child.digest)
            else:
                blobs[child.digest] = child.size
        if ask_referrers:
            pending.extend(d.digest for d in source.referrers(digest).descriptors)
