"""`bundle create` carries several images at once: the bundle does not depend on the order in
which the images' copies run (same index.json, same manifest content), a blob or image shared
by several is fetched once, and a failed image leaves no bundle and is the one named."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from offline.errors import AirgapError
from offline.oci.blobstream import BlobReader
from offline.oci.registry import Repository
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.manifest import MANIFEST_FILE, OCI_DIR
from provisioner.create import create as create_module
from tests.bundle_sites import (
    SourceImage,
    create,
    operator_key,
    push_graph,
    registry_options,
    unique_repository,
    write_spec,
)
from tests.image_graphs import image_of
from tests.oci_images import push_image, random_layer
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow


@pytest.fixture
def images(referrers_registry: RegistryServer, request: pytest.FixtureRequest) -> list[SourceImage]:
    rng = random.Random(request.node.name)
    return [
        push_graph(referrers_registry, unique_repository(request, f"app{i}"), rng) for i in range(4)
    ]


def _finishing_in(order: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The images' copies run one after another in `order` (each job waits for its turn)."""
    real_carry = create_module._carry
    done: list[str] = []
    condition = threading.Condition()

    def carry(sources, layout, image, ref, *rest):  # type: ignore[no-untyped-def]
        before = order.index(image.reference)
        with condition:
            assert condition.wait_for(lambda: len(done) == before, timeout=60)
        try:
            return real_carry(sources, layout, image, ref, *rest)
        finally:
            with condition:
                done.append(image.reference)
                condition.notify_all()

    monkeypatch.setattr(create_module, "_carry", carry)


def _layout_files(bundle: Path) -> dict[str, bytes]:
    root = bundle / OCI_DIR
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_bundle_is_the_same_whichever_order_the_images_are_carried_in(
    referrers_registry: RegistryServer,
    images: list[SourceImage],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", images=[i.reference for i in images])
    _, key = operator_key(tmp_path)
    options = registry_options(referrers_registry)

    monkeypatch.setattr(create_module, "IMAGE_JOBS", 1)
    one_by_one = create(spec, tmp_path / "one", key, options)
    monkeypatch.setattr(create_module, "IMAGE_JOBS", 4)
    _finishing_in([images[i].reference for i in (3, 1, 2, 0)], monkeypatch)
    at_once = create(spec, tmp_path / "many", key, options)

    assert _layout_files(at_once.path) == _layout_files(one_by_one.path)
    for field in ("layout", "images", "blobs", "on_target"):
        assert getattr(at_once.manifest, field) == getattr(one_by_one.manifest, field)
    assert [o.reference for o in at_once.images] == [i.reference for i in images]
    assert verify_bundle_dir(at_once.path, key.public_key()).ok


def test_an_image_named_twice_is_carried_once_and_listed_twice(
    referrers_registry: RegistryServer, images: list[SourceImage], tmp_path: Path
) -> None:
    first, second = images[0].reference, images[1].reference
    by_digest = f"{first.rsplit(':', 1)[0]}@{images[0].graph.index.digest}"
    spec = write_spec(tmp_path / "spec.yaml", images=[first, second, by_digest])
    _, key = operator_key(tmp_path)

    result = create(spec, tmp_path / "out", key, registry_options(referrers_registry))

    assert [e.reference for e in result.manifest.images] == [first, second, by_digest]
    again = result.images[2].report
    assert again.manifests and set(again.manifests.values()) == {"present"}
    assert verify_bundle_dir(result.path, key.public_key()).ok


def test_a_layer_that_images_carried_at_once_share_is_fetched_once(
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(request.node.name)
    base = random_layer(rng, 256 * 1024)[0]
    references = []
    with referrers_registry.client() as registry:
        for i in range(4):  # four images (four digests), one base layer
            image = image_of(rng, [base, random_layer(rng, 2048)[0]], ("linux", "amd64"))
            repository = unique_repository(request, f"app{i}")
            push_image(registry.repository(repository), image, "v1")
            references.append(f"{referrers_registry.host}/{repository}:v1")
    spec = write_spec(tmp_path / "spec.yaml", images=references)
    _, key = operator_key(tmp_path)
    fetched: Counter[str] = Counter()
    real_open = Repository.open_blob

    def open_blob(self: Repository, digest: str, size: int | None = None) -> BlobReader:
        fetched[digest] += 1
        time.sleep(0.05)  # every image asks for the base before any copy of it ends
        return real_open(self, digest, size)

    monkeypatch.setattr(Repository, "open_blob", open_blob)
    monkeypatch.setattr(create_module, "IMAGE_JOBS", 4)
    result = create(spec, tmp_path / "out", key, registry_options(referrers_registry))

    assert fetched[base.digest] == 1
    assert max(fetched.values()) == 1
    assert [r.blobs[base.digest] for r in (o.report for o in result.images)].count("copied") == 1
    assert verify_bundle_dir(result.path, key.public_key()).ok


def test_a_failed_image_leaves_no_bundle_and_the_first_failure_is_named(
    referrers_registry: RegistryServer,
    images: list[SourceImage],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", images=[i.reference for i in images])
    _, key = operator_key(tmp_path)
    real_carry = create_module._carry
    broken = {images[1].reference, images[3].reference}

    def carry(sources, layout, image, ref, *rest):  # type: ignore[no-untyped-def]
        if image.reference in broken:
            if image.reference == images[1].reference:
                time.sleep(0.2)  # the later image fails first
            raise create_module.CreateError(f"fetching {image.reference} failed")
        return real_carry(sources, layout, image, ref, *rest)

    monkeypatch.setattr(create_module, "_carry", carry)
    with pytest.raises(AirgapError, match=f"fetching {images[1].reference} failed"):
        create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial" / MANIFEST_FILE).exists()

    monkeypatch.undo()
    result = create(spec, tmp_path / "out", key, registry_options(referrers_registry))
    assert verify_bundle_dir(result.path, key.public_key()).ok
