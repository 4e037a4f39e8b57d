"""The registry client: one `Registry` per host (connection, TLS, auth, retries), one
`Repository` per repository, which is an `ImageSource` and an `ImageSink` (offline.oci.manifest).

    registry = Registry("registry.internal:5000", ca_bundle="ca.pem")
    repo = registry.repository("team/app")
    image = repo.resolve("v1.2")                # the tag, resolved once
    manifest = repo.fetch_manifest(image.digest)  # everything after uses the digest

Reads check every manifest against its digest and stream blobs with their digest and size
checked; writes check content before it counts. Errors are one line naming the registry, the
repository and what failed.

Why one module of some 550 lines: `Repository` is one class, the distribution API's endpoints
for one repository (manifests, blobs, tags, referrers, with the fallback tag scheme), and each
method is short. What has a concern of its own is already apart: the transport with its
retries and token flow (registry_http), credentials (registry_auth), chunked and mounted
uploads (registry_upload), resumable downloads (registry_download). Cutting the class itself
would only scatter one interface over several files.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast
from urllib.parse import quote

from offline.debuglog import debug
from offline.errors import AirgapError, UsageError
from offline.http_body import BodyTooLarge, read_body
from offline.oci.blobstream import BlobReader, CheckedStream
from offline.oci.digests import (
    COSIGN_SUFFIXES,
    DigestMismatch,
    cosign_tag,
    fallback_tag,
    is_digest,
    sha256_digest,
    validate_digest,
)
from offline.oci.http_client import Headers, Response
from offline.oci.imageref import is_valid_repository, is_valid_tag
from offline.oci.manifest import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    Manifest,
    NotFound,
    Referrers,
    check_manifest,
    complete_referrers,
    cosign_attachments_by_tag,
    parse_manifest_json,
    referrer_descriptor,
)
from offline.oci.referrers import fallback_descriptors, filter_artifact_type, with_referrers
from offline.oci.registry_auth import Credentials
from offline.oci.registry_download import ResumableBody
from offline.oci.registry_http import (
    Pages,
    RegistryError,
    RetryPolicy,
    Timeouts,
    Transport,
)

if TYPE_CHECKING:
    # Uploads load on the first push: a verify never pays for them.
    from offline.oci import registry_upload

_MANIFEST_CACHE_SIZE = 256
# How often to re-merge the fallback index when another writer raced us.
_FALLBACK_ATTEMPTS = 4


class Registry:
    """One registry host. Repositories made from it share its connections and tokens."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        ca_bundle: str | Path | None = None,
        insecure_http: bool = False,
        http_hosts: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`credentials` are this host's (never sent elsewhere); `http_hosts` are the hosts
        allowed plain HTTP, which a token service on another host may be on."""
        self.host = host
        # Learnt on the first referrer push: None until then.
        self.referrers_api: bool | None = None
        # Repositories whose tags are listed once (many of their images are read in one run)
        # rather than probed per image for cosign's tags; the listing, once taken (None: the
        # registry would not list them, so each image probes as usual).
        self.listed_repositories: set[str] = set()
        self._tag_listings: dict[str, frozenset[str] | None] = {}
        self._listing_lock = threading.Lock()
        self.transport = Transport(
            host,
            credentials=credentials,
            ca_bundle=ca_bundle,
            insecure_http=insecure_http,
            http_hosts=http_hosts,
            retry=retry,
            timeouts=timeouts,
            environ=environ,
        )

    def repository(self, name: str) -> Repository:
        return Repository(self, name)

    def tag_listing(self, repository: Repository) -> frozenset[str] | None:
        """The tags of `repository` as listed once in this run, for one of
        `listed_repositories`; None for any other, or when the registry refuses the listing."""
        if repository.name not in self.listed_repositories:
            return None
        with self._listing_lock:
            if repository.name not in self._tag_listings:
                try:
                    listing: frozenset[str] | None = frozenset(repository.list_tags())
                except AirgapError:
                    listing = None
                self._tag_listings[repository.name] = listing
            return self._tag_listings[repository.name]

    def ping(self) -> None:
        """GET /v2/: the registry answers and accepts our credentials (or needs none)."""
        response = self.transport.request(
            "GET", self.transport.url("/v2/"), what="checking the API", repository="", scopes=()
        )
        with response:
            if response.status_code != 200:
                raise self.transport.error(response, "", "checking the API")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Repository:
    """One repository of a registry: a `Store` (offline.oci.store) that can also mount blobs,
    push a blob known to be absent, and probe for the referrers API."""

    def __init__(self, registry: Registry, name: str) -> None:
        if not is_valid_repository(name):
            raise UsageError(f"invalid repository name {name!r}")
        self.registry = registry
        self.name = name
        self._t = registry.transport
        self._pull = (f"repository:{name}:pull",)
        self._push = (f"repository:{name}:pull,push",)
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"{self.registry.host}/{self.name}"

    def _url(self, kind: str, reference: str = "") -> str:
        return self._t.url(f"/v2/{self.name}/{kind}/{quote(reference, safe=':')}")

    def _request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        push: bool = False,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: bool = False,
    ) -> Response:
        return self._t.request(
            method,
            url,
            what=what,
            repository=self.name,
            scopes=self._push if push else self._pull,
            headers=headers,
            body=body,
            stream=stream,
        )

    def _error(self, response: Response, what: str) -> RegistryError:
        return self._t.error(response, self.name, what)

    # ------------------------------------------------------------------------- manifests
    def resolve(self, reference: str) -> Descriptor:
        descriptor = self.resolve_optional(reference)
        if descriptor is None:
            raise NotFound(
                self._t.message(self.name, f"resolving {reference}", "no such tag or manifest")
            )
        return descriptor

    def resolve_optional(self, reference: str) -> Descriptor | None:
        """The manifest a tag names now (by fetching it and hashing what came), or a digest's."""
        if is_digest(reference):
            manifest = self._get_manifest(reference, reference)
        else:
            _check_tag(reference)
            manifest = self._get_manifest(reference, None)
        return manifest.descriptor if manifest is not None else None

    def fetch_manifest(self, digest: str) -> Manifest:
        validate_digest(digest)
        manifest = self._get_manifest(digest, digest)
        if manifest is None:
            raise NotFound(
                self._t.message(self.name, f"fetching manifest {digest}", "no such manifest")
            )
        return manifest

    def _get_manifest(self, reference: str, digest: str | None) -> Manifest | None:
        with self._lock:
            if digest is not None and digest in self._manifests:
                self._manifests.move_to_end(digest)
                return self._manifests[digest]
        what = f"fetching manifest {reference}" if digest else f"resolving {reference}"
        response = self._request(
            "GET",
            self._url("manifests", reference),
            what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._error(response, what)
            try:
                raw = read_body(response, MAX_MANIFEST_SIZE)
            except BodyTooLarge as exc:
                raise RegistryError(self._t.message(self.name, what, str(exc))) from None
        declared = response.headers.get("Content-Type", "").split(";")[0].strip() or None
        # A tag's digest is what we received: hashing it ourselves is the resolution.
        manifest = check_manifest(raw, digest or sha256_digest(raw), self.location, declared)
        with self._lock:
            self._manifests[manifest.digest] = manifest
            while len(self._manifests) > _MANIFEST_CACHE_SIZE:
                self._manifests.popitem(last=False)
        return manifest

    def manifest_exists(self, digest: str) -> bool:
        what = f"checking manifest {digest}"
        response = self._request(
            "HEAD",
            self._url("manifests", validate_digest(digest)),
            what,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        with response:
            if response.status_code == 404:
                return False
            if response.status_code != 200:
                raise self._error(response, what)
            return True

    # ------------------------------------------------------------------------------ blobs
    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        validate_digest(digest)
        what = f"fetching blob {digest}"
        response = self._blob_response(digest, 0, size)
        length = response.headers.get("Content-Length")
        if size is not None and length is not None and length.isdigit() and int(length) != size:
            response.close()
            raise DigestMismatch(
                self._t.message(
                    self.name,
                    what,
                    f"the registry sends {length} bytes, the descriptor says {size}",
                )
            )
        body = ResumableBody(
            response,
            lambda offset: self._blob_response(digest, offset, size),
            self._t.retry.attempts,
            lambda reason: self._t.message(self.name, what, reason),
        )
        return BlobReader(body, digest, size, self.location)

    def _blob_response(self, digest: str, offset: int, size: int | None) -> Response:
        """The blob from `offset` on (206), or whole (200) when the registry cannot do ranges."""
        what = f"fetching blob {digest}"
        # Identity: a transfer encoding would change the bytes we hash.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            # With the end: some registries (go-containerregistry) reject an open range.
            headers["Range"] = f"bytes={offset}-{size - 1 if size else ''}"
        response = self._request(
            "GET", self._url("blobs", digest), what, headers=headers, stream=True
        )
        if response.status_code == 416 and offset:
            response.close()
            return self._blob_response(digest, 0, size)
        if response.status_code == 404:
            response.close()
            raise NotFound(self._t.message(self.name, what, "no such blob"))
        if response.status_code not in (200, 206) or (response.status_code == 206 and not offset):
            error = self._error(response, what)
            response.close()
            raise error
        if response.status_code == 206 and not response.headers.get("Content-Range", "").startswith(
            f"bytes {offset}-"
        ):
            response.close()
            raise RegistryError(
                self._t.message(self.name, what, f"a resumed download did not start at {offset}")
            )
        return response

    def blob_exists(self, digest: str) -> bool:
        what = f"checking blob {digest}"
        response = self._request(
            "HEAD", self._url("blobs", validate_digest(digest)), what, push=False
        )
        with response:
            if response.status_code == 404:
                return False
            if response.status_code != 200:
                raise self._error(response, what)
            return True

    def push_blob(
        self,
        data: bytes | IO[bytes],
        digest: str,
        size: int,
        *,
        chunk_size: int | None = None,
        checked_absent: bool = False,
    ) -> None:
        """Upload a blob unless the registry has it (`checked_absent`: the caller just asked,
        spare the second request). Bytes, and streams no larger than `chunk_size`, go in one
        PUT; larger streams in chunks of `chunk_size` (default 16 MiB; memory stays at one
        chunk). The content is checked against `digest` and `size` before it is committed."""
        validate_digest(digest)
        if not checked_absent and self.blob_exists(digest):
            return
        from offline.oci import registry_upload

        chunk = registry_upload.CHUNK_SIZE if chunk_size is None else chunk_size
        registry_upload.upload(self._uploader(), data, digest, size, chunk)

    def push_absent_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        """`push_blob` of a blob `blob_exists` just said is absent: no second HEAD."""
        self.push_blob(data, digest, size, checked_absent=True)

    def push_checked_blob(
        self, data: CheckedStream, digest: str, size: int, *, checked_absent: bool = False
    ) -> None:
        """`push_blob` of a stream that checks its own digest and size as it is read (a
        BlobReader, seekable or not): a streamed upload does not hash it again, and commits
        only once the stream says it verified."""
        validate_digest(digest)
        if not checked_absent and self.blob_exists(digest):
            return
        from offline.oci import registry_upload

        stream = cast(IO[bytes], data)
        chunk = registry_upload.CHUNK_SIZE
        registry_upload.upload(self._uploader(), stream, digest, size, chunk, checked=data)

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob from another repository without copying it; False
        when it would not (the caller then uploads)."""
        from offline.oci import registry_upload

        return registry_upload.mount(self._uploader(from_repository), digest, from_repository)

    def _uploader(self, from_repository: str | None = None) -> registry_upload.Uploader:
        from offline.oci import registry_upload

        scopes = self._push + ((f"repository:{from_repository}:pull",) if from_repository else ())
        return registry_upload.Uploader(self._t, self.name, scopes)

    # ------------------------------------------------------------------------- tags, lists
    def list_tags(self, page_size: int | None = None) -> list[str]:
        """Every tag, page by page (`Link: rel="next"`; for registries that leave the header
        out, a full page is followed by `last=`)."""
        what = "listing tags"
        tags: list[str] = []
        params = {"n": str(page_size)} if page_size else None
        url: str | None = self._t.url(f"/v2/{self.name}/tags/list", params)
        pages = Pages(self._t, self.name, what)
        known: set[str] = set()
        while url is not None:
            document, link, _ = self._get_page(url, what, pages)
            page = document.get("tags") or []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(self._t.message(self.name, what, "tags is not a string list"))
            new = [t for t in dict.fromkeys(page) if t not in known]
            known.update(new)
            tags.extend(new)
            if link:
                url = link
            elif page_size and len(page) >= page_size and new:
                url = self._t.url(
                    f"/v2/{self.name}/tags/list", {"n": str(page_size), "last": page[-1]}
                )
            else:
                url = None
        return tags

    def _get_page(
        self, url: str, what: str, pages: Pages, headers: Mapping[str, str] | None = None
    ) -> tuple[dict[str, object], str | None, Headers]:
        """One page of a paginated JSON list, the URL of the next page if the registry gave
        one (`Link: <...>; rel="next"`), and the response headers."""
        pages.visit(url)
        response = self._request("GET", url, what, headers=headers)
        with response:
            if response.status_code == 404:
                raise NotFound(self._t.message(self.name, what, "no such repository"))
            if response.status_code != 200:
                raise self._error(response, what)
            pages.count(response)
            try:
                document = response.json()
            except (ValueError, RecursionError):
                raise RegistryError(
                    self._t.message(self.name, what, "the answer is not JSON")
                ) from None
            link = response.links.get("next", {}).get("url")
        if not isinstance(document, dict):
            raise RegistryError(self._t.message(self.name, what, "the answer is not an object"))
        return document, self._t.url(link) if link else None, response.headers

    # ----------------------------------------------------------------------------- referrers
    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        """Manifests whose subject is `digest`: through the referrers API, or, on a registry
        without it (404), through the fallback tag `sha256-<hex>`."""
        validate_digest(digest)
        what = f"listing referrers of {digest}"
        params = {"artifactType": artifact_type} if artifact_type else None
        url = self._t.url(f"/v2/{self.name}/referrers/{digest}", params)
        accept = {"Accept": OCI_INDEX}
        pages = Pages(self._t, self.name, what)
        try:
            document, next_url, headers = self._get_page(url, what, pages, accept)
        except NotFound:
            # No referrers API (or no such repository): the spec's fallback tag.
            tag = self.resolve_optional(fallback_tag(digest))
            index = self.fetch_manifest(tag.digest) if tag is not None else None
            found = complete_referrers(self, fallback_descriptors(index, digest))
            return Referrers(digest, filter_artifact_type(found, artifact_type), "fallback-tag")
        # A registry that ignored the filter says so by leaving out OCI-Filters-Applied.
        filtered = "artifactType" in headers.get("OCI-Filters-Applied", "")
        descriptors: list[Descriptor] = []
        while True:
            entries = document.get("manifests") or []
            if not isinstance(entries, list):
                raise RegistryError(self._t.message(self.name, what, "manifests is not a list"))
            descriptors.extend(Descriptor.from_json(e, f"{self.location} {what}") for e in entries)
            if next_url is None:
                break
            document, next_url, _ = self._get_page(next_url, what, pages, accept)
        descriptors = complete_referrers(self, descriptors)
        if filtered:
            return Referrers(digest, tuple(descriptors), "api")
        return Referrers(digest, filter_artifact_type(descriptors, artifact_type), "api")

    def has_referrers_api(self, digest: str) -> bool:
        """Whether the registry serves the referrers API (asked once per registry).

        Some registries with the API do not answer a push with `OCI-Subject` (go-containerregistry,
        older Harbor); like oras-go, we then ask the API itself rather than keep a fallback tag
        that nobody would read (readers use the API whenever it answers).
        """
        if self.registry.referrers_api is None:
            what = "probing the referrers API"
            url = self._t.url(f"/v2/{self.name}/referrers/{validate_digest(digest)}")
            response = self._request("GET", url, what, headers={"Accept": OCI_INDEX})
            with response:
                if response.status_code not in (200, 404):
                    raise self._error(response, what)
                self.registry.referrers_api = response.status_code == 200
        return self.registry.referrers_api

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        """cosign's legacy tags of `digest` that exist; a missing tag is absent, an error
        raises (so "unsigned" and "could not look" are never confused). In a repository whose
        tags this run listed, the listing says which exist (each of those is then resolved,
        and one gone since is an error); otherwise each tag is asked for."""
        listing = self.registry.tag_listing(self)
        if listing is None:
            return cosign_attachments_by_tag(self.resolve_optional, digest)
        return {
            suffix: self.resolve(tag)
            for suffix in COSIGN_SUFFIXES
            if (tag := cosign_tag(digest, suffix)) in listing
        }

    # ------------------------------------------------------------------------- writes
    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        """PUT a manifest under `reference` (a tag; by default its own digest)."""
        descriptor, _ = self._put_manifest(raw, media_type, reference)
        return descriptor

    def _put_manifest(
        self, raw: bytes, media_type: str, reference: str | None
    ) -> tuple[Descriptor, Headers]:
        digest = sha256_digest(raw)
        _check_declared_type(raw, digest, media_type)
        if reference is None:
            reference = digest
        elif is_digest(reference):
            if reference != digest:
                raise DigestMismatch(
                    f"{self.location}: manifest to push has digest {digest}, not {reference}"
                )
        else:
            _check_tag(reference)
        what = f"pushing manifest {reference}"
        response = self._request(
            "PUT",
            self._url("manifests", reference),
            what,
            push=True,
            headers={"Content-Type": media_type},
            body=raw,
        )
        with response:
            if response.status_code not in (200, 201):
                raise self._error(response, what)
            stored = response.headers.get("Docker-Content-Digest")
            if stored and stored != digest:
                raise DigestMismatch(
                    self._t.message(self.name, what, f"the registry stored it as {stored}")
                )
            headers = response.headers
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(raw))
        with self._lock:
            self._manifests.pop(digest, None)
        return descriptor, headers

    def push_referrer(self, raw: bytes, media_type: str, *, pushed: bool = False) -> Descriptor:
        """Push a manifest that has a `subject`, so that `referrers(subject)` lists it
        (`pushed`: the caller put it in this repository already, by digest; only its listing
        is left to write).

        A registry that processed the subject says so (`OCI-Subject`) or serves the referrers
        API; otherwise the manifest is added to the subject's fallback-tag index, which is read
        back to be sure a concurrent writer did not drop it (registries ignore If-Match)."""
        return self.push_referrers([(raw, media_type)], pushed=pushed)[0]

    def push_referrers(
        self, manifests: Sequence[tuple[bytes, str]], *, pushed: bool = False
    ) -> list[Descriptor]:
        """`push_referrer` of several manifests (raw, media type): those of one subject are
        added to its fallback-tag index in one write, read back once."""
        unlisted: dict[str, list[Descriptor]] = {}
        descriptors: list[Descriptor] = []
        for raw, media_type in manifests:
            digest = sha256_digest(raw)
            manifest = check_manifest(raw, digest, self.location, media_type)
            subject = manifest.subject()
            if subject is None:
                raise UsageError(f"manifest {digest} has no subject: it cannot be a referrer")
            listed = referrer_descriptor(manifest)
            descriptors.append(listed)
            processed = False
            if not pushed:
                _, headers = self._put_manifest(raw, media_type, None)
                processed = headers.get("OCI-Subject") == subject.digest
            if not processed:
                unlisted.setdefault(subject.digest, []).append(listed)
        for subject_digest, listed_ones in unlisted.items():
            if not self.has_referrers_api(subject_digest):
                self._list_in_fallback(subject_digest, listed_ones)
        return descriptors

    def _list_in_fallback(self, subject: str, listed: list[Descriptor]) -> None:
        tag = fallback_tag(subject)
        names = ", ".join(d.digest for d in listed)
        debug(
            __name__, "%s: no referrers API; listing %s under the tag %s", self.location, names, tag
        )
        for _attempt in range(_FALLBACK_ATTEMPTS):
            current = self.resolve_optional(tag)
            index = self.fetch_manifest(current.digest) if current is not None else None
            updated = with_referrers(index, listed)
            if updated is None:  # every one listed, as read back
                return
            self.push_manifest(updated, OCI_INDEX, tag)
        raise RegistryError(
            self._t.message(
                self.name, f"listing {names} under {tag}", "another writer kept replacing the tag"
            )
        )

    def delete_manifest(self, digest: str) -> None:
        what = f"deleting manifest {digest}"
        response = self._request(
            "DELETE", self._url("manifests", validate_digest(digest)), what, push=True
        )
        with response:
            if response.status_code not in (200, 202):
                raise self._error(response, what)
        with self._lock:
            self._manifests.pop(digest, None)


def _check_tag(tag: str) -> None:
    if not is_valid_tag(tag):
        raise UsageError(f"invalid tag {tag!r}")


def _check_declared_type(raw: bytes, digest: str, media_type: str) -> None:
    own = parse_manifest_json(raw, digest).get("mediaType")
    if own is not None and own != media_type:
        raise UsageError(
            f"manifest {digest} says mediaType {own!r} but is pushed as {media_type!r}"
        )
