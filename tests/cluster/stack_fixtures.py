"""pytest plugin for the stack's images (listed in tests/conftest.py's `pytest_plugins`).

`stack_images` builds the OCI layout of every image the stack's charts run, once per session
(seconds when cached: see stack_images.py); `internal_stack_images` pushes them into the test
cluster's internal registry, digests unchanged, and gives each image's reference by digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.cluster.node import Cluster
from tests.cluster.stack_images import StackImages, build_stack_images, push


@pytest.fixture(scope="session")
def stack_images() -> StackImages:
    return build_stack_images()


@pytest.fixture(scope="session")
def internal_stack_images(cluster: Cluster, stack_images: StackImages) -> Mapping[str, str]:
    """Upstream name (with or without its tag) -> the image in the internal registry, by digest."""

    def run(argv: Sequence[str]) -> str:
        return cluster.output(argv, timeout=300)

    authfile = Path(cluster.env["DOCKER_CONFIG"]) / "config.json"
    pushed = push(stack_images, cluster.registry, run, authfile=authfile)
    return {**pushed, **{name.rsplit(":", 1)[0]: ref for name, ref in pushed.items()}}
