"""Charts for a bundle (provisioner/create/charts.py and chart_images.py): pulled at a pinned
version from a chart repository, an OCI registry or a local directory, recorded by digest,
rendered to find every image they run, and compared with the spec's images. Real helm, real
servers, all on loopback (tests/chart_servers.py)."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from offline.errors import UsageError, VerificationFailure
from provisioner.create.chart_images import ChartImage, compare_images
from provisioner.create.charts import (
    ChartError,
    ChartSource,
    merged_values,
    pull_chart,
    render_images,
)
from tests.chart_servers import (
    DEMO_APP_VERSION,
    DEMO_CHART,
    DEMO_IMAGES,
    INIT_DIGEST,
    SERVER_DIGEST,
    ChartRepo,
    helm_program,
    login_registry,
    package_chart,
    push_oci,
    serve_chart_repo,
    write_demo_chart,
)
from tests.chart_values import values_image_keys, values_images
from tests.conftest import SHARED
from tests.registries import RegistryServer

UPSTREAM = SHARED / "upstream" / "sigstore-helm-charts"
OTHER_DIGEST = "sha256:" + "9" * 64


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_program()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_chart(tmp_path_factory.mktemp("chart-src"))


@pytest.fixture(scope="module")
def demo_tgz(helm: Path, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("chart-pkg")
    return package_chart(helm, demo_dir, work / "dist", work / "home")


@pytest.fixture(scope="module")
def chart_repo(
    helm: Path, demo_tgz: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartRepo]:
    with serve_chart_repo(helm, [demo_tgz], tmp_path_factory.mktemp("chart-repo") / "www") as repo:
        yield repo


@pytest.fixture(scope="module")
def oci_base(
    helm: Path,
    demo_tgz: Path,
    referrers_registry: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """oci://127.0.0.1:PORT/charts, holding the demo chart (plain HTTP, no auth)."""
    return push_oci(helm, demo_tgz, referrers_registry, tmp_path_factory.mktemp("helm-home"))


def repo_source(chart_repo: ChartRepo, **kwargs: object) -> ChartSource:
    options: dict[str, object] = {"name": DEMO_CHART, "version": "0.1.0", "repo": chart_repo.url}
    options.update(kwargs)
    return ChartSource(**options)  # type: ignore[arg-type]


# --- pulling -------------------------------------------------------------------------------


def test_a_chart_from_a_repository_lands_as_name_version_tgz_with_its_digest(
    helm: Path, chart_repo: ChartRepo, demo_tgz: Path, tmp_path: Path
) -> None:
    pulled = pull_chart(repo_source(chart_repo), tmp_path / "charts", helm=helm)

    assert pulled.path == tmp_path / "charts" / f"{DEMO_CHART}-0.1.0.tgz"
    assert (pulled.name, pulled.version) == (DEMO_CHART, "0.1.0")
    assert pulled.path.read_bytes() == demo_tgz.read_bytes()
    assert pulled.digest == sha256_of(demo_tgz)
    # Nothing else is left in the destination (the work directory is gone).
    assert os.listdir(tmp_path / "charts") == [pulled.path.name]


def test_a_chart_from_an_oci_registry_is_the_pushed_archive(
    helm: Path, oci_base: str, demo_tgz: Path, tmp_path: Path
) -> None:
    source = ChartSource(DEMO_CHART, "0.1.0", oci=f"{oci_base}/{DEMO_CHART}")
    pulled = pull_chart(source, tmp_path, helm=helm, plain_http=True)

    assert pulled.digest == sha256_of(demo_tgz)
    assert pulled.path == tmp_path / f"{DEMO_CHART}-0.1.0.tgz"


def test_a_chart_from_a_tls_registry_with_a_login_uses_the_ca_file_and_registry_config(
    helm: Path, docker_registry: RegistryServer, demo_tgz: Path, tmp_path: Path
) -> None:
    assert docker_registry.ca is not None
    registry_config = tmp_path / "login" / "registry.json"
    login_registry(helm, docker_registry, registry_config)
    base = push_oci(
        helm, demo_tgz, docker_registry, tmp_path / "home", registry_config=registry_config
    )
    source = ChartSource(DEMO_CHART, "0.1.0", oci=f"{base}/{DEMO_CHART}")

    pulled = pull_chart(
        source,
        tmp_path / "out",
        helm=helm,
        ca_file=docker_registry.ca.ca_cert,
        registry_config=registry_config,
    )
    assert pulled.digest == sha256_of(demo_tgz)

    # Without the CA the server is not trusted; without the login it refuses: one line each.
    with pytest.raises(ChartError) as untrusted:
        pull_chart(source, tmp_path / "out2", helm=helm, registry_config=registry_config)
    assert "certificate" in str(untrusted.value)
    with pytest.raises(ChartError) as anonymous:
        pull_chart(source, tmp_path / "out3", helm=helm, ca_file=docker_registry.ca.ca_cert)
    assert "\n" not in str(anonymous.value) and "credential" in str(anonymous.value)


def test_a_local_chart_directory_is_packaged_and_recorded_by_what_was_packaged(
    helm: Path, demo_dir: Path, tmp_path: Path
) -> None:
    pulled = pull_chart(ChartSource(DEMO_CHART, "0.1.0", path=demo_dir), tmp_path, helm=helm)

    assert pulled.path == tmp_path / f"{DEMO_CHART}-0.1.0.tgz"
    assert pulled.digest == sha256_of(pulled.path)
    assert os.listdir(tmp_path) == [pulled.path.name]


def test_a_local_tgz_is_copied_unchanged(helm: Path, demo_tgz: Path, tmp_path: Path) -> None:
    source = ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, digest=sha256_of(demo_tgz))
    pulled = pull_chart(source, tmp_path, helm=helm)
    assert pulled.path.read_bytes() == demo_tgz.read_bytes()


def test_a_pinned_digest_that_does_not_match_is_refused_naming_both(
    helm: Path, chart_repo: ChartRepo, demo_tgz: Path, tmp_path: Path
) -> None:
    with pytest.raises(VerificationFailure) as failure:
        pull_chart(repo_source(chart_repo, digest=OTHER_DIGEST), tmp_path, helm=helm)
    message = str(failure.value)
    assert OTHER_DIGEST in message and sha256_of(demo_tgz) in message
    assert "\n" not in message
    assert os.listdir(tmp_path) == []

    pulled = pull_chart(repo_source(chart_repo, digest=sha256_of(demo_tgz)), tmp_path, helm=helm)
    assert pulled.digest == sha256_of(demo_tgz)


def test_the_archive_must_hold_the_chart_and_version_asked_for(
    helm: Path, demo_tgz: Path, demo_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(VerificationFailure, match=rf"Chart\.yaml says {DEMO_CHART} 0\.1\.0"):
        pull_chart(ChartSource(DEMO_CHART, "0.2.0", path=demo_tgz), tmp_path, helm=helm)
    with pytest.raises(VerificationFailure, match=r"Chart\.yaml says"):
        pull_chart(ChartSource("other", "0.1.0", path=demo_dir), tmp_path, helm=helm)
    assert os.listdir(tmp_path) == []


def failing_sources(repo: ChartRepo, oci_base: str) -> list[tuple[ChartSource, str]]:
    return [
        (repo_source(repo, version="9.9.9"), "not found"),
        (repo_source(repo, name="no-such-chart"), "not found"),
        (repo_source(repo, repo="http://127.0.0.1:1/"), "connection refused"),
        (ChartSource(DEMO_CHART, "9.9.9", oci=f"{oci_base}/{DEMO_CHART}"), "not found"),
        (ChartSource("no-such-chart", "0.1.0", oci=f"{oci_base}/no-such-chart"), "not found"),
        (ChartSource(DEMO_CHART, "0.1.0", oci=f"oci://127.0.0.1:1/c/{DEMO_CHART}"), "refused"),
    ]


def test_a_wrong_version_an_unknown_chart_or_an_unreachable_server_is_one_line(
    helm: Path, chart_repo: ChartRepo, oci_base: str, tmp_path: Path
) -> None:
    for source, reason in failing_sources(chart_repo, oci_base):
        with pytest.raises(ChartError) as failure:
            pull_chart(source, tmp_path, helm=helm, plain_http=True)
        message = str(failure.value)
        print(message)
        assert "\n" not in message
        assert message.startswith(f"chart {source.name} {source.version} from {source.location}: ")
        assert reason in message
        assert failure.value.exit_code == 2
    # Failed pulls leave nothing behind.
    assert os.listdir(tmp_path) == []


def test_a_server_that_never_answers_is_given_up_on_after_the_timeout(
    helm: Path, tmp_path: Path
) -> None:
    # A socket that listens and never answers: helm connects, then waits for a response.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        started = time.monotonic()
        with pytest.raises(ChartError, match=r"helm did not finish within 0\.5 s"):
            pull_chart(ChartSource("x", "1.0.0", repo=url), tmp_path, helm=helm, timeout=0.5)
    assert time.monotonic() - started < 10
    assert os.listdir(tmp_path) == []


def test_a_missing_local_chart_or_helm_is_bad_input(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no such chart directory or \.tgz"):
        pull_chart(ChartSource("x", "1.0.0", path=tmp_path / "nope"), tmp_path, helm=helm)
    with pytest.raises(UsageError, match="AIRGAP_HELM"):
        pull_chart(ChartSource("x", "1.0.0", path=tmp_path), tmp_path, helm=tmp_path / "nohelm")


def test_the_users_own_helm_settings_are_neither_read_nor_changed(
    helm: Path, chart_repo: ChartRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-helm"
    user.mkdir()
    for name in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(user / name.lower()))
    # A broken repositories file of the user's own would make helm fail if it were read.
    (user / "repositories.yaml").write_text("not: [valid")
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(user / "repositories.yaml"))
    monkeypatch.setenv("AIRGAP_HELM", str(helm))

    pull_chart(repo_source(chart_repo), tmp_path / "out")

    assert sorted(p.name for p in user.iterdir()) == ["repositories.yaml"]


def test_a_source_is_checked_when_it_is_made(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({}, "exactly one of repo, oci, path"),
        ({"repo": "https://x.example", "path": tmp_path}, "exactly one of"),
        ({"repo": "ftp://x.example"}, "not an http(s) URL"),
        ({"oci": "https://x.example/demo"}, "must start with oci://"),
        ({"oci": "oci://x.example/charts/other"}, "must end with /demo"),
        ({"oci": "oci://x.example/charts/demo:1.0.0"}, "version"),
        ({"path": tmp_path, "digest": OTHER_DIGEST}, "cannot pin a chart directory"),
        ({"repo": "https://x.example", "digest": "md5:abc"}, "sha256"),
        ({"repo": "https://x.example", "version": "^1.0"}, "not an exact version"),
        ({"repo": "https://x.example", "version": "1.x"}, "not an exact version"),
    ]
    for changes, message in cases:
        options: dict[str, object] = {"name": "demo", "version": "1.0.0", **changes}
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ChartSource(**options)  # type: ignore[arg-type]


# --- rendering -----------------------------------------------------------------------------


def as_triples(images: list[ChartImage]) -> set[tuple[str, str, str]]:
    return {(i.image, i.resource, i.container) for i in images}


def test_rendering_finds_init_containers_hook_jobs_cronjobs_and_test_pods(
    helm: Path, demo_tgz: Path
) -> None:
    source = ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, release="demo", namespace="apps")
    images = render_images(demo_tgz, source, helm=helm)

    assert as_triples(images) == DEMO_IMAGES
    assert {i.chart for i in images} == {f"{DEMO_CHART}-0.1.0"}
    assert images == sorted(images)


def test_rendering_finds_lists_custom_kinds_with_pod_templates_and_ephemeral_containers(
    helm: Path, demo_tgz: Path
) -> None:
    source = ChartSource(
        DEMO_CHART, "0.1.0", path=demo_tgz, release="demo", values={"extras": {"enabled": True}}
    )
    images = as_triples(render_images(demo_tgz, source, helm=helm))

    assert images - DEMO_IMAGES == {
        ("ghcr.io/example/agent:1.0", "DaemonSet/demo-agent", "agent"),
        ("ghcr.io/example/canary:1.0", "Rollout/demo-canary", "canary"),
        ("ghcr.io/example/canary:1.0", "Pod/demo-debug", "app"),
        ("busybox:1.36", "Pod/demo-debug", "debugger"),
    }


def test_values_files_in_order_then_inline_values_change_the_images(
    helm: Path, demo_tgz: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first.yaml"
    first.write_text(
        "server:\n  image:\n    registry: registry.internal:5000\n    version: v9\n"
        "metrics:\n  enabled: true\n"
        "migrate:\n  image: first/migrate:1\n"
    )
    second = tmp_path / "second.yaml"
    second.write_text(f"server:\n  image:\n    version: {OTHER_DIGEST}\n")
    source = ChartSource(
        DEMO_CHART,
        "0.1.0",
        path=demo_tgz,
        release="demo",
        values_files=(first, second),
        values={"migrate": {"image": "registry.internal:5000/migrate:2"}},
    )
    assert merged_values(source)["server"] == {
        "image": {"registry": "registry.internal:5000", "version": OTHER_DIGEST}
    }

    images = as_triples(render_images(demo_tgz, source, helm=helm))

    # Only the keys set change; the repository comes from the chart's own values.
    assert (
        f"registry.internal:5000/example/server@{OTHER_DIGEST}",
        "Deployment/demo-server",
        "server",
    ) in images
    assert ("registry.internal:5000/migrate:2", "Job/demo-migrate", "migrate") in images
    # The sidecar switched on takes its tag from appVersion.
    assert (
        f"quay.io/example/metrics:{DEMO_APP_VERSION}",
        "Deployment/demo-server",
        "metrics",
    ) in images
    assert not any(image.startswith("ghcr.io/example/") for image, _, _ in images)


def test_a_chart_that_fails_to_render_is_one_line(helm: Path, demo_tgz: Path) -> None:
    source = ChartSource(
        DEMO_CHART, "0.1.0", path=demo_tgz, values={"server": {"image": {"repository": None}}}
    )
    with pytest.raises(ChartError) as failure:
        render_images(demo_tgz, source, helm=helm)
    message = str(failure.value)
    print(message)
    assert "\n" not in message
    assert message.startswith(f"chart {DEMO_CHART} 0.1.0 from ")
    assert "server.image.repository is required" in message


def test_a_values_file_that_is_not_a_mapping_is_bad_input(demo_tgz: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    source = ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, values_files=(bad,))
    with pytest.raises(UsageError, match="must hold a mapping"):
        merged_values(source)
    # Dates stay text, as helm reads them, so the values can be sent to helm as JSON.
    dated = tmp_path / "dated.yaml"
    dated.write_text("when: 2024-01-01\n")
    assert merged_values(
        ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, values_files=(dated,))
    ) == {"when": "2024-01-01"}


# --- comparing with the spec ---------------------------------------------------------------


def test_a_chart_image_missing_from_the_spec_is_reported_with_chart_and_resources(
    helm: Path, demo_tgz: Path
) -> None:
    source = ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, release="demo")
    images = render_images(demo_tgz, source, helm=helm)
    spec = [image for image, _, _ in DEMO_IMAGES if "migrate" not in image]
    spec.append("docker.io/library/unused:1.0")  # an image no chart uses is fine

    problems = compare_images(images, spec)

    assert problems == [
        f"chart {DEMO_CHART}-0.1.0: image ghcr.io/example/migrate:1.2.0 is not in the spec's "
        "images (used by Job/demo-migrate container migrate)"
    ]
    assert compare_images(images, [image for image, _, _ in DEMO_IMAGES]) == []


def image(ref: str, resource: str = "Deployment/x", container: str = "c") -> ChartImage:
    return ChartImage(image=ref, resource=resource, container=container, chart="demo-1.0.0")


D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("rendered", "spec"),
    [
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("docker.io/library/nginx:1.25", "nginx:1.25"),
        ("index.docker.io/library/nginx:1.25", "nginx:1.25"),
        ("nginx", "nginx:latest"),
        (f"ghcr.io/a/b@{D}", f"ghcr.io/a/b:v1@{D}"),
        (f"ghcr.io/a/b:v1@{D}", f"ghcr.io/a/b:v1@{D}"),
        (f"ghcr.io/a/b:v1@{D}", f"ghcr.io/a/b@{D}"),
        ("ghcr.io/a/b:v1", f"ghcr.io/a/b:v1@{D}"),
        ("ghcr.io/a/b:v1", "ghcr.io/a/b:v1"),
        (f"curlimages/curl:8@{D}", f"docker.io/curlimages/curl@{D}"),
    ],
)
def test_references_compare_normalized(rendered: str, spec: str) -> None:
    assert compare_images([image(rendered)], [spec]) == []


@pytest.mark.parametrize(
    ("rendered", "spec"),
    [
        ("nginx:1.25", "nginx:1.26"),
        ("nginx:1.25", "ghcr.io/library/nginx:1.25"),
        (f"ghcr.io/a/b@{D}", f"ghcr.io/a/b@{E}"),
        # A digest in the chart needs that digest in the spec: the tag alone may have moved.
        (f"ghcr.io/a/b:v1@{D}", "ghcr.io/a/b:v1"),
        ("ghcr.io/a/b:v1", f"ghcr.io/a/b:v2@{D}"),
        ("ghcr.io/a/b:v1", "ghcr.io/a/bb:v1"),
    ],
)
def test_references_that_differ_do_not_match(rendered: str, spec: str) -> None:
    problems = compare_images([image(rendered, "CronJob/nightly", "job")], [spec])
    assert len(problems) == 1
    assert rendered in problems[0] and "CronJob/nightly container job" in problems[0]


def test_one_message_per_image_listing_every_user_and_bad_references() -> None:
    images = [
        image("ghcr.io/a/b:v1", "Deployment/one", "main"),
        image("ghcr.io/a/b:v1", "Job/two", "init"),
        image("Not/A/Valid:Ref!", "Pod/three", "x"),
    ]
    problems = compare_images(images, [])
    assert len(problems) == 2
    assert "(used by Deployment/one container main; Job/two container init)" in problems[1]
    assert "Pod/three container x; invalid reference" in problems[0]
    with pytest.raises(UsageError):
        compare_images(images, ["nginx@sha256:short"])


# --- images from values.yaml (the upstream sigstore charts) --------------------------------

CURL_8_17 = "sha256:935d9100e9ba842cdb060de42472c7ca90cfe9a7c96e4dacb55e79e560b3ff40"
CREATETREE = "sha256:e5232e8c9122fcf87260b48f4b05bcb95c35c8aaa57581b42f0fde7460bd3e91"

# From shared/upstream/sigstore-helm-charts/<chart>/values.yaml (reference/charts.md §1.2),
# every image key including those of features off by default (GCP Cloud SQL, backfill).
UPSTREAM_IMAGES = {
    "trillian": [
        "docker.io/curlimages/curl@sha256:"
        "7c12af72ceb38b7432ab85e1a265cff6ae58e06f95539d539b654f2cfa64bb13",
        "docker.io/subfuzion/netcat@sha256:"
        "7e808e84a631d9c2cd5a04f6a084f925ea388e3127553461536c1248c3333c8a",
        "ghcr.io/sigstore/scaffolding/cloudsqlproxy@sha256:"
        "2cb6ff4ebe7ae82b4c39e5c2b40365b0e4a47adcc244167c7cd364a6f8a9fdda",
        "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.23.0-alpine@sha256:"
        "7cf46b7a0251486351cf7ed18dab04d96f05e26deb19d426e237f390e3baef14",
        "gcr.io/trillian-opensource-ci/db_server@sha256:"
        "2a685a38dd0129cceb646c232d285383f614c7e6fa51ff8f512aef78e4298461",
        "ghcr.io/sigstore/scaffolding/trillian_log_server@sha256:"
        "5a878e4e4f03790d2dda4b07a551ff9832128b307447d4156255c73690aa2da3",
        "ghcr.io/sigstore/scaffolding/trillian_log_signer@sha256:"
        "28c5ff40963f83ffdf4e2d9ea1e4e2c877c33cfb0ff068f3daad1c1080aad0ac",
        "ghcr.io/sigstore/scaffolding/createdb@sha256:"
        "3cee6c78973b82af6c3c3632bf8d44dafbab1632b3999a7292b170237c5dd5cc",
    ],
    "rekor": [
        f"docker.io/curlimages/curl@{CURL_8_17}",
        "docker.io/redis@sha256:148bb5411c184abd288d9aaed139c98123eeb8824c5d3fce03cf721db58066d8",
        "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.25.3-alpine@sha256:"
        "1692bd895bbffbce8034fa20f4af0a50dbcd7372c952264aa1bf94fa38e7b656",
        "ghcr.io/sigstore/rekor/rekor-server:v1.5.4@sha256:"
        "100d793d68d0e1ba9fea7df8503304cef1ca736c891bd074fcae3d450dd64169",
        f"ghcr.io/sigstore/scaffolding/createtree@{CREATETREE}",
        "ghcr.io/sigstore/rekor/backfill-redis@sha256:"
        "a13cd8b2a554d6116888fd1f383cf6e91fc1716df5eda392b82e6bfc66995ec3",
    ],
    "fulcio": [
        f"docker.io/curlimages/curl@{CURL_8_17}",
        "ghcr.io/sigstore/fulcio:v1.8.8@sha256:"
        "ef72cf56c64b7455ceda5268d1cc801b92992e7ce36b744b40b7761684d60753",
        "ghcr.io/sigstore/scaffolding/createcerts@sha256:"
        "7f59f7c08d1a82ac5fbd6d0f1f9082152dadc8d59022c52780eb3648f4b88112",
    ],
    "ctlog": [
        "ghcr.io/sigstore/scaffolding/ct_server:v0.7.31@sha256:"
        "66664ba563e7c2564ba32fb5d0e8fdeb42d7f0d5ce45f0df5d80074daea5126c",
        f"ghcr.io/sigstore/scaffolding/createtree:v0.7.31@{CREATETREE}",
        f"docker.io/curlimages/curl:8.17.0@{CURL_8_17}",
        "ghcr.io/sigstore/scaffolding/createctconfig:v0.7.31@sha256:"
        "3a061734c5be610d69830ea1e223bd6a8b86bc262b67ff7409147d7db698df51",
    ],
    "tuf": [
        "ghcr.io/sigstore/scaffolding/server@sha256:"
        "ae8eb69c7b7065456370c7025ff781487704352d73231b08d16b525b0cb16b54",
    ],
}


def upstream_values(chart: str) -> dict[str, object]:
    path = UPSTREAM / chart / "values.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing: shared/upstream holds the sigstore charts' values")
    values = yaml.safe_load(path.read_text())
    assert isinstance(values, dict)
    return values


@pytest.mark.parametrize("chart", sorted(UPSTREAM_IMAGES))
def test_values_images_of_the_upstream_sigstore_charts(chart: str) -> None:
    values = upstream_values(chart)
    for key, found in values_image_keys(values):
        print(f"{chart}: {key}: {found}")

    assert values_images(values) == UPSTREAM_IMAGES[chart]
    # Each is a valid, digest-pinned reference.
    assert all("@sha256:" in ref for ref in UPSTREAM_IMAGES[chart])


def test_values_images_key_conventions() -> None:
    keys = dict(values_image_keys(upstream_values("tuf")))
    assert list(keys) == ["deployment"]
    assert values_images(upstream_values("policy-controller")) == [
        "ghcr.io/sigstore/policy-controller/policy-controller@sha256:"
        "0bcd60beb93f4427c29cf3a669743caf58490e98ded4380c33c09f092734a6ab",
        "cgr.dev/chainguard/kubectl:latest-dev",
    ]
    tiles = {"image": {"flavor": "posix", "registry": "ghcr.io", "repository": "s/r"}}
    tiles["image"].update(version="v2", posixSHA=D, gcpSHA=E)
    assert values_images(tiles) == [f"ghcr.io/s/r/posix:v2@{D}"]
    generic = {
        "a": {"image": "nginx:1.25"},
        "b": {"image": {"repository": "quay.io/x/y", "tag": "3"}},
        "c": {"image": {"registry": "r.io", "repository": "x", "tag": "1", "digest": D}},
        "d": {"image": {"repository": "quay.io/x/z", "tag": ""}},
        "e": {"image": {"registry": "gcr.io", "repository": "no/version"}},
        "f": [{"image": "nginx:1.25"}],
    }
    assert values_images(generic) == ["nginx:1.25", "quay.io/x/y:3", f"r.io/x@{D}"]
    assert values_images(generic, app_version="7.0") == [
        "nginx:1.25",
        "quay.io/x/y:3",
        f"r.io/x@{D}",
        "quay.io/x/z:7.0",
    ]


def test_values_images_of_the_demo_chart_agree_with_its_rendering(
    helm: Path, demo_dir: Path, demo_tgz: Path
) -> None:
    values = yaml.safe_load((demo_dir / "values.yaml").read_text())
    from_values = set(values_images(values, app_version=DEMO_APP_VERSION))
    everything_on = {"metrics": {"enabled": True}, "extras": {"enabled": True}}
    source = ChartSource(DEMO_CHART, "0.1.0", path=demo_tgz, release="demo", values=everything_on)
    rendered = {i.image for i in render_images(demo_tgz, source, helm=helm)}
    assert from_values == rendered
    assert f"docker.io/busybox@{INIT_DIGEST}" in rendered
    assert f"ghcr.io/example/server:v1.0.0@{SERVER_DIGEST}" in rendered
