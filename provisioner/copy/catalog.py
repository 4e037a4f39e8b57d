"""The repositories a registry holds, from its catalog API (`GET /v2/_catalog`).

    names = list_repositories(registry, prefix="mirror")   # ["mirror/sigstore/fulcio", ...]

The catalog is optional in the distribution spec: many registries (Docker Hub, GHCR, Harbor
without admin rights) leave it out or refuse it. That is a `CatalogUnavailable` error saying to
name the repositories instead. Pages are followed through `Link: <...>; rel="next"`; a page
without a Link is the last one (go-containerregistry's registry answers everything at once and
ignores `last=`, so guessing further pages would only repeat names).

Kept apart from offline/oci/registry.py: listing a whole registry is the operator's business (the
inventory, finding a repository to mount a blob from), never the verifier's.
"""

from __future__ import annotations

from offline.oci.registry import Registry
from offline.oci.registry_http import Pages, RegistryAuthError, RegistryError


class CatalogUnavailable(RegistryError):
    """The registry does not list its repositories (no catalog API, or not for us)."""


def list_repositories(
    registry: Registry, *, prefix: str = "", page_size: int | None = None
) -> list[str]:
    """Every repository name of `registry` (under `prefix`, when given), in catalog order."""
    transport = registry.transport
    what = "listing repositories (the catalog API)"
    params = {"n": str(page_size)} if page_size else None
    url: str | None = transport.url("/v2/_catalog", params)
    pages = Pages(transport, "", what)
    names: list[str] = []
    seen: set[str] = set()
    while url is not None:
        pages.visit(url)
        try:
            response = transport.request(
                "GET", url, what=what, repository="", scopes=("registry:catalog:*",)
            )
        except RegistryAuthError as exc:
            raise _unavailable(registry, str(exc)) from None
        with response:
            if response.status_code in (401, 403, 404, 405):
                raise _unavailable(registry, f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise transport.error(response, "", what)
            pages.count(response)
            try:
                document = response.json()
            except (ValueError, RecursionError):
                raise RegistryError(transport.message("", what, "the answer is not JSON")) from None
            link = response.links.get("next", {}).get("url")
        page = document.get("repositories") if isinstance(document, dict) else None
        if page is None:
            page = []
        if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
            raise RegistryError(transport.message("", what, "repositories is not a string list"))
        for name in page:
            if name not in seen and _under(name, prefix):
                seen.add(name)
                names.append(name)
        url = transport.url(link) if link else None
    return names


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix.rstrip("/") + "/")


def _unavailable(registry: Registry, reason: str) -> CatalogUnavailable:
    return CatalogUnavailable(
        f"registry {registry.host} does not list its repositories ({reason}): name the "
        "repositories to look at instead"
    )
