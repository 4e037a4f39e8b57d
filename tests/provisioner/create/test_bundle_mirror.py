"""`bundle create --registry-mirror UPSTREAM=MIRROR[/PREFIX]`: a connected side that reaches the
public registries only through a mirror (a pull-through cache, a copy) still carries the images
under their upstream names, and the mirror can serve nothing but the bytes each digest names."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from offline.errors import UsageError
from offline.oci.sources import parse_mirror
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.signing import load_public_key
from provisioner.create.create import CreateError
from tests.bundle_sites import create, operator_key, push_graph, registry_options, write_spec
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow


def test_images_come_from_the_mirror_and_keep_their_upstream_names(
    referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    source = push_graph(referrers_registry, "mirror/ghcr/acme/app", random.Random(1))
    digest = source.graph.index.digest
    upstream = f"ghcr.io/acme/app:v1@{digest}"
    spec = write_spec(tmp_path / "spec.yaml", images=[upstream])
    public, key = operator_key(tmp_path)
    options = registry_options(referrers_registry).replace(
        mirrors={"ghcr.io": f"{referrers_registry.host}/mirror/ghcr"}
    )

    result = create(spec, tmp_path / "out", key, options)

    assert verify_bundle_dir(result.path, load_public_key(public)).ok
    (entry,) = result.manifest.images
    assert (entry.reference, entry.digest) == (upstream, digest)
    assert {k: len(v) for k, v in entry.attachments.items()} == {
        "cosign-sig": 1,
        "cosign-att": 1,
        "referrer": 3,
    }


def test_a_mirror_cannot_serve_another_image_for_a_pinned_digest(
    referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    wanted = push_graph(referrers_registry, "elsewhere/acme/app", random.Random(2))
    # The mirror holds another image under the same name and tag.
    push_graph(referrers_registry, "mirror2/acme/app", random.Random(3))
    spec = write_spec(
        tmp_path / "spec.yaml", images=[f"ghcr.io/acme/app:v1@{wanted.graph.index.digest}"]
    )
    _public, key = operator_key(tmp_path)
    options = registry_options(referrers_registry).replace(
        mirrors={"ghcr.io": f"{referrers_registry.host}/mirror2"}
    )

    with pytest.raises(CreateError):
        create(spec, tmp_path / "out", key, options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "pair"),
    [
        ("ghcr.io=mirror.internal:5000/ghcr", ("ghcr.io", "mirror.internal:5000/ghcr")),
        ("docker.io=127.0.0.1:5000", ("docker.io", "127.0.0.1:5000")),
        ("index.docker.io=m.internal/hub/library", ("docker.io", "m.internal/hub/library")),
    ],
)
def test_a_mirror_is_upstream_equals_host_and_optional_prefix(
    given: str, pair: tuple[str, str]
) -> None:
    assert parse_mirror(given) == pair


@pytest.mark.parametrize(
    "given",
    ["ghcr.io", "=mirror.internal", "ghcr.io=", "ghcr.io=https://mirror", "ghcr.io=m/UPPER"],
)
def test_a_malformed_mirror_is_refused(given: str) -> None:
    with pytest.raises(UsageError, match="registry mirror"):
        parse_mirror(given)


def _airgap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_cli_refuses_a_bad_or_repeated_mirror_in_one_line_before_anything_is_made(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", images=[])
    operator_key(tmp_path)
    for mirrors in (["ghcr.io"], ["ghcr.io=a.internal", "ghcr.io=b.internal"]):
        flags = [f"--registry-mirror={m}" for m in mirrors]
        out = str(tmp_path / "out")
        key = str(tmp_path / "operator.key")
        result = _airgap("bundle", "create", str(spec), "-o", out, "--sign-key", key, *flags)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "mirror" in result.stderr
        assert not (tmp_path / "out").exists()
        assert not (tmp_path / "out.partial").exists()
