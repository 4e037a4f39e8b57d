"""The images the Sigstore stack's charts run, built here with no pull from anywhere, into one
OCI image layout, each listed under its upstream name.

Each image keeps the contract its upstream image has with its chart (entrypoint, env, args,
paths, users, probes; ../shared/reference/cluster-stack.md lists them):

- real programs, pinned and built from the Go module proxy (tests/tools), on a small static base
  (passwd with nonroot 65532, /tmp; no shell, like the distroless images upstream uses), each
  the image's entrypoint and run as 65532 as upstream's ko images are: Trillian's log server and
  signer, rekor-server, fulcio, ct_server, timestamp-server (the chart gives `serve` and its
  flags as args), policy-controller's webhook;
- from Debian packages (debian_rootfs.py), on a shell base of dash (the charts' `sh -c` scripts)
  and busybox's applets: MariaDB as Trillian's `db_server` (the MySQL image's entrypoint and env,
  storage.sql in /docker-entrypoint-initdb.d, trillian.cnf, `/etc/init.d/mysql status` for the
  probes), Redis (`--protected-mode no` first, as the official entrypoint adds; /data), kubectl
  for policy-controller's leases-cleanup hook (`/bin/sh -c "kubectl delete leases ..."`);
- stand-ins where upstream's code cannot be built here (sigstore/scaffolding is not on the
  module proxy), each saying in its own source what it stands in for: `createdb`
  (stack_files/createdb.sh on the MariaDB image), `createtree` (tests/tools/scaffolding-createtree
  with Trillian's createtree), and the init containers' `nc -z` and `curl` (tests/tools/nc, curl:
  busybox's nc has no -z, and Debian's static busybox sh runs its own applets before $PATH, hence
  dash), and nginx-unprivileged, the static server airgap runs in the tuf chart's Deployment
  (stack_files/static-site.sh: busybox's httpd serving /usr/share/nginx/html on 8080 as 101).

Layers (stack_layers.py) are deterministic and cached by recipe, so a second build takes seconds;
the layout lives outside the repository (AIRGAP_IMAGES_CACHE, default ~/.cache/airgap/images).
`push` copies the layout's images into a registry with skopeo, digests unchanged.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.oci_build import ImageConfig, LayoutBuilder
from tests.cluster.stack_layers import NONROOT, StackLayers


class StackImagesError(RuntimeError):
    pass


def images_cache() -> Path:
    default = Path.home() / ".cache" / "airgap" / "images"
    return Path(os.environ.get("AIRGAP_IMAGES_CACHE", default))


@dataclass(frozen=True)
class StackImage:
    name: str  # upstream name and tag, as the layout lists it
    layers: tuple[str, ...]  # layer names, bottom first
    config: ImageConfig
    description: str

    @property
    def repository(self) -> str:
        """The path under a registry: the upstream name without its host and tag."""
        path = self.name.rsplit(":", 1)[0].split("/", 1)[1]
        return path if "/" in path else f"library/{path}"

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def _static(name: str, program: str, description: str) -> StackImage:
    return StackImage(
        name,
        ("static", program),
        ImageConfig(entrypoint=(f"/ko-app/{program}",), user=NONROOT),
        description,
    )


MARIADB_ENTRYPOINT = ("/usr/local/bin/docker-entrypoint.sh",)
IMAGES = (
    StackImage(
        "gcr.io/trillian-opensource-ci/db_server:v1.5.3",
        ("mariadb", "trillian-schema"),
        ImageConfig(entrypoint=MARIADB_ENTRYPOINT),
        "MariaDB from Debian packages with Trillian v1.7.3's storage.sql and trillian.cnf, "
        "behind the MySQL image's entrypoint",
    ),
    StackImage(
        "ghcr.io/sigstore/scaffolding/createdb:v0.7.31",
        ("mariadb", "trillian-schema"),
        ImageConfig(entrypoint=("/usr/local/bin/createdb.sh",)),
        "stand-in: createdb.sh, Trillian's schema through the MariaDB client",
    ),
    _static(
        "ghcr.io/sigstore/scaffolding/trillian_log_server:v1.7.3",
        "trillian_log_server",
        "Trillian v1.7.3's log server",
    ),
    _static(
        "ghcr.io/sigstore/scaffolding/trillian_log_signer:v1.7.3",
        "trillian_log_signer",
        "Trillian v1.7.3's log signer",
    ),
    _static("ghcr.io/sigstore/rekor/rekor-server:v1.5.4", "rekor-server", "rekor-server v1.5.4"),
    _static("ghcr.io/sigstore/fulcio:v1.8.8", "fulcio", "fulcio v1.8.8"),
    _static(
        "ghcr.io/sigstore/scaffolding/ct_server:v0.7.31",
        "ct_server",
        "certificate-transparency-go v1.3.3's ct_server",
    ),
    _static(
        "ghcr.io/sigstore/timestamp-server:v2.1.0",
        "timestamp-server",
        "timestamp-authority v2.1.0's timestamp-server",
    ),
    _static(
        "ghcr.io/sigstore/policy-controller/policy-controller:v0.13.1",
        "webhook",
        "policy-controller v0.13.1's webhook",
    ),
    StackImage(
        "ghcr.io/sigstore/scaffolding/createtree:v0.7.31",
        ("static", "createtree"),
        ImageConfig(entrypoint=("/usr/local/bin/createtree",), user=NONROOT),
        "stand-in: tests/tools/scaffolding-createtree with Trillian v1.7.3's createtree",
    ),
    StackImage(
        "docker.io/library/redis:7.0.15",
        ("redis",),
        ImageConfig(
            entrypoint=("/usr/bin/redis-server", "--protected-mode", "no"), workdir="/data"
        ),
        "Redis from Debian packages",
    ),
    StackImage(
        "docker.io/subfuzion/netcat:latest",
        ("shell", "wait-tools"),
        ImageConfig(entrypoint=("/usr/local/bin/nc",)),
        "stand-in: dash with a Go nc -z (tests/tools/nc)",
    ),
    StackImage(
        "docker.io/curlimages/curl:8.17.0",
        ("shell", "wait-tools"),
        ImageConfig(entrypoint=("/usr/local/bin/curl",)),
        "stand-in: dash with a Go curl (tests/tools/curl)",
    ),
    StackImage(
        "docker.io/nginxinc/nginx-unprivileged:1.27-alpine",
        ("shell", "static-site"),
        ImageConfig(entrypoint=("/usr/local/bin/static-site",), user="101"),
        "stand-in: busybox's httpd serving /usr/share/nginx/html on port 8080 as 101 "
        "(stack_files/static-site.sh)",
    ),
    StackImage(
        "cgr.dev/chainguard/kubectl:latest-dev",
        ("shell", "kubectl"),
        ImageConfig(entrypoint=("/usr/bin/kubectl",)),
        "kubectl v1.34.10 with dash",
    ),
)


@dataclass(frozen=True)
class StackImages:
    """The built layout and the digest of each image in it, by upstream name."""

    layout: Path
    digests: Mapping[str, str]

    def image(self, name: str) -> StackImage:
        for image in IMAGES:
            if image.name == name or image.name.rsplit(":", 1)[0] == name:
                return image
        raise KeyError(name)

    def reference(self, name: str, registry: str) -> str:
        """`name`'s image in `registry`, by digest (`name` with or without its tag)."""
        image = self.image(name)
        return f"{registry}/{image.repository}@{self.digests[image.name]}"

    def content_tag(self, image: StackImage) -> str:
        """The tag a push gives: upstream's, then the digest's start (a rebuilt image never
        takes an old tag, which containerd would keep under IfNotPresent)."""
        return f"{image.tag}-{self.digests[image.name].split(':', 1)[1][:12]}"


def build_stack_images(directory: Path | None = None) -> StackImages:
    """Every image of the stack in one OCI layout under `directory` (default: the images
    cache), made once per content; seconds when nothing changed."""
    directory = directory or images_cache()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer of the layout at a time
        builder = LayoutBuilder(directory)
        layers = StackLayers(builder)
        names = sorted({layer for image in IMAGES for layer in image.layers})
        # Layers are made two at a time (gzip and tar leave the GIL), images after.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(layers.get, names))
        digests = {}
        for image in IMAGES:
            annotations = {
                "org.opencontainers.image.description": image.description,
                "org.opencontainers.image.ref.name": image.name,
            }
            blobs = [layers.get(layer) for layer in image.layers]
            digests[image.name] = builder.image(image.name, blobs, image.config, annotations)
    return StackImages(builder.layout.path, digests)


def push(
    images: StackImages,
    registry: str,
    run: Callable[[Sequence[str]], str],
    *,
    authfile: Path | None = None,
    cert_dir: Path | None = None,
) -> dict[str, str]:
    """Copy every image of the layout into `registry` (host:port) under its upstream path and
    its content tag, digests unchanged, with skopeo run through `run` (for the internal
    registry: the cluster's guarded entry into its namespace), the registry's credentials read
    from `authfile` and its CA from `cert_dir` (else the system's, or SSL_CERT_FILE). Returns
    name -> reference by digest; raises if the registry holds another digest than the layout."""
    auth = [] if authfile is None else [str(authfile)]
    certs = [] if cert_dir is None else [str(cert_dir)]

    def copy(image: StackImage) -> str:
        tagged = f"docker://{registry}/{image.repository}:{images.content_tag(image)}"
        source = f"oci:{images.layout}:{image.name}"
        run(
            [
                *("skopeo", "copy", "--quiet", "--preserve-digests"),
                *_flag("--dest-authfile", auth),
                *_flag("--dest-cert-dir", certs),
                *(source, tagged),
            ]
        )
        inspect = ["skopeo", "inspect", "--raw", *_flag("--authfile", auth)]
        manifest = run([*inspect, *_flag("--cert-dir", certs), tagged])
        digest = f"sha256:{hashlib.sha256(manifest.encode()).hexdigest()}"
        if digest != images.digests[image.name]:
            raise StackImagesError(
                f"{tagged} holds {digest}, the layout has {images.digests[image.name]}"
            )
        return images.reference(image.name, registry)

    # Four copies at a time: each mostly waits on the registry.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip((i.name for i in IMAGES), pool.map(copy, IMAGES), strict=True))


def write_authfile(path: Path, registry: str, username: str, password: str) -> Path:
    """A registry auth file (containers-auth.json) for `push`, readable by its owner only."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"auths": {registry: {"auth": token}}}, f)
    return path


def _flag(name: str, values: Sequence[str]) -> list[str]:
    return [part for value in values for part in (name, value)]


def compressed_size(images: StackImages, name: str) -> int:
    """What a pull of image `name` transfers: its layers, gzipped."""
    digest = images.digests[name].split(":", 1)[1]
    manifest = json.loads((images.layout / "blobs" / "sha256" / digest).read_bytes())
    return sum(int(layer["size"]) for layer in manifest["layers"])


def main() -> None:
    """Build the layout (what `.ci/setup` does, so the tests find it made) and list it."""
    started = time.monotonic()
    images = build_stack_images()
    print(f"{images.layout}: {len(images.digests)} images in {time.monotonic() - started:.1f} s")
    for name, digest in images.digests.items():
        size = compressed_size(images, name) / 1e6
        print(f"  {name:64} {digest[:19]}  {size:5.1f} MB")


if __name__ == "__main__":
    main()
