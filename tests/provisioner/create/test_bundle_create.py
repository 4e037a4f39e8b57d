"""`airgap bundle create`: a spec's images, with every attachment, into one signed bundle that
`bundle verify` proves whole; files checked against their SHA-256; delta bundles leave out what
the target has; a failed create never leaves a bundle that claims to be complete."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from offline.errors import AirgapError, VerificationFailure
from offline.oci.layout import OCILayout
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.manifest import MANIFEST_FILE
from provisioner.bundle.signing import load_public_key
from provisioner.copy.inventory import Inventory
from provisioner.copy.layout import RepositoryView
from tests.bundle_sites import (
    create,
    operator_key,
    push_graph,
    registry_options,
    sha256_file,
    unique_repository,
    write_spec,
)
from tests.image_graphs import check_target
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.name)


@pytest.mark.parametrize("registry", ["docker_registry", "referrers_registry"])
def test_create_carries_every_attachment_and_verifies(
    registry: str, request: pytest.FixtureRequest, rng: random.Random, tmp_path: Path
) -> None:
    server: RegistryServer = request.getfixturevalue(registry)
    image = push_graph(server, unique_repository(request, "app"), rng)
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    spec = write_spec(
        tmp_path / "spec.yaml",
        images=[image.reference],
        files=[{"path": "bin/tool", "source": "tool", "sha256": sha256_file(tool)}],
    )
    public, key = operator_key(tmp_path)

    result = create(spec, tmp_path / "out", key, registry_options(server))

    report = verify_bundle_dir(result.path, load_public_key(public))
    assert report.ok, report.problem
    (entry,) = result.manifest.images
    assert entry.digest == image.graph.index.digest
    assert {k: len(v) for k, v in entry.attachments.items()} == {
        "cosign-sig": 1,
        "cosign-att": 1,
        "referrer": 3,
    }
    layout = OCILayout(result.path / "oci")
    repository = image.reference.rsplit(":", 1)[0]
    check_target(RepositoryView(layout, repository), image.graph)
    assert (result.path / "files" / "bin" / "tool").read_bytes() == tool.read_bytes()
    assert not (tmp_path / "out.partial").exists()


def test_shared_blobs_are_stored_once(
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    first = push_graph(referrers_registry, unique_repository(request, "a"), rng)
    # The same graph under a second repository and tag: every blob is shared.
    with referrers_registry.client() as registry:
        second_repo = unique_repository(request, "b")
        from tests.image_graphs import populate

        populate(registry.repository(second_repo), random.Random(request.node.name), "v2")
    second = f"{referrers_registry.host}/{second_repo}:v2"
    spec = write_spec(tmp_path / "spec.yaml", images=[first.reference, second])
    _, key = operator_key(tmp_path)

    result = create(spec, tmp_path / "out", key, registry_options(referrers_registry))

    assert len(result.manifest.images) == 2
    assert result.manifest.images[0].digest == result.manifest.images[1].digest
    names = {
        e.annotations.get("org.opencontainers.image.ref.name")
        for e in OCILayout(result.path / "oci").entries()
    }
    assert f"{first.reference}" in names and second in names
    files = list((result.path / "oci" / "blobs" / "sha256").iterdir())
    assert len(files) == len(result.manifest.blobs)


def test_a_file_with_the_wrong_sha256_stops_the_create(
    referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(b"tampered")
    spec = write_spec(
        tmp_path / "spec.yaml",
        files=[{"path": "bin/tool", "source": "tool", "sha256": "0" * 64}],
    )
    _, key = operator_key(tmp_path)
    with pytest.raises(VerificationFailure, match=r"bin/tool: .* has sha256 .* the spec says 0+"):
        create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial" / MANIFEST_FILE).exists()


def test_an_image_that_does_not_exist_is_named(
    referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    missing = f"{referrers_registry.host}/bundles/nothing-here:v1"
    spec = write_spec(tmp_path / "spec.yaml", images=[missing])
    _, key = operator_key(tmp_path)
    with pytest.raises(AirgapError, match=f"image {missing}"):
        create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert not (tmp_path / "out").exists()


def test_an_interrupted_create_claims_nothing_and_resumes(
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = push_graph(referrers_registry, unique_repository(request, "app"), rng)
    spec = write_spec(tmp_path / "spec.yaml", images=[image.reference])
    _, key = operator_key(tmp_path)
    import errno
    import os

    real_replace = os.replace
    calls = {"n": 0}

    def full_disk(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(AirgapError, match=r"No space left on device.*rerun"):
        create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial" / MANIFEST_FILE).exists()
    monkeypatch.undo()

    result = create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert verify_bundle_dir(result.path, key.public_key()).ok


def test_delta_bundle_leaves_out_what_the_target_holds(
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    image = push_graph(referrers_registry, unique_repository(request, "app"), rng)
    spec = write_spec(tmp_path / "spec.yaml", images=[image.reference])
    _, key = operator_key(tmp_path)
    full = create(spec, tmp_path / "full", key, registry_options(referrers_registry))
    base = image.graph.base
    inventory = Inventory(registry="target", blobs={base.digest: len(base.data)})

    delta = create(spec, tmp_path / "delta", key, registry_options(referrers_registry), inventory)

    assert [(b.digest, b.size) for b in delta.manifest.on_target] == [(base.digest, len(base.data))]
    assert base.digest not in {b.digest for b in delta.manifest.blobs}
    assert len(delta.manifest.blobs) == len(full.manifest.blobs) - 1
    assert verify_bundle_dir(delta.path, key.public_key()).ok


def test_a_platform_filter_carries_only_that_platform_and_says_what_it_breaks(
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    image = push_graph(referrers_registry, unique_repository(request, "app"), rng)
    spec = write_spec(
        tmp_path / "spec.yaml", images=[{"ref": image.reference, "platforms": ["linux/arm64"]}]
    )
    _, key = operator_key(tmp_path)
    warnings: list[str] = []

    result = create(
        spec, tmp_path / "out", key, registry_options(referrers_registry), warnings=warnings
    )

    (entry,) = result.manifest.images
    arm64 = image.graph.index.images[1]
    assert entry.digest == arm64.digest
    assert entry.attachments == {"cosign-att": (image.graph.child_att.digest,)}
    assert image.graph.index.digest not in {b.digest for b in result.manifest.blobs}
    assert any("signatures and attestations made on the index" in w for w in warnings), warnings
    assert verify_bundle_dir(result.path, key.public_key()).ok


def test_each_create_of_a_name_gets_a_larger_sequence(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    image = push_graph(docker_registry, unique_repository(request, "app"), rng)
    spec = write_spec(tmp_path / "spec.yaml", images=[image.reference])
    _, key = operator_key(tmp_path)
    options = registry_options(docker_registry)
    first = create(spec, tmp_path / "one", key, options).manifest
    second = create(spec, tmp_path / "two", key, options).manifest
    assert first.name == second.name == "test"
    assert second.sequence > first.sequence > 1_700_000_000_000  # milliseconds of the clock
    from provisioner.bundle.spec import load_spec
    from provisioner.create.create import create_bundle

    chosen = create_bundle(
        load_spec(spec), tmp_path / "three", signing_key=key, options=options, sequence=42
    )
    assert chosen.manifest.sequence == 42
    # The library names no flag: a caller other than the command may give the sequence.
    with pytest.raises(AirgapError, match=r"^sequence 0 is not an integer from 1"):
        create_bundle(
            load_spec(spec), tmp_path / "four", signing_key=key, options=options, sequence=0
        )
    assert not (tmp_path / "four.partial").exists() or not any(
        (tmp_path / "four.partial").iterdir()
    )


def test_a_resumed_create_refuses_what_another_spec_left_and_drops_cut_blob_writes(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    """Every file of a bundle is signed or refused: a create does not sign around a file it
    did not make (a later verify would refuse the bundle)."""
    image = push_graph(docker_registry, unique_repository(request, "app"), rng)
    spec = write_spec(tmp_path / "spec.yaml", images=[image.reference])
    _, key = operator_key(tmp_path)
    partial = tmp_path / "out.partial"
    (partial / "files").mkdir(parents=True)
    (partial / "files" / "old-tool").write_bytes(b"from another spec")
    with pytest.raises(AirgapError, match=r"holds files, which this create does not make"):
        create(spec, tmp_path / "out", key, registry_options(docker_registry))
    assert not (tmp_path / "out").exists()

    (partial / "files" / "old-tool").unlink()
    (partial / "files").rmdir()
    cut = partial / "oci" / "blobs" / "sha256" / ".tmp-x1y2.partial"
    cut.write_bytes(b"half a blob")
    result = create(spec, tmp_path / "out", key, registry_options(docker_registry))
    assert verify_bundle_dir(result.path, key.public_key()).ok
