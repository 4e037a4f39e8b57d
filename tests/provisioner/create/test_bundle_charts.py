"""Charts in a bundle: pulled from a chart repository or an OCI registry served on loopback,
recorded by digest, rendered with the spec's values; every image they run must be in the spec,
and is carried."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from offline.errors import AirgapError
from provisioner.bundle.check import verify_bundle_dir
from tests.bundle_sites import create, operator_key, registry_options, write_spec
from tests.chart_servers import (
    helm_program,
    package_chart,
    push_oci,
    serve_chart_repo,
    write_demo_chart,
)
from tests.oci_images import make_image, push_image
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow


def _images_for_demo(
    server: RegistryServer, rng: random.Random
) -> tuple[dict[str, object], list[str]]:
    """Real images in `server` for every image the demo chart runs; the values pointing the
    chart at them, and their references (tag@digest) for the spec."""
    refs: dict[str, str] = {}
    with server.client() as registry:
        for name in ("busybox", "server", "migrate", "cleanup", "curl"):
            image = make_image(rng, layers=1, layer_size=512)
            push_image(registry.repository(f"demo/{name}"), image, "1.0")
            refs[name] = f"{server.host}/demo/{name}:1.0@{image.digest}"
    digest = {name: ref.rsplit("@", 1)[1] for name, ref in refs.items()}
    values: dict[str, object] = {
        "init": {
            "image": {
                "registry": server.host,
                "repository": "demo/busybox",
                "version": digest["busybox"],
            }
        },
        "server": {
            "image": {
                "registry": server.host,
                "repository": "demo/server",
                "version": f"1.0@{digest['server']}",
            }
        },
        "migrate": {"image": f"{server.host}/demo/migrate:1.0"},
        "cleanup": {"image": {"repository": f"{server.host}/demo/cleanup", "tag": "1.0"}},
        "test": {
            "image": {
                "registry": server.host,
                "repository": "demo/curl",
                "version": f"1.0@{digest['curl']}",
            }
        },
    }
    return values, list(refs.values())


@pytest.fixture
def demo_tgz(tmp_path: Path) -> Path:
    helm = helm_program()
    chart = write_demo_chart(tmp_path / "src")
    return package_chart(helm, chart, tmp_path / "packaged", tmp_path / "helm-home")


def test_chart_from_a_repository_is_pulled_rendered_and_its_images_carried(
    referrers_registry: RegistryServer, demo_tgz: Path, tmp_path: Path
) -> None:
    values, images = _images_for_demo(referrers_registry, random.Random("repo"))
    _, key = operator_key(tmp_path)
    with serve_chart_repo(helm_program(), [demo_tgz], tmp_path / "www") as repo:
        spec = write_spec(
            tmp_path / "spec.yaml",
            images=images,
            charts=[
                {
                    "name": "airgap-demo",
                    "version": "0.1.0",
                    "repo": repo.url,
                    "set": values,
                    "namespace": "demo",
                }
            ],
        )
        result = create(
            spec,
            tmp_path / "out",
            key,
            registry_options(referrers_registry),
            helm=str(helm_program()),
        )

    (chart,) = result.manifest.charts
    expected = "sha256:" + hashlib.sha256(demo_tgz.read_bytes()).hexdigest()
    assert (chart.name, chart.version, chart.digest) == ("airgap-demo", "0.1.0", expected)
    assert (result.path / chart.file).read_bytes() == demo_tgz.read_bytes()
    assert len(result.manifest.images) == 5
    assert verify_bundle_dir(result.path, key.public_key()).ok


def test_an_image_the_chart_runs_but_the_spec_lacks_stops_the_create(
    referrers_registry: RegistryServer, demo_tgz: Path, tmp_path: Path
) -> None:
    values, images = _images_for_demo(referrers_registry, random.Random("missing"))
    _, key = operator_key(tmp_path)
    cleanup = next(i for i in images if "/demo/cleanup:" in i)
    with serve_chart_repo(helm_program(), [demo_tgz], tmp_path / "www") as repo:
        spec = write_spec(
            tmp_path / "spec.yaml",
            images=[i for i in images if i != cleanup],
            charts=[{"name": "airgap-demo", "version": "0.1.0", "repo": repo.url, "set": values}],
        )
        with pytest.raises(
            AirgapError,
            match=r"chart airgap-demo-0.1.0: image .*/demo/cleanup:1.0 "
            r"is not in the spec's images \(used by CronJob/",
        ):
            create(
                spec,
                tmp_path / "out",
                key,
                registry_options(referrers_registry),
                helm=str(helm_program()),
            )
    assert not (tmp_path / "out").exists()


def test_chart_from_an_oci_registry(
    referrers_registry: RegistryServer, demo_tgz: Path, tmp_path: Path
) -> None:
    values, images = _images_for_demo(referrers_registry, random.Random("oci"))
    base = push_oci(
        helm_program(),
        demo_tgz,
        referrers_registry,
        tmp_path / "helm-home",
        namespace="bundle-charts",
    )
    _, key = operator_key(tmp_path)
    spec = write_spec(
        tmp_path / "spec.yaml",
        images=images,
        charts=[
            {"name": "airgap-demo", "version": "0.1.0", "oci": f"{base}/airgap-demo", "set": values}
        ],
    )
    result = create(
        spec, tmp_path / "out", key, registry_options(referrers_registry), helm=str(helm_program())
    )
    (chart,) = result.manifest.charts
    assert chart.digest == "sha256:" + hashlib.sha256(demo_tgz.read_bytes()).hexdigest()
