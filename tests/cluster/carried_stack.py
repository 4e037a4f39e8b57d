"""The whole Sigstore stack carried across the gap, by the real path, and a site for
`airgap install --site` (a pytest plugin, listed in tests/conftest.py's `pytest_plugins`).

On the connected side (the host's loopback): every image of stack_images.py copied, digests
unchanged, under its upstream name into a registry standing for the upstream ones (ghcr.io,
gcr.io, docker.io, cgr.dev: one path prefix each, reached through `bundle create
--registry-mirror`), and the upstream charts served as a chart repository (connected.py). A
bundle spec modelled on bundles/sigstore-stack.yaml names the five charts (trillian, rekor,
fulcio, ctlog, tuf) at the versions the repository serves and every stack image by the digest
built here; `airgap bundle create` signs it with an operator key. Inside the cluster's network
namespace `airgap bundle import` pushes it into the internal registry and writes the import
mapping. Only the bundle directory crosses.

The images here are built, not upstream's, so their digests are not the ones the charts name by
default; `bundle create` renders each chart and refuses an image the spec does not carry. The
spec therefore renders each chart as the install will run it: with the install's base values
(charts-values/<component>.yaml: createcerts, createctconfig and fulcio's init off) and, in
`set:`, every image key the install rewrites (provisioner/stack/values.py `IMAGE_KEYS`) pointed
at the built image of the same upstream repository, by its digest; the tuf chart's server at the
TUF static server image (`TUF_SERVER`) that replaces it at every site. The check itself is
unchanged: a chart image the spec lacks still fails the create.

    carried = prepare_carried_stack(cluster, work)   # outside pytest: its own connected side
    carried.site                                     # work/site/site.yaml

The `carried_stack` session fixture does the same with the session's registry, chart repository
and images.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline.oci.imageref import ImageRef, parse_image_ref
from provisioner.stack.chart_check import chart_files
from provisioner.stack.site import DEFAULT_NAMESPACES
from provisioner.stack.values import IMAGE_KEYS, charts_values_dir, dig, upstream_image
from tests.bundle_sites import operator_key, write_spec
from tests.chart_servers import ChartRepo, serve_chart_repo
from tests.cluster.connected import CHARTS as UPSTREAM_CHART_DIRECTORIES
from tests.cluster.connected import package_sigstore_charts
from tests.cluster.node import PULL_SECRET, Cluster
from tests.cluster.stack_images import IMAGES, StackImage, StackImages, build_stack_images
from tests.registries import RegistryServer, start_referrers_registry
from tests.tools import go_tool

# The stack's charts, in install order; each is also its chart's directory in connected.py.
CHARTS = ("trillian", "rekor", "fulcio", "ctlog", "tuf")
# The static server that serves the TUF repository airgap builds, in place of the tuf chart's
# own (which makes new root keys at every start): found in stack_images.IMAGES by repository.
TUF_SERVER = "docker.io/nginxinc/nginx-unprivileged"
# Where, in the connected side's registry, each upstream registry's images wait.
MIRROR_PREFIX = "upstream"
STORAGE_CLASS = "manual"
SPEC_NAME = "sigstore-stack"


class CarryError(RuntimeError):
    """The stack could not be carried across; the message says which step and why."""


@dataclass(frozen=True)
class CarriedStack:
    """What `airgap install --site` reads: the site file, and what it names."""

    site: Path  # site.yaml
    bundle: Path  # the bundle directory, as imported
    mapping: Path  # the import mapping `bundle import` wrote
    charts: Path  # the bundle's chart archives (site.yaml `charts`)


@dataclass(frozen=True)
class ConnectedSide:
    """The connected side on loopback: `registry` (host:port, plain HTTP) stands for every
    upstream registry; `chart_repo` serves `charts` (chart directory name -> archive)."""

    registry: str
    chart_repo: str
    charts: Mapping[str, Path]


# ---- the fixture ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def carried_stack(
    cluster: Cluster,
    stack_images: StackImages,
    referrers_registry: RegistryServer,
    sigstore_chart_repo: ChartRepo,
    sigstore_chart_packages: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> CarriedStack:
    """The stack carried into the session's cluster, and its site directory."""
    connected = ConnectedSide(
        referrers_registry.host, sigstore_chart_repo.url, dict(sigstore_chart_packages)
    )
    return carry_stack(cluster, tmp_path_factory.mktemp("carried-stack"), connected, stack_images)


# ---- builders, usable outside pytest --------------------------------------------------------


def prepare_carried_stack(cluster: Cluster, work: Path) -> CarriedStack:
    """Everything from nothing but a running cluster: the images built (cached), a connected
    side of its own on loopback (stopped on return), the stack carried into `cluster`."""
    images = build_stack_images()
    with connected_side(work / "connected-side") as connected:
        return carry_stack(cluster, work, connected, images)


@contextmanager
def connected_side(directory: Path) -> Iterator[ConnectedSide]:
    """A registry standing for the upstream ones and the upstream charts' repository, on
    loopback, until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    archives = package_sigstore_charts(directory / "packages", directory / "helm-home")
    charts = dict(zip(UPSTREAM_CHART_DIRECTORIES, archives, strict=True))
    registry = start_referrers_registry(directory)
    try:
        with serve_chart_repo(go_tool("helm"), archives, directory / "repo") as repo:
            yield ConnectedSide(registry.host, repo.url, charts)
    finally:
        registry.stop()


def carry_stack(
    cluster: Cluster, work: Path, connected: ConnectedSide, images: StackImages
) -> CarriedStack:
    """Mirror the images to the connected side, create the signed bundle there, import it in
    the cluster's namespace, and write `work/site/site.yaml`."""
    work.mkdir(parents=True, exist_ok=True)
    state = _user_dirs(work / "state")
    spec = write_stack_spec(work / "spec" / "sigstore-stack.yaml", images, connected)
    mirrors = mirror_images(images, connected.registry)
    public, _ = operator_key(spec.parent)
    bundle = work / "bundle"
    created = subprocess.run(
        _airgap(
            "bundle", "create", str(spec), "-o", str(bundle),
            "--sign-key", str(spec.parent / "operator.key"),
            *(f"--registry-mirror={host}={mirror}" for host, mirror in mirrors.items()),
            "--allow-http-registry", connected.registry,
            "--helm", str(go_tool("helm")),
        ),
        capture_output=True, text=True, check=False, timeout=1800, env={**os.environ, **state},
    )  # fmt: skip
    if created.returncode != 0:
        raise CarryError(f"airgap bundle create failed: {created.stderr.strip()[-3000:]}")

    site_dir = work / "site"
    site_dir.mkdir(exist_ok=True)
    mapping = site_dir / f"{SPEC_NAME}.import-mapping.json"
    # Inside the cluster's namespace: its DOCKER_CONFIG holds the registry's credentials.
    cluster.run(
        _airgap(
            "bundle", "import", str(bundle), "--key", str(public),
            "--to", f"{cluster.registry}/sigstore",
            "--registry-ca", str(cluster.pki.ca), "--mapping", str(mapping),
        ),
        timeout=1200, env=state,
    )  # fmt: skip
    charts = bundle / "charts"
    site = write_site(site_dir, cluster, mapping=mapping, charts=charts, images=images)
    return CarriedStack(site=site, bundle=bundle, mapping=mapping, charts=charts)


def mirror_images(images: StackImages, registry: str) -> dict[str, str]:
    """Copy every image of the layout into `registry` under `upstream/<host>/<repository>:<tag>`,
    digests checked; upstream host -> its mirror, as `--registry-mirror` takes it."""
    mirrors = {host: f"{registry}/{MIRROR_PREFIX}/{host}" for host in sorted(_hosts())}

    def copy(image: StackImage) -> None:
        ref = parse_image_ref(image.name)
        target = f"docker://{mirrors[ref.registry]}/{ref.repository}:{image.tag}"
        _run(
            "skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
            f"oci:{images.layout}:{image.name}", target,
        )  # fmt: skip
        manifest = _run("skopeo", "inspect", "--raw", "--tls-verify=false", target)
        digest = f"sha256:{hashlib.sha256(manifest.encode()).hexdigest()}"
        if digest != images.digests[image.name]:
            raise CarryError(
                f"{target} holds {digest}, the layout has {images.digests[image.name]}"
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(copy, IMAGES))
    return mirrors


def stack_references(images: StackImages) -> dict[str, str]:
    """Every stack image as the bundle names it: upstream name and tag, built digest."""
    return {image.name: f"{image.name}@{images.digests[image.name]}" for image in IMAGES}


def write_stack_spec(path: Path, images: StackImages, connected: ConnectedSide) -> Path:
    """The bundle spec: the five charts from the connected side's repository, each rendered
    with the install's base values and the built images (see the module's note), and every
    stack image by its built digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    charts = []
    for component in CHARTS:
        files = chart_files(connected.charts[component])
        charts.append(
            {
                "name": files.name,
                "version": files.version,
                "repo": connected.chart_repo,
                "namespace": DEFAULT_NAMESPACES[component],
                "values": [str(charts_values_dir() / f"{component}.yaml")],
                "set": chart_image_values(component, files.values, images),
            }
        )
    return write_spec(
        path, name=SPEC_NAME, charts=charts, images=list(stack_references(images).values())
    )


def chart_image_values(
    component: str, defaults: Mapping[str, Any], images: StackImages
) -> dict[str, Any]:
    """Every image key the install rewrites for `component`, pointed at the built image of the
    repository the chart names by default (the tuf server: at `TUF_SERVER`), by digest."""
    values: dict[str, Any] = {}
    for key in IMAGE_KEYS[component]:
        default = dig(defaults, key.path)
        where = f"chart {component}: values key {key.name}"
        if key.shape != "parts" or not isinstance(default, Mapping):
            raise CarryError(f"{where}: not an image of registry, repository and version")
        upstream = upstream_image(default, key, where)
        name = TUF_SERVER if component == "tuf" else upstream.name
        image = built_image(name, images, where)
        node = values
        for part in key.path[:-1]:
            node = node.setdefault(part, {})
        node[key.path[-1]] = {
            "registry": image.registry,
            "repository": image.repository,
            "version": image.digest,
        }
    return values


def built_image(name: str, images: StackImages, where: str) -> ImageRef:
    """The built image of upstream repository `name` (`host/path`), by digest."""
    found = [i for i in IMAGES if parse_image_ref(i.name).name == name]
    if len(found) != 1:
        raise CarryError(
            f"{where}: stack_images.IMAGES has {len(found)} images of {name}, not one; "
            "the bundle cannot carry the image this chart runs"
        )
    (image,) = found
    return parse_image_ref(image.name).with_digest(images.digests[image.name])


def write_site(
    directory: Path, cluster: Cluster, *, mapping: Path, charts: Path, images: StackImages
) -> Path:
    """`directory/site.yaml` for the test cluster, with the registry's credentials beside it
    (0600) and a directory on the node for hostPath volumes."""
    credentials = directory / "registry-auth.json"
    source = Path(cluster.env["DOCKER_CONFIG"]) / "config.json"
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(source.read_bytes())
    os.chmod(credentials, 0o600)  # an existing file keeps its mode through O_CREAT
    volumes = cluster.paths.hostpath / "sigstore-stack"
    volumes.mkdir(parents=True, exist_ok=True)
    tuf_server = built_image(TUF_SERVER, images, "site tuf.serverImage")
    site = {
        "apiVersion": "airgap.dev/v1",
        "kind": "Site",
        "charts": str(charts),
        "registry": {
            "host": cluster.registry,
            "caFile": str(cluster.pki.ca),
            "pullSecret": PULL_SECRET,
            "credentials": credentials.name,
            "mapping": os.path.relpath(mapping, directory),
        },
        "storage": {"class": STORAGE_CLASS, "hostPath": str(volumes)},
        # The TUF static server the bundle carries (the tuf chart's own is not carried).
        "tuf": {"serverImage": f"{tuf_server.name}:{tuf_server.tag}"},
    }
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


# ---- helpers --------------------------------------------------------------------------------


def _hosts() -> set[str]:
    return {parse_image_ref(image.name).registry for image in IMAGES}


def _airgap(*args: str) -> list[str]:
    return [sys.executable, "-m", "provisioner.cli", *args]


def _user_dirs(directory: Path) -> dict[str, str]:
    """Private XDG directories for the bundle commands (sequences, import records, journals):
    nobody's real state is read or written."""
    dirs = {}
    for kind in ("data", "config", "state"):
        (directory / kind).mkdir(parents=True, exist_ok=True)
        dirs[f"XDG_{kind.upper()}_HOME"] = str(directory / kind)
    return dirs


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise CarryError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout
