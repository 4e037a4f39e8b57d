"""provisioner.nodes.material: only public material that parses goes to the nodes; everything
else is refused in one line naming the file, before anything is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.errors import UsageError
from provisioner.nodes.material import read_material
from provisioner.trust.ceremony import init_repository
from provisioner.trust.layout import RepoLayout, pinned_root
from tests.provisioner.nodes.conftest import NodesSite
from tests.provisioner.nodes.material import write_trust_dir
from tests.stack import pki


def refusal(lab: NodesSite, tuf_repo: Path | None = None) -> str:
    with pytest.raises(UsageError) as info:
        read_material(lab.site, None, tuf_repo)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_install_trust_directory_and_the_registry_ca_are_read(lab: NodesSite) -> None:
    material = read_material(lab.site, None, None)
    assert material.trust == lab.files
    assert material.registry_ca == (lab.trust_dir.parent / "registry-ca.pem").read_bytes()


def test_the_published_tuf_root_goes_along(lab: NodesSite, tmp_path: Path) -> None:
    repo = tmp_path / "tuf"
    write_trust_dir(lab.site, lab.trust_dir, tuf_repo=repo)
    generation = RepoLayout(repo).current_generation()
    assert generation is not None
    material = read_material(lab.site, None, repo)
    assert material.trust["root.json"] == pinned_root(generation).read_bytes()


def test_a_tuf_repository_that_published_nothing_is_refused(lab: NodesSite, tmp_path: Path) -> None:
    init_repository(tmp_path / "tuf")
    assert "has published nothing yet" in refusal(lab, tmp_path / "tuf")


def test_no_trusted_root_means_no_install_yet(lab: NodesSite) -> None:
    (lab.trust_dir / "trusted_root.json").unlink()
    assert "trusted_root.json does not exist: run airgap install" in refusal(lab)


def test_a_private_key_in_place_of_a_public_one_is_refused(lab: NodesSite) -> None:
    (lab.trust_dir / "rekor.pub").write_bytes(pki.pkcs8_pem(pki.ec_key()))
    assert refusal(lab).endswith(
        "rekor.pub holds a private key: only public material goes to nodes"
    )


def test_a_private_key_beside_the_registry_ca_is_refused(lab: NodesSite) -> None:
    ca = lab.trust_dir.parent / "registry-ca.pem"
    ca.write_bytes(ca.read_bytes() + pki.pkcs8_pem(pki.ec_key()))
    message = refusal(lab)
    assert "registry.caFile" in message and "holds a private key" in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("trusted_root.json", b'{"mediaType": "something else"}'),
        ("signing_config.v0.2.json", b"[1, 2]"),
        ("ctfe.pub", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        ("fulcio_v1.crt.pem", b"not a certificate"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_refused(
    lab: NodesSite, name: str, content: bytes
) -> None:
    (lab.trust_dir / name).write_bytes(content)
    assert f"{lab.trust_dir / name} is not a valid {name}: " in refusal(lab)


def test_a_checkpoint_seed_that_is_not_an_export_is_refused(lab: NodesSite) -> None:
    (lab.trust_dir / "checkpoints.json").write_text('{"format": "nope"}')
    assert "checkpoints.json: not an" in refusal(lab)
