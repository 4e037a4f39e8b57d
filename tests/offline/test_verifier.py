"""offline.verifier.Verifier: the one library call behind `airgap verify`, `airgap verify-bundle`
and `bundle create`'s check before export. Built once per run: the trusted root is found by one
lookup with one message, the checkpoint store opened once."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from offline.cli.main import main
from offline.cli.signer_flags import policy_from_flags
from offline.errors import UsageError
from offline.oci.sources import Sources
from offline.tlog.pinning import open_store
from offline.trust.root import TRUSTED_ROOT_ENV, find_trusted_root, locate_trusted_root
from offline.verifier import Verifier
from tests.oci_images import make_image
from tests.signed_layout import SignedLayout


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SignedLayout:
    return SignedLayout(tmp_path, capsys)


def _signed_images(site: SignedLayout, count: int) -> list[str]:
    references = []
    for seed in range(count):
        made = make_image(random.Random(seed))
        site.push_image(made, f"v{seed}")
        site.sign(made.manifest)
        references.append(site.ref(f"v{seed}"))
    return references


def test_verify_image_verifies_a_signed_image_against_its_policy(site: SignedLayout) -> None:
    [reference] = _signed_images(site, 1)
    verifier = Verifier.open(trusted_root=site.trusted_root, checkpoints=None, pinning="off")
    with Sources() as sources:
        result = verifier.verify_image(sources, reference, policy_from_flags(key=site.key))
    assert result.verified, result.checks


def test_a_verify_run_opens_the_checkpoint_store_once(
    site: SignedLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    real = open_store

    def counting(*args: Any) -> Any:
        opened.append(args)
        return real(*args)

    monkeypatch.setattr("offline.verifier.open_store", counting)
    references = _signed_images(site, 3)
    verified = site.verify(*references)
    assert verified.code == 0, verified
    assert len(opened) == 1


def test_the_trusted_root_comes_from_the_argument_then_the_environment_then_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given, from_env = tmp_path / "given.json", tmp_path / "env.json"
    data_dir = Path(str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(data_dir))
    assert locate_trusted_root(None) is None
    in_data_dir = data_dir / "airgap" / "trusted_root.json"
    in_data_dir.parent.mkdir(parents=True)
    in_data_dir.write_text("{}")
    assert locate_trusted_root(None) == in_data_dir
    monkeypatch.setenv(TRUSTED_ROOT_ENV, str(from_env))
    assert locate_trusted_root(None) == from_env
    assert locate_trusted_root(given) == given


def test_no_trusted_root_is_one_message_that_says_how_to_give_one_and_names_no_flag() -> None:
    with pytest.raises(UsageError) as raised:
        find_trusted_root(None)
    message = str(raised.value)
    assert message.startswith("no trusted root: give the command one"), message
    assert f"${TRUSTED_ROOT_ENV}" in message and "trusted_root.json" in message
    assert "--" not in message  # the library serves commands and bundle specs alike


def test_every_command_that_needs_a_trusted_root_says_the_same_line(
    site: SignedLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = ["--certificate-identity", "a@example.com", "--certificate-oidc-issuer", "https://i"]
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(site.log.checkpoint())
    commands = [
        ["verify", *identity, "oci:layout:app"],
        ["verify-bundle", "--bundle", str(tmp_path / "b.json"), *identity, "sha256:" + "0" * 64],
        ["checkpoint", "add", "--checkpoints", str(tmp_path), str(checkpoint)],
        ["proofs", "fetch", "--rekor", "https://rekor.invalid", str(tmp_path / "b.json")],
    ]
    messages = set()
    for command in commands:
        capsys.readouterr()
        assert main(command) == 2, command
        messages.add(capsys.readouterr().err)
    assert len(messages) == 1, messages
    [message] = messages
    assert message.startswith("airgap: no trusted root: give the command one"), message
