"""The whole stack carried across the gap (tests/cluster/carried_stack.py): every image the stack
runs in the internal registry, digest unchanged, where the import mapping says; the six charts
in the bundle (the TSA's too); and a site file `airgap install --site` reads, naming all of it."""

from __future__ import annotations

import hashlib
import json
import stat
import tarfile
from pathlib import Path

import yaml

from offline.oci.imageref import parse_image_ref
from provisioner.stack.chart_check import chart_files
from provisioner.stack.mapping import load_mapping
from provisioner.stack.site import load_site
from provisioner.stack.values import IMAGE_KEYS, upstream_image
from tests.cluster.carried_stack import CHARTS, CarriedStack, stack_references
from tests.cluster.connected import DEPENDENCIES
from tests.cluster.node import PULL_SECRET, Cluster
from tests.cluster.stack_images import IMAGES, StackImages


def test_every_stack_image_landed_in_the_internal_registry_digest_unchanged(
    cluster: Cluster, carried_stack: CarriedStack, stack_images: StackImages
) -> None:
    images = json.loads(carried_stack.mapping.read_text())["images"]
    expected = stack_references(stack_images)
    assert sorted(images) == sorted(expected.values())
    authfile = Path(cluster.env["DOCKER_CONFIG"]) / "config.json"
    for image in IMAGES:
        landed = images[expected[image.name]]
        digest = stack_images.digests[image.name]
        assert landed["digest"] == digest
        assert landed["target"] == f"{landed['repository']}@{digest}"
        assert landed["repository"].startswith(f"{cluster.registry}/sigstore/")
        # What the registry serves at that reference hashes to the digest built here.
        manifest = cluster.output(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--authfile",
                str(authfile),
                f"docker://{landed['target']}",
            ]
        )
        assert f"sha256:{hashlib.sha256(manifest.encode()).hexdigest()}" == digest


def test_the_install_finds_every_image_its_charts_run_in_the_mapping(
    cluster: Cluster, carried_stack: CarriedStack, stack_images: StackImages
) -> None:
    site = load_site(carried_stack.site)
    mapping = load_mapping(site.registry.mapping)
    built = {parse_image_ref(i.name).name: stack_images.digests[i.name] for i in IMAGES}
    for component in CHARTS:
        (archive,) = carried_stack.charts.rglob(f"{component}-*.tgz")
        defaults = chart_files(archive).values
        for key in IMAGE_KEYS[component]:
            where = f"chart {component}: values key {key.name}"
            node = defaults
            for part in key.path:
                node = node[part]
            upstream = upstream_image(node, key, where)
            if component == "tuf":
                assert site.tuf_server_image is not None
                upstream = site.tuf_server_image
            found = mapping.find(upstream, where)  # as the install looks it up
            assert found.registry == cluster.registry
            assert found.digest == found.source.digest == built[upstream.name], where


def test_the_six_charts_are_in_the_bundle_with_their_subcharts(
    carried_stack: CarriedStack, sigstore_chart_packages: dict[str, Path]
) -> None:
    assert carried_stack.charts == carried_stack.bundle / "charts"
    for component in CHARTS:
        upstream = chart_files(sigstore_chart_packages[component])
        (archive,) = carried_stack.charts.rglob(f"{upstream.name}-{upstream.version}.tgz")
        carried = chart_files(archive)
        assert (carried.name, carried.version) == (upstream.name, upstream.version), component
        for dependency in DEPENDENCIES.get(component, ()):
            vendored = chart_files(sigstore_chart_packages[dependency])
            with tarfile.open(archive) as tar:
                member = tar.extractfile(f"{upstream.name}/charts/{vendored.name}/Chart.yaml")
                assert member is not None
                metadata = yaml.safe_load(member.read())
            assert (metadata["name"], metadata["version"]) == (vendored.name, vendored.version)


def test_the_site_names_the_cluster_the_mapping_and_the_charts(
    cluster: Cluster, carried_stack: CarriedStack
) -> None:
    site = load_site(carried_stack.site)
    assert site.charts == carried_stack.charts
    assert site.registry.host == cluster.registry
    assert site.registry.ca_file == cluster.pki.ca
    assert site.registry.mapping.resolve() == carried_stack.mapping.resolve()
    assert site.registry.pull_secret == PULL_SECRET
    credentials = site.registry.credentials
    assert credentials is not None
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert cluster.registry in json.loads(credentials.read_text())["auths"]
    assert site.storage.storage_class == "manual"
    assert site.storage.host_path is not None and site.storage.host_path.is_dir()
    assert site.storage.host_path.is_relative_to(cluster.paths.hostpath)
