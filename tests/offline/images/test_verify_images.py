"""`airgap verify IMAGE` end to end, on images signed by real cosign against the private stack.

Once per module (about half a minute): images are pushed to both test registries (the Debian
docker-registry, TLS and htpasswd, no referrers API; go-containerregistry's, with the API);
cosign v3 signs them keylessly (a Sigstore bundle as an OCI referrer: through the API, or the
`sha256-<hex>` fallback tag on docker-registry) and cosign v2 signs others (legacy `.sig`/`.att`
tags); both attest an SPDX SBOM, a CycloneDX SBOM and a SLSA v1 provenance. `airgap checkpoint
fetch` pins the log, `airgap proofs fetch` completes every signature with an inclusion proof, and
oras copies some images with all their attachments into an OCI image layout.

Then the stack is stopped (Fulcio, Rekor, Trillian, the CT log, the OIDC issuer, MariaDB) and
every verification below runs with no Sigstore service at all, with `--pinning require`: the
passes (from both registries and from the layout), the failures with their reasons, and cosign
itself on the same images. Tests that need the stack running (the split view) come first in
this file: the stack stays stopped from the first offline test to the end of the module.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from offline.images.attachments import AIRGAP_PROOF_TYPE, SIGSTORE_BUNDLE_TYPES
from offline.oci.digests import cosign_tag, fallback_tag
from offline.oci.registry import Repository
from tests.conftest import REPO
from tests.oci_images import make_image, make_index, push_image, push_index
from tests.registries import RegistryServer
from tests.stack import SigstoreStack, pki
from tests.stack.mariadb import trillian_schema
from tests.stack.procs import LOOPBACK, free_port, http_ok, tcp_open
from tests.tools import go_tool

pytestmark = pytest.mark.stack

SIGNER = "system:serviceaccount:release:signer"
OTHER = "system:serviceaccount:release:someone-else"
ATTESTATIONS = ("spdxjson", "cyclonedx", "slsaprovenance1")
BUILDER_ID = "https://ci.internal/builders/release@v1"
BUILD_TYPE = "https://ci.internal/build-types/container@v1"
SOURCE_REPOSITORY = "https://git.internal/platform/app"
SPDX_TYPE = "https://spdx.dev/Document"
CYCLONEDX_TYPE = "https://cyclonedx.org/bom"
SLSA_TYPE = "https://slsa.dev/provenance/v1"
COSIGN_TIMEOUT = 180


# -- predicates --------------------------------------------------------------------------------


def spdx_sbom(name: str = "app") -> dict[str, Any]:
    """An SPDX 2.3 document listing log4j-core 2.14.1 (a banned version) and zlib."""

    def package(i: int, pkg: str, version: str, purl: str) -> dict[str, Any]:
        return {
            "name": pkg,
            "SPDXID": f"SPDXRef-Package-{i}",
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }
            ],
        }

    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://sbom.internal/{name}/{uuid.uuid4()}",
        "creationInfo": {"created": "2025-01-01T00:00:00Z", "creators": ["Tool: airgap-tests"]},
        "packages": [
            package(
                1, "log4j-core", "2.14.1", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
            ),
            package(2, "zlib", "1.3.1", "pkg:generic/zlib@1.3.1"),
        ],
    }


def cyclonedx_sbom() -> dict[str, Any]:
    """A CycloneDX 1.5 BOM listing openssl 3.0.13 and busybox."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {
                "type": "library",
                "name": "openssl",
                "version": "3.0.13",
                "purl": "pkg:generic/openssl@3.0.13",
            },
            {
                "type": "application",
                "name": "busybox",
                "version": "1.36.1",
                "purl": "pkg:generic/busybox@1.36.1",
            },
        ],
    }


def slsa_provenance() -> dict[str, Any]:
    """A SLSA v1 provenance predicate (what `--type slsaprovenance1` wraps in a Statement)."""
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"repository": SOURCE_REPOSITORY, "ref": "refs/heads/main"},
            "resolvedDependencies": [{"uri": f"git+{SOURCE_REPOSITORY}@refs/heads/main"}],
        },
        "runDetails": {"builder": {"id": BUILDER_ID}, "metadata": {"invocationId": "build-1"}},
    }


def write_predicates(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "spdxjson": (directory / "sbom.spdx.json", spdx_sbom()),
        "cyclonedx": (directory / "sbom.cdx.json", cyclonedx_sbom()),
        "slsaprovenance1": (directory / "provenance.json", slsa_provenance()),
    }
    for path, document in files.values():
        path.write_text(json.dumps(document, indent=2))
    return {kind: path for kind, (path, _) in files.items()}


# -- running cosign, oras and airgap -----------------------------------------------------------


def run(
    args: Sequence[str | os.PathLike[str]],
    env: dict[str, str] | None = None,
    timeout: float = COSIGN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )


def check(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        raise AssertionError(
            f"{what} failed with exit status {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def write_docker_config(directory: Path, servers: Sequence[RegistryServer]) -> Path:
    """A DOCKER_CONFIG directory with the logins of `servers`: cosign, oras and airgap all read
    it, so no password is ever on a command line."""
    directory.mkdir(parents=True, exist_ok=True)
    auths = {}
    for server in servers:
        if server.credentials is not None:
            pair = f"{server.credentials.username}:{server.credentials.password}"
            auths[server.host] = {"auth": base64.b64encode(pair.encode()).decode()}
    config = directory / "config.json"
    config.write_text(json.dumps({"auths": auths}))
    config.chmod(0o600)
    return directory


@dataclass
class Cosign:
    """cosign v3 (bundles as referrers) and v2 (legacy tags) against the stack, with an isolated
    HOME (no TUF, no ~/.sigstore) and the registries' CA and logins."""

    stack: SigstoreStack
    home: Path
    docker_config: Path
    registry_ca: Path | None
    http_hosts: frozenset[str]

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "tokens").mkdir(mode=0o700, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "TUF_ROOT": str(self.home / "tuf"),
            "DOCKER_CONFIG": str(self.docker_config),
        }

    def registry_flags(self, image: str) -> list[str]:
        if image.split("/", 1)[0] in self.http_hosts:
            return ["--allow-http-registry"]
        return ["--registry-cacert", str(self.registry_ca)] if self.registry_ca else []

    def token_file(self, subject: str) -> Path:
        # A file, so the token never shows in the process list; one per run (tokens expire).
        path = self.home / "tokens" / f"{uuid.uuid4().hex}.jwt"
        path.write_text(self.stack.token(subject, lifetime=1800))
        path.chmod(0o600)
        return path

    def _v3(self, command: str, image: str, subject: str, *extra: str) -> None:
        args: list[str | os.PathLike[str]] = [
            go_tool("cosign"),
            command,
            "--yes",
            "--identity-token",
            str(self.token_file(subject)),
            "--signing-config",
            str(self.stack.signing_config),
            "--trusted-root",
            str(self.stack.trusted_root),
            *self.registry_flags(image),
            *extra,
            image,
        ]
        check(run(args, self.env), f"cosign v3 {command} {image}")

    def _v2(self, command: str, image: str, subject: str, *extra: str) -> None:
        args: list[str | os.PathLike[str]] = [
            go_tool("cosign-v2"),
            command,
            "--yes",
            "--identity-token",
            str(self.token_file(subject)),
            "--fulcio-url",
            self.stack.fulcio_url,
            "--rekor-url",
            self.stack.rekor_url,
            "--trusted-root",
            str(self.stack.trusted_root),
            *self.registry_flags(image),
            *extra,
            image,
        ]
        check(run(args, self.env), f"cosign v2 {command} {image}")

    def sign(self, image: str, *, legacy: bool = False, subject: str = SIGNER) -> None:
        (self._v2 if legacy else self._v3)("sign", image, subject)

    def attest(
        self, image: str, kind: str, predicate: Path, *, legacy: bool = False, subject: str = SIGNER
    ) -> None:
        runner = self._v2 if legacy else self._v3
        runner("attest", image, subject, "--type", kind, "--predicate", str(predicate))

    def verify(
        self, image: str, identity: str, *, attestation: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """cosign v3 `verify` (or `verify-attestation --type`) with our trusted root, offline
        as far as Sigstore goes: only the registry is reached."""
        command = (
            ["verify"] if attestation is None else ["verify-attestation", "--type", attestation]
        )
        return run(
            [
                go_tool("cosign"),
                *command,
                "--trusted-root",
                str(self.stack.trusted_root),
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                self.stack.oidc_issuer,
                *self.registry_flags(image),
                image,
            ],
            self.env,
        )


def airgap(
    args: Sequence[str | os.PathLike[str]], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process, as a CD script runs it."""
    return run([sys.executable, "-m", "offline.cli", *args], env)


def isolated_env(directory: Path, docker_config: Path | None) -> dict[str, str]:
    """The environment for airgap: no AIRGAP_* settings and no user data or config dirs from
    outside, registry logins from `docker_config`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRGAP_", "XDG_")) and key != "DOCKER_CONFIG"
    }
    env.update(
        XDG_DATA_HOME=str(directory / "xdg-data"), XDG_CONFIG_HOME=str(directory / "xdg-config")
    )
    if docker_config is not None:
        env["DOCKER_CONFIG"] = str(docker_config)
    return env


def refuses(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


# -- the signed world --------------------------------------------------------------------------


@dataclass
class Image:
    registry: RegistryServer
    repository: str
    tag: str
    digest: str

    @property
    def by_digest(self) -> str:
        return f"{self.registry.host}/{self.repository}@{self.digest}"

    @property
    def by_tag(self) -> str:
        return f"{self.registry.host}/{self.repository}:{self.tag}"

    def repo(self) -> Repository:
        return self.registry.client().repository(self.repository)


@dataclass
class World:
    stack: SigstoreStack
    docker: RegistryServer  # TLS, htpasswd, no referrers API
    referrers: RegistryServer  # plain HTTP, referrers API
    dir: Path
    cosign: Cosign
    checkpoints: Path
    layout: Path
    images: dict[str, Image] = field(default_factory=dict)
    moved_from: str = ""  # the digest the moved tag named when it was signed
    proofs_report: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return self.stack.identity(SIGNER)

    @property
    def env(self) -> dict[str, str]:
        return isolated_env(self.dir, self.cosign.docker_config)

    def trust_flags(self) -> list[str]:
        return [
            "--trusted-root",
            str(self.stack.trusted_root),
            "--checkpoints",
            str(self.checkpoints),
        ]

    def registry_flags(self) -> list[str]:
        assert self.docker.ca is not None
        return [
            "--registry-ca",
            str(self.docker.ca.ca_cert),
            "--allow-http-registry",
            self.referrers.host,
        ]

    def verify(
        self,
        *images: str,
        identity: str | None = None,
        attestations: Sequence[str] = (),
        policy: Path | None = None,
        pinning: str = "require",
        extra: Sequence[str] = (),
    ) -> Verified:
        args: list[str] = ["verify", *self.trust_flags(), *self.registry_flags()]
        args += ["--pinning", pinning, "--output", "json"]
        if policy is not None:
            args += ["--policy", str(policy)]
        else:
            args += [
                "--certificate-identity",
                identity or self.identity,
                "--certificate-oidc-issuer",
                self.stack.oidc_issuer,
            ]
        for kind in attestations:
            args += ["--attestation", kind]
        result = airgap([*args, *extra, *images], self.env)
        assert "Traceback" not in result.stderr, result.stderr
        report = json.loads(result.stdout) if result.stdout else {}
        return Verified(result, report)

    def policy(self, name: str, attestations: list[dict[str, Any]]) -> Path:
        document = {
            "apiVersion": "airgap.dev/v1",
            "kind": "ImagePolicy",
            "policies": [
                {
                    "name": name,
                    "images": [f"{self.referrers.host}/**", f"{self.docker.host}/**", "oci:**"],
                    "signers": [{"issuer": self.stack.oidc_issuer, "subject": self.identity}],
                    "attestations": attestations,
                    "pinning": "require",
                    "maxCheckpointAge": "1d",
                }
            ],
        }
        path = self.dir / f"policy-{name}.yaml"
        path.write_text(json.dumps(document, indent=2))  # JSON is YAML
        return path


@dataclass
class Verified:
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]

    @property
    def code(self) -> int:
        return self.result.returncode

    def image(self, reference: str) -> dict[str, Any]:
        for image in self.report["images"]:
            if image["reference"] == reference or image["reference"].startswith(reference + "@"):
                return dict(image)
        raise AssertionError(f"{reference} not in the report: {self.report}")

    def failures(self, reference: str) -> dict[str, str]:
        return {c["check"]: c["reason"] for c in self.image(reference)["checks"] if not c["ok"]}

    def checks(self, reference: str) -> dict[str, str]:
        return {c["check"]: c["reason"] for c in self.image(reference)["checks"]}

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.result.stdout}\n{self.result.stderr}"


def push_random(server: RegistryServer, repository: str, tag: str, seed: int) -> Image:
    image = make_image(random.Random(seed), layers=1, layer_size=512)
    descriptor = push_image(server.client().repository(repository), image, tag)
    return Image(server, repository, tag, descriptor.digest)


def oras_copy(world: World, source: Image, reference: str, target: str, recursive: bool) -> None:
    """`oras copy [-r] REGISTRY/REPO:REF --to-oci-layout LAYOUT:TARGET`."""
    server = source.registry
    if server.tls:
        assert server.ca is not None
        flags = [
            "--from-ca-file",
            str(server.ca.ca_cert),
            "--from-registry-config",
            str(world.cosign.docker_config / "config.json"),
        ]
    else:
        flags = ["--from-plain-http"]
    args: list[str | os.PathLike[str]] = [go_tool("oras"), "copy", "--no-tty", *flags]
    if recursive:
        args.append("-r")
    args += [f"{server.host}/{source.repository}{reference}", "--to-oci-layout"]
    args += [f"{world.layout}:{target}"]
    check(run(args, world.cosign.env), f"oras copy {reference}")


@pytest.fixture(scope="module")
def world(
    sigstore_stack: SigstoreStack,
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    stack = sigstore_stack
    directory = tmp_path_factory.mktemp("verify-images")
    assert docker_registry.ca is not None
    cosign = Cosign(
        stack,
        directory / "home",
        write_docker_config(directory / "docker", [docker_registry]),
        docker_registry.ca.ca_cert,
        frozenset({referrers_registry.host}),
    )
    checkpoints = directory / "checkpoints"
    checkpoints.mkdir()
    w = World(
        stack,
        docker_registry,
        referrers_registry,
        directory,
        cosign,
        checkpoints,
        directory / "layout",
    )
    predicates = write_predicates(directory / "predicates")
    api, docker = referrers_registry, docker_registry
    images = w.images
    images["v3"] = push_random(api, "release/app-v3", "1.0", 1)
    images["v3-docker"] = push_random(docker, "release/app-v3", "1.0", 2)
    images["v2"] = push_random(api, "release/app-v2", "1.0", 3)
    images["v2-docker"] = push_random(docker, "release/app-v2", "1.0", 4)
    images["moved"] = push_random(api, "release/moved", "release", 5)
    images["unsigned"] = push_random(api, "release/unsigned", "1.0", 6)
    # Image B in the v2 repository: it gets image A's legacy .sig copied onto its own tag.
    images["replaced"] = push_random(api, "release/app-v2", "replaced", 7)

    # Signatures and attestations: one job per image (an image's attachments in order, so that
    # fallback-tag updates on docker-registry never race), the images concurrently.
    def fully_attested(name: str, legacy: bool) -> None:
        image = images[name].by_digest
        cosign.sign(image, legacy=legacy)
        for kind in ATTESTATIONS:
            cosign.attest(image, kind, predicates[kind], legacy=legacy)

    jobs = [
        lambda: fully_attested("v3", legacy=False),
        lambda: fully_attested("v3-docker", legacy=False),
        lambda: fully_attested("v2", legacy=True),
        lambda: fully_attested("v2-docker", legacy=True),
        lambda: cosign.sign(images["moved"].by_digest),  # signed, no attestations
    ]
    # Multi-arch: one index signed as a whole, one whose platform manifests are signed one by
    # one, and one with a platform manifest left unsigned.
    platform_images: list[str] = []
    for n, name in enumerate(("index-signed", "platforms-signed", "platforms-partly")):
        index = make_index(random.Random(20 + n))
        descriptor = push_index(api.client().repository(f"release/{name}"), index, "1.0")
        images[name] = Image(api, f"release/{name}", "1.0", descriptor.digest)
        children = [f"{api.host}/release/{name}@{i.digest}" for i in index.images]
        if name == "index-signed":
            jobs.append(functools.partial(cosign.sign, images[name].by_digest))
        elif name == "platforms-signed":
            platform_images += children
        else:
            platform_images.append(children[0])
    for child in platform_images:
        jobs.append(functools.partial(cosign.sign, child))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()

    # The tag is moved to another image after signing.
    w.moved_from = images["moved"].digest
    moved = push_random(api, "release/moved", "release", 8)
    images["moved-now"] = moved
    # Image replaced: A's legacy signature manifest copied onto B's signature tag.
    repo = images["v2"].repo()
    a_sig = repo.resolve(cosign_tag(images["v2"].digest, "sig"))
    raw = repo.fetch_manifest(a_sig.digest).raw
    repo.push_manifest(raw, a_sig.media_type, cosign_tag(images["replaced"].digest, "sig"))

    # The online side, while Rekor is reachable: pin the log, complete every signature.
    env = w.env
    rekor = ["--rekor", stack.rekor_url]
    check(airgap(["checkpoint", "fetch", *rekor, *w.trust_flags()], env), "checkpoint fetch")
    signed = [images[n].by_digest for n in ("v3", "v3-docker", "v2", "v2-docker")]
    signed.append(f"{api.host}/release/moved@{w.moved_from}")
    signed += [
        images[n].by_digest for n in ("index-signed", "platforms-signed", "platforms-partly")
    ]
    out = check(
        airgap(
            [
                "proofs",
                "fetch",
                *rekor,
                *w.trust_flags(),
                *w.registry_flags(),
                "--output",
                "json",
                *signed,
            ],
            env,
        ),
        "proofs fetch",
    )
    w.proofs_report = json.loads(out)

    # Signed after the last fetch, and never completed: in no pinned checkpoint.
    images["late"] = push_random(api, "release/late", "1.0", 9)
    images["late-legacy"] = push_random(api, "release/late-legacy", "1.0", 10)
    with ThreadPoolExecutor(max_workers=2) as pool:
        late = [
            pool.submit(cosign.sign, images["late"].by_digest),
            pool.submit(cosign.sign, images["late-legacy"].by_digest, legacy=True),
        ]
        for future in late:
            future.result()

    # An OCI image layout holding images with every attachment, as a bundle on disk would:
    # oras copies referrers (through the API, and docker-registry's fallback tag); cosign's
    # legacy tags are plain tags, copied one by one.
    oras_copy(w, images["v3"], ":1.0", "v3", recursive=True)
    oras_copy(w, images["v3-docker"], ":1.0", "v3-docker", recursive=True)
    oras_copy(w, images["v2"], ":1.0", "v2", recursive=True)
    for suffix in ("sig", "att"):
        tag = cosign_tag(images["v2"].digest, suffix)
        oras_copy(w, images["v2"], f":{tag}", tag, recursive=False)
    return w


@pytest.fixture(scope="module")
def offline(world: World) -> Iterator[World]:
    """Every Sigstore service down (and MariaDB); the registries stay, as inside the gap."""
    stack = world.stack
    with stack.stopped():
        for url in (stack.rekor_url, stack.fulcio_url, stack.ctlog_url, stack.oidc_issuer):
            assert refuses(url), f"{url} still answers"
        yield world


# -- online: the formats cosign wrote, and what proofs fetch did -------------------------------


def test_cosign_wrote_what_each_format_says(world: World) -> None:
    images = world.images
    # cosign v3 on the registry with the referrers API: Sigstore bundles as referrers.
    v3 = images["v3"].repo().referrers(images["v3"].digest)
    assert v3.via == "api"
    bundle_types = [d for d in v3.descriptors if d.artifact_type in SIGSTORE_BUNDLE_TYPES]
    assert len(bundle_types) == 1 + len(ATTESTATIONS)
    # ... and on docker-registry, the same through the referrers fallback tag.
    docker_repo = images["v3-docker"].repo()
    assert docker_repo.resolve_optional(fallback_tag(images["v3-docker"].digest)) is not None
    docker = docker_repo.referrers(images["v3-docker"].digest)
    assert docker.via == "fallback-tag"
    assert len([d for d in docker.descriptors if d.artifact_type in SIGSTORE_BUNDLE_TYPES]) == (
        1 + len(ATTESTATIONS)
    )
    # cosign v2: legacy tags; attestations are logged as dsse 0.0.1 entries.
    for name in ("v2", "v2-docker"):
        repo = images[name].repo()
        tags = repo.cosign_attachments(images[name].digest)
        assert set(tags) == {"sig", "att"}
        att = repo.fetch_manifest(tags["att"].digest).json()
        assert len(att["layers"]) == len(ATTESTATIONS)
        for layer in att["layers"]:
            rekor = json.loads(layer["annotations"]["dev.sigstore.cosign/bundle"])
            body = json.loads(base64.b64decode(rekor["Payload"]["body"]))
            assert (body["kind"], body["apiVersion"]) == ("dsse", "0.0.1")


def test_proofs_fetch_completed_every_legacy_signature(world: World) -> None:
    by_image = {item["image"]: item for item in world.proofs_report}
    for name in ("v2", "v2-docker"):
        image = world.images[name]
        entries = by_image[image.by_digest]["entries"]
        # A SET carries no proof: every entry needed one.
        assert len(entries) == 1 + len(ATTESTATIONS)
        assert {e["action"] for e in entries} == {"added"}
        proofs = image.repo().referrers(image.digest, AIRGAP_PROOF_TYPE)
        assert len(proofs.descriptors) == 1


# -- online: a split view ----------------------------------------------------------------------


class ForkedRekor:
    """A second, real Rekor with the same signing key, the same hostname and the same tree ID
    serving a different tree: its own Trillian log server and signer over a second database,
    whose tree row (ID, keys, settings) and empty initial head are copied from the real one
    before any leaf is added. Everything it then logs differs from the real log."""

    def __init__(self, stack: SigstoreStack, directory: Path) -> None:
        self.stack = stack
        self.dir = directory
        self.ports = {
            name: free_port() for name in ("rpc", "http", "signer_rpc", "signer_http", "rekor")
        }
        self.names = ("fork-trillian_log_server", "fork-trillian_log_signer", "fork-rekor")
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['rekor']}"

    def __enter__(self) -> ForkedRekor:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for name in reversed(self.names):
            self.stack.procs.stop(name)

    def _start(self) -> None:
        stack, tree = self.stack, self.stack.rekor_tree_id
        assert tree is not None
        stack.db.create_database("trillian_fork", "trillian", stack.db_password, trillian_schema())
        stack.db.sql(
            f"INSERT INTO trillian_fork.Trees SELECT * FROM trillian.Trees WHERE TreeId={tree};\n"
            f"INSERT INTO trillian_fork.TreeControl SELECT * FROM trillian.TreeControl "
            f"WHERE TreeId={tree};\n"
            f"INSERT INTO trillian_fork.TreeHead SELECT * FROM trillian.TreeHead "
            f"WHERE TreeId={tree} AND TreeSize=0;\n"
        )
        flags = self.dir / "trillian-fork.flags"
        dsn = stack.db.dsn("trillian_fork", "trillian", stack.db_password)
        pki.write_private(flags, f"--mysql_uri='{dsn}'\n".encode())
        rpc = f"{LOOPBACK}:{self.ports['rpc']}"
        common = [f"--config={flags}", "--storage_system=mysql", "--quota_system=noop"]
        stack.procs.start(
            self.names[0],
            [
                stack.tools["trillian_log_server"],
                *common,
                f"--rpc_endpoint={rpc}",
                f"--http_endpoint={LOOPBACK}:{self.ports['http']}",
            ],
            ready=tcp_open(LOOPBACK, self.ports["rpc"]),
            stop_grace=1.0,
        )
        stack.procs.start(
            self.names[1],
            [
                stack.tools["trillian_log_signer"],
                *common,
                "--force_master",
                "--sequencer_interval=50ms",
                f"--rpc_endpoint={LOOPBACK}:{self.ports['signer_rpc']}",
                f"--http_endpoint={LOOPBACK}:{self.ports['signer_http']}",
            ],
            ready=http_ok(f"http://{LOOPBACK}:{self.ports['signer_http']}/healthz"),
            stop_grace=1.0,
        )
        stack.procs.start(
            self.names[2],
            [
                stack.tools["rekor-server"],
                "serve",
                f"--trillian_log_server.address={LOOPBACK}",
                f"--trillian_log_server.port={self.ports['rpc']}",
                f"--trillian_log_server.tlog_id={tree}",
                f"--rekor_server.address={LOOPBACK}",
                f"--port={self.ports['rekor']}",
                f"--rekor_server.hostname={stack.rekor_hostname}",
                f"--rekor_server.signer={stack.rekor_key}",
                "--enable_retrieve_api=false",
                "--enabled_api_endpoints=getLogInfo,getPublicKey,getLogProof,createLogEntry",
                "--log_type=dev",
            ],
            ready=http_ok(f"{self.url}/api/v1/log"),
        )

    def size(self) -> int:
        return int(requests.get(f"{self.url}/api/v1/log", timeout=10).json()["treeSize"])

    def grow_to(self, size: int) -> None:
        """Log hashedrekord entries (a throwaway key signing random digests) until `size`."""
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        missing = size - self.size()
        assert missing >= 0, f"the fork is already larger than {size}"
        # Rekor answers once Trillian has integrated the entry: the size follows at once.
        for _ in range(missing):
            digest = hashlib.sha256(uuid.uuid4().bytes).digest()
            signature = self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            entry: dict[str, Any] = {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {
                        "content": base64.b64encode(signature).decode(),
                        "publicKey": {"content": base64.b64encode(pem).decode()},
                    },
                },
            }
            response = requests.post(f"{self.url}/api/v1/log/entries", json=entry, timeout=30)
            assert response.status_code == 201, response.text
        assert self.size() == size


def test_a_second_rekor_with_the_same_key_and_another_tree_is_caught_by_checkpoint_fetch(
    world: World, tmp_path: Path
) -> None:
    stack = world.stack
    store = tmp_path / "checkpoints"
    flags = ["--trusted-root", str(stack.trusted_root), "--checkpoints", str(store)]
    env = world.env
    real = requests.get(f"{stack.rekor_url}/api/v1/log", timeout=10).json()
    fetched = airgap(
        ["checkpoint", "fetch", "--rekor", stack.rekor_url, *flags, "--output", "json"], env
    )
    pinned = int(json.loads(check(fetched, "checkpoint fetch"))[0]["size"])

    with ForkedRekor(stack, tmp_path) as fork:
        fork_info = requests.get(f"{fork.url}/api/v1/log", timeout=10).json()
        assert str(fork_info["treeID"]) == str(real["treeID"])
        # Same size, another root: two trees signed by one key.
        fork.grow_to(pinned)
        result = airgap(["checkpoint", "fetch", "--rekor", fork.url, *flags], env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"split view at size {pinned}" in result.stderr
        assert "evidence saved to" in result.stderr
        # Larger than the pinned tree: its consistency proof cannot hold.
        fork.grow_to(pinned + 3)
        result = airgap(["checkpoint", "fetch", "--rekor", fork.url, *flags], env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"consistency proof from size {pinned} to {pinned + 3} does not hold" in (
            result.stderr
        )
    assert len(list(store.rglob("evidence/*"))) >= 2
    # The store still follows the real log.
    result = airgap(["checkpoint", "fetch", "--rekor", stack.rekor_url, *flags], env)
    assert result.returncode == 0, result.stderr


# -- offline: what passes ----------------------------------------------------------------------


SIGNED = ("v3", "v3-docker", "v2", "v2-docker")


def test_signed_images_verify_offline_from_both_registries(offline: World) -> None:
    images = offline.images
    listing = offline.dir / "images.txt"
    listing.write_text("".join(f"{images[n].by_tag}\n" for n in SIGNED))
    verified = offline.verify(attestations=ATTESTATIONS, extra=["--images-from", str(listing)])
    assert verified.code == 0, verified
    assert verified.report["verified"] is True
    origins = {
        "v3": "referrer",
        "v3-docker": "referrer",
        "v2": "cosign .sig tag",
        "v2-docker": "cosign .sig tag",
    }
    for name in SIGNED:
        image = verified.image(images[name].by_tag)
        assert image["digest"] == images[name].digest
        assert image["signed"] == "image"
        checks = verified.checks(images[name].by_tag)
        assert offline.identity in checks["signature"]
        assert origins[name] in checks["signature"]
        pins = [c for c in image["checks"] if c["check"] == "pinning"]
        assert pins and all("is in the pinned tree" in c["reason"] for c in pins)
        for kind in (SPDX_TYPE, CYCLONEDX_TYPE, SLSA_TYPE):
            assert checks[f"attestation {kind}"].startswith("1 verified")


def test_signed_images_verify_offline_from_an_oci_layout(offline: World) -> None:
    layout = offline.layout
    references = [f"oci:{layout}:{name}" for name in ("v3", "v3-docker", "v2")]
    # No registry flags, no credentials: the layout is all there is.
    args = ["verify", *offline.trust_flags(), "--pinning", "require"]
    args += ["--certificate-identity", offline.identity]
    args += ["--certificate-oidc-issuer", offline.stack.oidc_issuer]
    for kind in ATTESTATIONS:
        args += ["--attestation", kind]
    result = airgap([*args, *references], isolated_env(offline.dir, None))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line, name in zip(lines, ("v3", "v3-docker", "v2"), strict=True):
        assert line.startswith(f"OK   oci:{layout}:{name}"), line
        assert offline.images[name].digest in line
        assert "3 attestation(s)" in line


def test_a_policy_file_with_content_conditions_that_hold(offline: World) -> None:
    policy = offline.policy(
        "holds",
        [
            {
                "predicateType": "spdxjson",
                "sbom": {"bannedPackages": [{"name": "log4j-core", "versions": "<2.0"}]},
            },
            {
                "predicateType": "cyclonedx",
                "sbom": {"bannedPackages": [{"purl": "pkg:generic/openssl@1.1.1"}]},
            },
            {
                "predicateType": "slsaprovenance1",
                "slsa": {
                    "builderId": BUILDER_ID,
                    "buildType": BUILD_TYPE,
                    "sourceRepository": SOURCE_REPOSITORY,
                },
            },
        ],
    )
    images = [offline.images[n].by_tag for n in SIGNED]
    verified = offline.verify(*images, policy=policy)
    assert verified.code == 0, verified


# -- offline: what fails, and why --------------------------------------------------------------


def test_wrong_identity(offline: World) -> None:
    wrong = offline.stack.identity(OTHER)
    images = [offline.images[n].by_tag for n in SIGNED]
    verified = offline.verify(*images, identity=wrong)
    assert verified.code == 1, verified
    for reference in images:
        reason = verified.failures(reference)["signature"]
        assert "identity" in reason and offline.identity in reason, reason


def test_unsigned_image(offline: World) -> None:
    image = offline.images["unsigned"]
    verified = offline.verify(image.by_tag)
    assert verified.code == 1, verified
    reason = verified.failures(image.by_tag)["signature"]
    assert reason.startswith(f"no signature found for {image.digest}"), reason


def test_tag_moved_to_another_digest_after_signing(offline: World) -> None:
    moved = offline.images["moved-now"]
    verified = offline.verify(moved.by_tag)
    assert verified.code == 1, verified
    checks = verified.checks(moved.by_tag)
    # The tag is resolved once, to what it names now, and that is what is verified.
    assert checks["resolve"].endswith(f"is {moved.digest}")
    assert verified.failures(moved.by_tag)["signature"].startswith(
        f"no signature found for {moved.digest}"
    )
    # What was signed still verifies, by its digest.
    signed = f"{moved.registry.host}/{moved.repository}@{offline.moved_from}"
    assert offline.verify(signed).code == 0


def test_image_replaced_under_a_copied_signature(offline: World) -> None:
    replaced, original = offline.images["replaced"], offline.images["v2"]
    verified = offline.verify(replaced.by_tag)
    assert verified.code == 1, verified
    reason = verified.failures(replaced.by_tag)["signature"]
    assert f"the signature is for {original.digest}, not {replaced.digest}" in reason, reason


def test_required_attestation_missing(offline: World) -> None:
    signed = f"{offline.images['moved'].registry.host}/release/moved@{offline.moved_from}"
    verified = offline.verify(signed, attestations=["slsaprovenance1"])
    assert verified.code == 1, verified
    failures = verified.failures(signed)
    assert list(failures) == [f"attestation {SLSA_TYPE}"]
    assert failures[f"attestation {SLSA_TYPE}"] == (
        f"no verified {SLSA_TYPE} attestation for {offline.moved_from}"
    )


def test_banned_packages_in_either_sbom(offline: World) -> None:
    policy = offline.policy(
        "bans",
        [
            {
                "predicateType": "spdxjson",
                "sbom": {"bannedPackages": [{"name": "log4j-core", "versions": "<2.17.1"}]},
            },
            {
                "predicateType": "cyclonedx",
                "sbom": {"bannedPackages": [{"purl": "pkg:generic/openssl@3.0.13"}]},
            },
        ],
    )
    images = [offline.images[n].by_tag for n in ("v3", "v2")]
    verified = offline.verify(*images, policy=policy)
    assert verified.code == 1, verified
    for reference in images:
        failures = verified.failures(reference)
        assert set(failures) == {f"attestation {SPDX_TYPE}", f"attestation {CYCLONEDX_TYPE}"}
        assert "log4j-core" in failures[f"attestation {SPDX_TYPE}"]
        assert "2.14.1" in failures[f"attestation {SPDX_TYPE}"]
        assert "openssl" in failures[f"attestation {CYCLONEDX_TYPE}"]


def test_slsa_builder_id_wrong(offline: World) -> None:
    other = "https://ci.internal/builders/untrusted@v1"
    policy = offline.policy(
        "builder", [{"predicateType": "slsaprovenance1", "slsa": {"builderId": other}}]
    )
    images = [offline.images[n].by_tag for n in ("v3", "v2")]
    verified = offline.verify(*images, policy=policy)
    assert verified.code == 1, verified
    for reference in images:
        reason = verified.failures(reference)[f"attestation {SLSA_TYPE}"]
        assert reason == f"provenance builder id is {BUILDER_ID}, not {other}", reason


def test_signature_in_no_pinned_checkpoint(offline: World) -> None:
    late, legacy = offline.images["late"], offline.images["late-legacy"]
    verified = offline.verify(late.by_tag, legacy.by_tag)
    assert verified.code == 1, verified
    # cosign v3: an inclusion proof to a tree signed after the last checkpoint fetch.
    reason = verified.failures(late.by_tag)["signature"]
    assert "is beyond the latest pinned checkpoint" in reason, reason
    assert "airgap checkpoint fetch" in reason, reason
    # cosign v2: a SET and no inclusion proof at all.
    reason = verified.failures(legacy.by_tag)["signature"]
    assert "has no inclusion proof" in reason and "airgap proofs fetch" in reason, reason
    # Under --pinning warn both pass, with the reason as a warning.
    warned = offline.verify(late.by_tag, legacy.by_tag, pinning="warn")
    assert warned.code == 0, warned
    for reference in (late.by_tag, legacy.by_tag):
        pins = [c["reason"] for c in warned.image(reference)["checks"] if c["check"] == "pinning"]
        assert pins and all(p.startswith("warning: ") for p in pins), pins


# -- offline: cosign on the same images --------------------------------------------------------


def test_cosign_accepts_and_rejects_what_airgap_does(offline: World) -> None:
    cosign, images = offline.cosign, offline.images
    right, wrong = offline.identity, offline.stack.identity(OTHER)
    for name in SIGNED:
        image = images[name].by_tag
        result = cosign.verify(image, right)
        assert result.returncode == 0, f"cosign verify {image}:\n{result.stderr}"
        result = cosign.verify(image, right, attestation="spdxjson")
        assert result.returncode == 0, f"cosign verify-attestation {image}:\n{result.stderr}"
        result = cosign.verify(image, wrong)
        assert result.returncode != 0
        assert "identit" in result.stderr.lower(), result.stderr
    for name in ("unsigned", "replaced", "moved-now"):
        result = cosign.verify(images[name].by_tag, right)
        assert result.returncode != 0, f"cosign accepted {name}"
    # cosign pins nothing: it accepts the signature made after the last checkpoint fetch,
    # which airgap refuses under --pinning require (test_signature_in_no_pinned_checkpoint).
    assert cosign.verify(images["late"].by_tag, right).returncode == 0


def test_a_multi_arch_image_verifies_what_was_signed_and_says_which(offline: World) -> None:
    images = offline.images
    whole, each = images["index-signed"].by_tag, images["platforms-signed"].by_tag
    verified = offline.verify(whole, each)
    assert verified.code == 0, verified
    assert verified.image(whole)["signed"] == "index"
    assert verified.image(each)["signed"] == "every platform manifest"
    checks = verified.checks(each)
    assert "linux/amd64 signature" in checks and "linux/arm64 signature" in checks


def test_a_multi_arch_image_with_an_unsigned_platform_fails(offline: World) -> None:
    partly = offline.images["platforms-partly"].by_tag
    verified = offline.verify(partly)
    assert verified.code == 1, verified
    failures = verified.failures(partly)
    assert list(failures) == ["linux/arm64 signature"], failures
    assert "no signature found" in failures["linux/arm64 signature"]
