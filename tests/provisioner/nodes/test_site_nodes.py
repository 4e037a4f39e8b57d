"""The site's `nodes` block (provisioner.stack.site): defaults, and every bad field refused in
one line that names it."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from offline.errors import UsageError
from provisioner.stack.site import parse_site
from tests.provisioner.stack.sites import SITE_PATH, lab_site, site_document


def refusal(**nodes: object) -> str:
    with pytest.raises(UsageError) as info:
        parse_site(site_document(nodes=nodes), SITE_PATH)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"site {SITE_PATH}: nodes")
    return message


def test_defaults() -> None:
    site = lab_site(nodes={"image": "docker.io/library/busybox:1.37"})
    assert site.nodes is not None
    assert site.nodes.image.name == "docker.io/library/busybox"
    assert site.nodes.trust_dir == PurePosixPath("/etc/sigstore")
    assert site.nodes.containerd_certs_dir == PurePosixPath("/etc/containerd/certs.d")
    assert site.namespace("nodes") == "airgap-system"
    assert lab_site().nodes is None
    assert lab_site(namespaces={"nodes": "trust"}).namespace("nodes") == "trust"


def test_the_image_is_required_and_must_be_a_reference() -> None:
    assert "nodes: missing" in refusal() or "image" in refusal()
    assert "nodes.image" in refusal(image="UPPER CASE")


@pytest.mark.parametrize(
    "directory",
    [
        "etc/sigstore",
        "/etc",
        "/",
        "/etc/sigstore/",
        "/etc/../root",
        "/etc/./x",
        '/etc/a"b',
        "/etc/a b",
    ],
)
def test_node_directories_are_plain_absolute_and_at_least_two_deep(directory: str) -> None:
    message = refusal(image="busybox:1", trustDir=directory)
    assert message.startswith(f"site {SITE_PATH}: nodes.trustDir: ")
    message = refusal(image="busybox:1", containerdCertsDir=directory)
    assert message.startswith(f"site {SITE_PATH}: nodes.containerdCertsDir: ")


def test_the_trust_dir_and_certs_dir_do_not_overlap() -> None:
    assert "is also containerdCertsDir" in refusal(
        image="busybox:1", trustDir="/etc/x", containerdCertsDir="/etc/x"
    )
    assert "inside containerdCertsDir" in refusal(
        image="busybox:1", trustDir="/etc/certs.d/sigstore", containerdCertsDir="/etc/certs.d"
    )
    assert "inside trustDir" in refusal(
        image="busybox:1", trustDir="/etc/sigstore", containerdCertsDir="/etc/sigstore/certs.d"
    )


def test_unknown_keys_are_refused() -> None:
    assert "trustdir" in refusal(image="busybox:1", trustdir="/etc/sigstore")
