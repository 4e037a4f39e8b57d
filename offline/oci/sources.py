"""From what a user typed to an image pinned by digest in the store that holds it.

    with Sources(RegistryOptions(ca_bundle="ca.pem")) as sources:
        image = sources.resolve("registry.internal/app:v1")   # or "oci:/media/bundle:app-v1"
        image.source.fetch_manifest(image.descriptor.digest)

The tag is looked up once here; `image.ref` carries the digest from then on.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from offline.errors import UsageError
from offline.oci.imageref import (
    ImageRef,
    LayoutRef,
    is_valid_registry,
    is_valid_repository,
    normalize_registry,
    parse_reference,
)
from offline.oci.manifest import Descriptor
from offline.oci.store import ImageSource
from offline.record import Record

# A registry's client (http.client, ssl) and a layout's code are imported by the first image
# that needs them: verifying an oci: layout reaches no registry, and the reverse.
if TYPE_CHECKING:
    from offline.oci.layout import OCILayout
    from offline.oci.registry import Registry, Repository
    from offline.oci.registry_auth import Credentials
    from offline.oci.registry_http import RetryPolicy, Timeouts


class RegistryOptions(Record):
    __slots__ = ("ca_bundle", "credentials", "insecure_http_hosts", "mirrors", "retry", "timeouts")

    def __init__(
        self,
        credentials: Mapping[str, Credentials] | None = None,
        ca_bundle: str | Path | None = None,
        insecure_http_hosts: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        mirrors: Mapping[str, str] | None = None,
    ) -> None:
        # Credentials by registry host: each host gets its own, never another's. Hosts not named
        # here use the environment's (for AIRGAP_REGISTRY_HOST) or their docker config entry.
        self.credentials = {} if credentials is None else credentials
        self.ca_bundle = ca_bundle
        # Hosts reached over plain HTTP; everything else is HTTPS.
        self.insecure_http_hosts = insecure_http_hosts
        self.retry = retry
        self.timeouts = timeouts
        # Where to fetch the images of a registry from instead, by its host:
        # `host[:port][/prefix]` (a pull-through cache or a copy of it). Images keep their
        # names; digests are checked as for any registry, so a mirror can serve only the bytes
        # a digest names.
        self.mirrors = {} if mirrors is None else mirrors


def parse_mirror(text: str) -> tuple[str, str]:
    """`UPSTREAM=MIRROR[/PREFIX]` (e.g. `ghcr.io=mirror.internal:5000/ghcr`) as a pair."""
    upstream, sep, mirror = text.partition("=")
    host, _, prefix = mirror.partition("/")
    if not sep or not is_valid_registry(upstream) or not is_valid_registry(host):
        raise UsageError(
            f"registry mirror {text!r}: expected UPSTREAM=MIRROR[/PREFIX], "
            "e.g. ghcr.io=mirror.internal:5000/ghcr"
        )
    if prefix and not is_valid_repository(prefix):
        raise UsageError(f"registry mirror {text!r}: {prefix!r} is not a repository path")
    return normalize_registry(upstream), f"{host}/{prefix}" if prefix else host


class ResolvedImage(Record):
    __slots__ = ("descriptor", "ref", "source")

    def __init__(
        self, ref: ImageRef | LayoutRef, source: ImageSource, descriptor: Descriptor
    ) -> None:
        self.ref = ref
        self.source = source
        self.descriptor = descriptor

    @property
    def digest(self) -> str:
        return self.descriptor.digest


class Sources:
    """Registry clients by host (sharing connections and tokens) and layouts by directory."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self._registries: dict[str, Registry] = {}
        self._layouts: dict[Path, OCILayout] = {}
        self._lock = threading.Lock()

    def registry(self, host: str) -> Registry:
        with self._lock:
            if host not in self._registries:
                from offline.oci.registry import Registry

                self._registries[host] = Registry(
                    host,
                    credentials=self.options.credentials.get(host),
                    ca_bundle=self.options.ca_bundle,
                    insecure_http=host in self.options.insecure_http_hosts,
                    http_hosts=self.options.insecure_http_hosts,
                    retry=self.options.retry,
                    timeouts=self.options.timeouts,
                )
            return self._registries[host]

    def repository(self, ref: ImageRef) -> Repository:
        mirror = self.options.mirrors.get(ref.registry)
        if mirror is None:
            return self.registry(ref.registry).repository(ref.repository)
        host, _, prefix = mirror.partition("/")
        return self.registry(host).repository(f"{prefix}/{ref.repository}".lstrip("/"))

    def list_tags_once(self, references: Sequence[ImageRef]) -> None:
        """Many images of one repository in this run: its tags are listed once, not probed for
        cosign's tags image by image (a listing the registry refuses falls back to probing)."""
        repositories = [self.repository(r) for r in references]
        counts = Counter((r.registry.host, r.name) for r in repositories)
        for repository in repositories:
            if counts[repository.registry.host, repository.name] > 1:
                repository.registry.listed_repositories.add(repository.name)

    def layout(self, path: Path) -> OCILayout:
        with self._lock:
            if path not in self._layouts:
                from offline.oci.layout import OCILayout

                self._layouts[path] = OCILayout(path)
            return self._layouts[path]

    def resolve(self, reference: str | ImageRef | LayoutRef) -> ResolvedImage:
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if isinstance(ref, LayoutRef):
            layout = self.layout(ref.path)
            descriptor = layout.resolve(ref.ref) if ref.ref else layout.resolve_default()
            return ResolvedImage(ref, layout, descriptor)
        repository = self.repository(ref)
        descriptor = repository.resolve(ref.reference)
        return ResolvedImage(ref.with_digest(descriptor.digest), repository, descriptor)

    def close(self) -> None:
        for registry in self._registries.values():
            registry.close()

    def __enter__(self) -> Sources:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
