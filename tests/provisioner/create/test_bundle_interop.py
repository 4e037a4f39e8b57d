"""Other tools read a bundle's OCI layout as it is: skopeo copies an image out of it with its
digest unchanged, oras finds the referrers in it, crane pushes every image in it."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioner.create.create import CreateResult
from tests.bundle_sites import (
    SourceImage,
    create,
    operator_key,
    push_graph,
    registry_options,
    unique_repository,
    write_spec,
)
from tests.registries import RegistryServer
from tests.tools import ToolMissing, go_tool

pytestmark = pytest.mark.slow


def _program(name: str) -> str:
    try:
        return str(go_tool(name))
    except ToolMissing as exc:
        pytest.fail(str(exc))


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def bundle(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[CreateResult, SourceImage]:
    rng = random.Random(request.node.name)
    image = push_graph(referrers_registry, unique_repository(request, "app"), rng)
    spec = write_spec(tmp_path / "spec.yaml", images=[image.reference])
    _, key = operator_key(tmp_path)
    return create(spec, tmp_path / "out", key, registry_options(referrers_registry)), image


def test_skopeo_copies_an_image_out_of_a_bundle_unchanged(
    bundle: tuple[CreateResult, SourceImage], docker_registry: RegistryServer
) -> None:
    result, image = bundle
    skopeo = shutil.which("skopeo")
    assert skopeo is not None, "skopeo is not installed (bash .ci/setup installs it)"
    layout = result.path / "oci"
    raw = _run(skopeo, "inspect", "--raw", f"oci:{layout}:{image.reference}")
    assert raw.encode() == image.graph.index.manifest
    assert docker_registry.credentials is not None
    creds = f"{docker_registry.credentials.username}:{docker_registry.credentials.password}"
    _run(
        skopeo,
        "--insecure-policy",
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--dest-cert-dir",
        str(docker_registry.cert_dir),
        "--dest-creds",
        creds,
        f"oci:{layout}:{image.reference}",
        f"docker://{docker_registry.host}/interop/from-bundle:v1",
    )
    copied = docker_registry.client().repository("interop/from-bundle").resolve("v1")
    assert copied.digest == image.graph.index.digest


def test_oras_finds_the_referrers_in_a_bundle(bundle: tuple[CreateResult, SourceImage]) -> None:
    result, image = bundle
    layout = result.path / "oci"
    out = _run(
        _program("oras"),
        "discover",
        "--no-tty",
        "--oci-layout",
        "--format",
        "json",
        f"{layout}@{image.graph.index.digest}",
    )
    assert image.graph.sbom.digest in out
    fetched = _run(
        _program("oras"),
        "manifest",
        "fetch",
        "--oci-layout",
        f"{layout}@{image.graph.sbom_signature.digest}",
    )
    assert fetched.encode() == image.graph.sbom_signature.manifest


def test_crane_pushes_every_image_of_a_bundle(
    bundle: tuple[CreateResult, SourceImage], referrers_registry: RegistryServer
) -> None:
    result, image = bundle
    target = f"{referrers_registry.host}/interop/crane-all:bundle"
    _run(_program("crane"), "push", "--insecure", "--index", str(result.path / "oci"), target)
    index = json.loads(_run(_program("crane"), "manifest", "--insecure", target))
    pushed = {m["digest"] for m in index["manifests"]}
    assert image.graph.index.digest in pushed
    assert image.graph.index_sig.digest in pushed
