"""The registry client against real registries: Distribution 2.8 (`docker-registry`, TLS,
htpasswd, no referrers API) and go-containerregistry's (referrers API, plain HTTP).

Reads and writes, chunked and monolithic uploads, mounts, tags resolved once, basic auth and
where credentials come from, TLS trust, referrers through the API and through the fallback tag,
cosign's tags, and interop with crane, skopeo and oras in both directions.
(Faults, retries, bearer tokens and tampering: test_registry_faults.py.)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError
from offline.oci.digests import DigestMismatch, cosign_tag, fallback_tag, sha256_digest
from offline.oci.manifest import OCI_INDEX, OCI_MANIFEST, NotFound, walk
from offline.oci.registry import Registry, Repository
from offline.oci.registry_auth import HOST_ENV, PASSWORD_ENV, USERNAME_ENV, Credentials
from offline.oci.registry_http import CA_ENV, RegistryAuthError, RegistryUnavailable
from offline.oci.sources import RegistryOptions, Sources
from offline.oci.store import ImageSink, ImageSource
from tests.httpproxy import Proxy, ProxyHandler
from tests.oci_images import (
    make_artifact,
    make_image,
    make_index,
    push_artifact,
    push_image,
    push_index,
)
from tests.registries import RegistryServer, make_test_ca
from tests.tools import ToolMissing, go_tool

pytestmark = pytest.mark.slow

SBOM = "application/spdx+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(params=["docker_registry", "referrers_registry"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.name)


def _repo(server: RegistryServer, request: pytest.FixtureRequest, **kwargs: object) -> Repository:
    """A fresh repository per test: the registries live for the whole session."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = "-".join(part for part in name.split("-") if part)[:120].rstrip("-")
    return server.client(**kwargs).repository(f"t/{name}")


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------------- reads and writes
def test_push_and_read_back(
    server: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(server, request)
    assert isinstance(repo, ImageSource) and isinstance(repo, ImageSink)
    image = make_image(rng, layers=3)
    index = make_index(rng)
    assert push_image(repo, image, "single") == image.descriptor.__class__(
        OCI_MANIFEST, image.digest, len(image.manifest)
    )
    push_index(repo, index, "multi")
    push_image(repo, make_image(rng), "third")

    assert repo.resolve("single").digest == image.digest
    resolved = repo.resolve("multi")
    assert (resolved.media_type, resolved.digest) == (OCI_INDEX, index.digest)
    manifests = list(walk(repo, index.digest))
    assert [m.digest for m in manifests] == [index.digest, *(i.digest for i in index.images)]
    for child, blob in zip(repo.fetch_manifest(image.digest).children(), image.blobs, strict=True):
        with repo.open_blob(child.digest, child.size) as reader:
            assert reader.read() == blob.data
            assert reader.verified
    assert repo.manifest_exists(image.digest)
    assert repo.blob_exists(image.layers[0].digest)
    assert not repo.blob_exists(sha256_digest(b"nothing"))
    assert repo.resolve_optional("absent") is None
    with pytest.raises(NotFound, match="resolving absent failed: no such tag"):
        repo.resolve("absent")
    with pytest.raises(NotFound, match="no such blob"):
        repo.open_blob(sha256_digest(b"nothing"))
    # Pages of two: docker-registry sends Link headers, go-containerregistry does not.
    assert sorted(repo.list_tags(page_size=2)) == ["multi", "single", "third"]
    assert sorted(repo.list_tags()) == ["multi", "single", "third"]
    with pytest.raises(DigestMismatch, match="the descriptor says 1"):
        repo.open_blob(image.layers[0].digest, 1)


def test_uploads(server: RegistryServer, request: pytest.FixtureRequest) -> None:
    repo = _repo(server, request)
    data = random.Random(3).randbytes(3 * 1024 * 1024 + 17)
    digest = sha256_digest(data)
    # A stream larger than a chunk goes in chunks (PATCH with Content-Range).
    repo.push_blob(io.BytesIO(data), digest, len(data), chunk_size=1024 * 1024)
    with repo.open_blob(digest, len(data)) as reader:
        assert b"".join(reader.chunks(100_000)) == data
    # A small stream goes in one PUT.
    small = b"small blob"
    repo.push_blob(io.BytesIO(small), sha256_digest(small), len(small))
    assert repo.blob_exists(sha256_digest(small))
    # Wrong content never becomes a blob, in one piece or in chunks.
    other = sha256_digest(b"other")
    with pytest.raises(DigestMismatch, match="the source has digest"):
        repo.push_blob(b"not other", other, 9)
    bad = random.Random(4).randbytes(2 * 1024 * 1024)
    with pytest.raises(DigestMismatch, match="the source has digest"):
        repo.push_blob(io.BytesIO(bad), other, len(bad), chunk_size=1024 * 1024)
    with pytest.raises(DigestMismatch, match="longer than 5"):
        repo.push_blob(io.BytesIO(bad), other, 5, chunk_size=1024 * 1024)
    assert not repo.blob_exists(other)
    with pytest.raises(DigestMismatch, match="has digest"):
        repo.push_manifest(b"{}", OCI_MANIFEST, sha256_digest(b"[]"))
    with pytest.raises(UsageError, match="says mediaType"):
        repo.push_manifest(json.dumps({"mediaType": OCI_INDEX}).encode(), OCI_MANIFEST)
    with pytest.raises(UsageError, match="invalid tag"):
        repo.push_manifest(b"{}", OCI_MANIFEST, "bad tag")


def test_memory_does_not_grow_with_blob_size(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A 32 MiB blob goes up in 4 MiB chunks and comes down in 1 MiB reads, over TLS: the
    Python heap stays at a few chunks, not at the blob."""
    size, chunk = 32 * 1024 * 1024, 4 * 1024 * 1024
    source = tmp_path / "big.bin"
    hasher = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size // chunk):
            data = os.urandom(chunk)
            hasher.update(data)
            out.write(data)
    digest = f"sha256:{hasher.hexdigest()}"
    repo = _repo(docker_registry, request)
    tracemalloc.start()
    try:
        with source.open("rb") as f:
            repo.push_blob(f, digest, size, chunk_size=chunk)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with repo.open_blob(digest, size) as reader:
            received = sum(len(part) for part in reader.chunks())
            assert reader.verified
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert upload_peak < 3 * chunk, upload_peak
    assert download_peak < 4 * 1024 * 1024, download_peak


def test_cross_repository_mount(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    source = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(source, image, "v1")
    target = docker_registry.client().repository(source.name + "-copy")
    layer = image.layers[0]
    assert not target.blob_exists(layer.digest)
    assert target.mount_blob(layer.digest, source.name) is True
    assert target.blob_exists(layer.digest)
    # A blob the source does not have is not mounted (and the upload it opened is dropped).
    assert target.mount_blob(sha256_digest(b"nowhere"), source.name) is False


def test_tag_is_resolved_once(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    """After resolution, every request names the digest: moving the tag changes nothing."""
    repo = _repo(referrers_registry, request)
    index = make_index(rng)
    push_index(repo, index, "v1")
    paths: list[str] = []

    def record(handler: ProxyHandler, number: int) -> bool:
        paths.append(handler.path)
        return False

    with Proxy(referrers_registry.url, on_request=record) as proxy:
        options = RegistryOptions(insecure_http_hosts=frozenset({proxy.host}))
        with Sources(options) as sources:
            image = sources.resolve(f"{proxy.host}/{repo.name}:v1")
            assert str(image.ref) == f"{proxy.host}/{repo.name}:v1@{index.digest}"
            push_index(repo, make_index(rng), "v1")  # the tag moves
            walked = [m.digest for m in walk(image.source, image.digest)]
    assert walked == [index.digest, *(i.digest for i in index.images)]
    assert [p for p in paths if p.endswith(":v1") or p.endswith("/v1")] == [
        f"/v2/{repo.name}/manifests/v1"
    ]


def test_delete_manifest(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    repo.delete_manifest(image.digest)
    assert repo.resolve_optional(image.digest) is None
    assert repo.resolve_optional("v1") is None


# --------------------------------------------------------------------------------- auth
def test_anonymous_access_is_refused(
    docker_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    repo = _repo(docker_registry, request, credentials=None)
    with pytest.raises(RegistryAuthError) as caught:
        repo.resolve("v1")
    message = _one_line(caught.value)
    assert message.startswith(f"registry {docker_registry.host}, repository {repo.name}: ")
    assert "authentication required" in message and "AIRGAP_REGISTRY_USERNAME" in message


def test_wrong_password_is_refused(
    docker_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    secret = "not-the-password-0123"
    repo = _repo(docker_registry, request, credentials=Credentials("airgap", secret))
    with pytest.raises(RegistryAuthError) as caught:
        repo.list_tags()
    message = _one_line(caught.value)
    assert "refused user 'airgap' (from argument)" in message
    assert secret not in message and secret not in repr(Credentials("airgap", secret))


def test_credentials_from_environment(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    creds = docker_registry.credentials
    assert creds is not None
    environ = {
        USERNAME_ENV: creds.username,
        PASSWORD_ENV: creds.password,
        HOST_ENV: docker_registry.host,
        CA_ENV: str(docker_registry.ca.ca_cert),  # type: ignore[union-attr]
    }
    registry = Registry(docker_registry.host, environ=environ)
    repo = registry.repository(_repo(docker_registry, request).name)
    push_image(repo, make_image(rng), "v1")
    assert repo.list_tags() == ["v1"]
    with pytest.raises(UsageError, match="set both"):
        Registry(docker_registry.host, environ={USERNAME_ENV: "x"})


@pytest.mark.parametrize("key", ["{host}", "https://{host}", "https://{host}/v2/"])
def test_credentials_from_docker_config(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    key: str,
) -> None:
    creds = docker_registry.credentials
    assert creds is not None
    auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    config = {
        "auths": {
            "other.example:5000": {"auth": base64.b64encode(b"no:no").decode()},
            key.format(host=docker_registry.host): {"auth": auth},
        }
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    assert docker_registry.ca is not None
    registry = Registry(docker_registry.host, ca_bundle=docker_registry.ca.ca_cert, environ=environ)
    registry.ping()
    broken = {"auths": {docker_registry.host: {"auth": "%%%%"}}}
    (tmp_path / "config.json").write_text(json.dumps(broken))
    with pytest.raises(UsageError, match="auth is not base64 of user:password"):
        Registry(docker_registry.host, environ=environ)


# ---------------------------------------------------------------------------------- TLS
def test_wrong_ca_is_refused(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    other = make_test_ca(tmp_path / "other", name="some other CA")
    for ca in (other.ca_cert, None):  # another CA, and the system's trust store
        repo = _repo(docker_registry, request, ca_bundle=ca)
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            repo.list_tags()
        assert time.monotonic() - started < 5  # TLS failures are not retried
        message = _one_line(caught.value)
        assert "TLS verification failed" in message and CA_ENV in message
    with pytest.raises(UsageError, match="does not exist"):
        Registry(docker_registry.host, ca_bundle=tmp_path / "missing.pem")


def test_plain_http_only_when_allowed(referrers_registry: RegistryServer) -> None:
    referrers_registry.client(insecure_http=True).ping()
    with pytest.raises(RegistryUnavailable, match="the server does not speak TLS"):
        referrers_registry.client(insecure_http=False).ping()


# ---------------------------------------------------------------------------- referrers
def test_referrers_through_the_api(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(referrers_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    sbom = make_artifact(image.descriptor, SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    bundle = make_artifact(image.descriptor, BUNDLE, b"{}")
    assert push_artifact(repo, sbom).artifact_type == SBOM
    push_artifact(repo, bundle)
    found = repo.referrers(image.digest)
    assert found.via == "api"
    assert sorted(d.digest for d in found.descriptors) == sorted([sbom.digest, bundle.digest])
    # go-containerregistry lists the empty config type instead of artifactType; the client
    # reads the manifests so that filtering works anyway.
    assert [d.digest for d in repo.referrers(image.digest, SBOM).descriptors] == [sbom.digest]
    # The registry has the API: no fallback tag is written.
    assert repo.resolve_optional(fallback_tag(image.digest)) is None
    assert repo.referrers(make_image(rng).digest).descriptors == ()


def test_referrers_through_the_fallback_tag(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    sbom = make_artifact(image.descriptor, SBOM, b"{}", annotations={"created": "now"})
    bundle = make_artifact(image.descriptor, BUNDLE, b"{}")
    push_artifact(repo, sbom)
    push_artifact(repo, bundle)
    tag = fallback_tag(image.digest)
    before = repo.resolve(tag)
    push_artifact(repo, bundle)  # again: the index does not change
    assert repo.resolve(tag) == before

    found = repo.referrers(image.digest)
    assert found.via == "fallback-tag"
    by_digest = {d.digest: d for d in found.descriptors}
    assert set(by_digest) == {sbom.digest, bundle.digest}
    assert by_digest[sbom.digest].annotations == {"created": "now"}
    assert by_digest[bundle.digest].artifact_type == BUNDLE
    assert [d.digest for d in repo.referrers(image.digest, BUNDLE).descriptors] == [bundle.digest]
    assert repo.referrers(make_image(rng).digest).descriptors == ()


def test_a_referrer_pushed_already_is_only_listed(
    server: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pushed=True`: the manifest went up by digest before (an import pushes content first
    and lists referrers at the end): it is listed without being sent again, through the API
    or the fallback tag."""
    repo = _repo(server, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    sbom = make_artifact(image.descriptor, SBOM, b'{"n":1}')
    for blob in sbom.blobs:
        repo.push_blob(blob.data, blob.digest, len(blob.data))
    repo.push_manifest(sbom.manifest, OCI_MANIFEST)
    sent: list[str | None] = []
    real = Repository._put_manifest

    def put(self: Repository, raw: bytes, media_type: str, reference: str | None) -> Any:
        sent.append(reference)
        return real(self, raw, media_type, reference)

    monkeypatch.setattr(Repository, "_put_manifest", put)

    repo.push_referrer(sbom.manifest, OCI_MANIFEST, pushed=True)

    assert [d.digest for d in repo.referrers(image.digest).descriptors] == [sbom.digest]
    # Nothing by digest: the fallback index under its tag where there is no API, or nothing.
    assert all(r is not None and not r.startswith("sha256:") for r in sent), sent


def test_referrers_of_one_subject_are_listed_in_one_write_read_back_once(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo(docker_registry, request)
    image, other = make_image(rng), make_image(rng)
    push_image(repo, image, "v1")
    push_image(repo, other, "v2")
    artifacts = [
        make_artifact(image.descriptor, SBOM, b'{"n":1}'),
        make_artifact(image.descriptor, BUNDLE, b"{}"),
        make_artifact(other.descriptor, SBOM, b'{"n":2}'),
    ]
    for artifact in artifacts:
        for blob in artifact.blobs:
            repo.push_blob(blob.data, blob.digest, len(blob.data))
        repo.push_manifest(artifact.manifest, OCI_MANIFEST)
    writes: list[str | None] = []
    reads: list[str] = []
    real_put, real_get = Repository._put_manifest, Repository._get_manifest

    def put(self: Repository, raw: bytes, media_type: str, reference: str | None) -> Any:
        writes.append(reference)
        return real_put(self, raw, media_type, reference)

    def get(self: Repository, reference: str, digest: str | None) -> Any:
        reads.append(reference)
        return real_get(self, reference, digest)

    monkeypatch.setattr(Repository, "_put_manifest", put)
    monkeypatch.setattr(Repository, "_get_manifest", get)

    listed = repo.push_referrers([(a.manifest, OCI_MANIFEST) for a in artifacts], pushed=True)

    assert [d.digest for d in listed] == [a.digest for a in artifacts]
    tags = [fallback_tag(image.digest), fallback_tag(other.digest)]
    assert writes == tags  # one index per subject
    # Each read before its write (absent), then once after it, to be sure it holds.
    assert [r for r in reads if r in tags] == [tags[0], tags[0], tags[1], tags[1]]
    monkeypatch.undo()
    assert {d.digest for d in repo.referrers(image.digest).descriptors} == {
        artifacts[0].digest,
        artifacts[1].digest,
    }
    assert [d.digest for d in repo.referrers(other.digest).descriptors] == [artifacts[2].digest]


def test_fallback_tag_that_is_not_an_index(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    push_image(repo, make_image(rng), fallback_tag(image.digest))  # squatting the tag
    assert repo.referrers(image.digest).descriptors == ()  # the spec: assume none
    with pytest.raises(UsageError, match="not an image index: refusing to overwrite"):
        push_artifact(repo, make_artifact(image.descriptor, SBOM, b"{}"))


def test_cosign_tags(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    repo = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    assert repo.cosign_attachments(image.digest) == {}
    signature, attestation = make_image(rng), make_image(rng)
    push_image(repo, signature, cosign_tag(image.digest, "sig"))
    push_image(repo, attestation, cosign_tag(image.digest, "att"))
    found = repo.cosign_attachments(image.digest)
    assert {k: v.digest for k, v in found.items()} == {
        "sig": signature.digest,
        "att": attestation.digest,
    }


# ------------------------------------------------------------------------------ interop
def _tool(name: str) -> str:
    try:
        return str(go_tool(name))
    except ToolMissing as exc:
        pytest.fail(str(exc))


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr}"
    return result.stdout


def _docker_config(server: RegistryServer, directory: Path) -> dict[str, str]:
    """Environment for Go tools: credentials in a docker config, the test CA as SSL_CERT_FILE."""
    assert server.credentials is not None and server.ca is not None
    auth = f"{server.credentials.username}:{server.credentials.password}"
    config = {"auths": {server.host: {"auth": base64.b64encode(auth.encode()).decode()}}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(directory),
        "DOCKER_CONFIG": str(directory),
        "SSL_CERT_FILE": str(server.ca.ca_cert),
    }


def test_crane_and_skopeo_see_our_digests(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
) -> None:
    crane = _tool("crane")
    index = make_index(rng)
    ours = _repo(referrers_registry, request)
    push_index(ours, index, "v1")
    digest = _run([crane, "digest", "--insecure", f"{referrers_registry.host}/{ours.name}:v1"])
    assert digest.strip() == index.digest

    image = make_image(rng)
    theirs = _repo(docker_registry, request)
    push_image(theirs, image, "v1")
    assert docker_registry.credentials is not None
    creds = f"{docker_registry.credentials.username}:{docker_registry.credentials.password}"
    inspected = _run(
        [
            "skopeo",
            "inspect",
            "--cert-dir",
            str(docker_registry.cert_dir),
            "--creds",
            creds,
            f"docker://{docker_registry.host}/{theirs.name}:v1",
        ]
    )
    assert json.loads(inspected)["Digest"] == image.digest


def test_we_read_what_crane_copied(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    crane = _tool("crane")
    index = make_index(rng)
    source = _repo(referrers_registry, request)
    push_index(source, index, "v1")
    target = f"{docker_registry.host}/{source.name}-copied:v1"
    _run(
        [crane, "copy", "--insecure", f"{referrers_registry.host}/{source.name}:v1", target],
        env=_docker_config(docker_registry, tmp_path / "docker"),
    )
    copied = docker_registry.client().repository(source.name + "-copied")
    assert copied.resolve("v1").digest == index.digest
    for manifest in walk(copied, index.digest):
        for child in [] if manifest.is_index else manifest.children():
            with copied.open_blob(child.digest, child.size) as reader:
                reader.read()
                assert reader.verified


def test_we_list_what_oras_attached(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    """oras attaches through the API on one registry and through the fallback tag on the
    other; we find both."""
    oras = _tool("oras")
    payload = tmp_path / "report.txt"
    payload.write_text("scanned: nothing found\n")
    for server, via in ((referrers_registry, "api"), (docker_registry, "fallback-tag")):
        repo = _repo(server, request)
        image = make_image(rng)
        push_image(repo, image, "v1")
        argv = [oras, "attach", "--no-tty", "--artifact-type", "application/vnd.test.report"]
        env = None
        if server.tls:
            env = _docker_config(server, tmp_path / server.name.replace(" ", "-"))
            argv += ["--ca-file", str(server.ca.ca_cert)]  # type: ignore[union-attr]
        else:
            argv += ["--plain-http"]
        argv += [f"{server.host}/{repo.name}@{image.digest}", f"{payload.name}:text/plain"]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        found = repo.referrers(image.digest)
        assert found.via == via
        assert [d.artifact_type for d in found.descriptors] == ["application/vnd.test.report"]
        attached = repo.fetch_manifest(found.descriptors[0].digest)
        subject = attached.subject()
        assert subject is not None and subject.digest == image.digest


def test_oras_lists_what_we_attached(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    """Our fallback-tag index on a registry without the API is what oras reads too."""
    oras = _tool("oras")
    repo = _repo(docker_registry, request)
    image = make_image(rng)
    push_image(repo, image, "v1")
    artifact = make_artifact(image.descriptor, BUNDLE, b"{}")
    push_artifact(repo, artifact)
    output = _run(
        [
            oras,
            "discover",
            "--no-tty",
            "--format",
            "json",
            "--ca-file",
            str(docker_registry.ca.ca_cert),  # type: ignore[union-attr]
            f"{docker_registry.host}/{repo.name}@{image.digest}",
        ],
        env=_docker_config(docker_registry, tmp_path / "docker"),
    )
    assert artifact.digest in output and BUNDLE in output
