"""What the library says is true for every caller: its errors name no command-line flag (a
command, a policy file and a bundle spec all reach the same code) and no command that does not
exist yet."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline.cli.main import main
from provisioner.cli.main import main as operator_main
from tests.conftest import REPO
from tests.oci_images import make_image
from tests.signed_layout import SignedLayout

EXAMPLES = REPO / "offline" / "examples"


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SignedLayout:
    return SignedLayout(tmp_path, capsys)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> str:
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_keyless_bundle_checked_against_a_key_says_so_without_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "other.pub"
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    bundle, artifact = EXAMPLES / "a.txt.sigstore.json", EXAMPLES / "a.txt"
    root = EXAMPLES / "trusted_root.json"
    argv = ["verify-bundle", "--bundle", str(bundle), "--key", str(key)]
    err = _error(capsys, [*argv, "--trusted-root", str(root), str(artifact)], 1)
    assert "signed keylessly with a certificate, and only a key is accepted" in err
    assert "verify it against the signer's identity and OIDC issuer" in err
    assert " --" not in err


def test_a_key_signed_bundle_checked_against_an_identity_says_so_without_flags(
    site: SignedLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = site.tmp / "artifact.bin"
    artifact.write_bytes(b"an artifact\n")
    bundle = site.tmp / "artifact.sigstore.json"
    bundle.write_text(
        site.signer.log_artifact(site.log, artifact.read_bytes()).bundle_json(site.log)
    )
    identity = ["--certificate-identity", "a@example.com", "--certificate-oidc-issuer", "https://i"]
    argv = ["verify-bundle", "--bundle", str(bundle), *identity]
    err = _error(capsys, [*argv, "--trusted-root", str(site.trusted_root), str(artifact)], 1)
    assert "signed with a public key, not a certificate, and no key is accepted" in err
    assert " --" not in err


def test_a_signature_with_no_log_entry_says_one_is_required_without_flags(
    site: SignedLayout,
) -> None:
    made = make_image(random.Random(1))
    site.push_image(made, "app")
    site.sign_without_log(made.manifest)
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = verified.failures(site.ref("app"))["signature"]
    assert "no transparency log entry, and one is required (unless the log is ignored)" in reason
    assert " --" not in reason


def _commands() -> dict[str, bool]:
    """Every `airgap` command and subcommand as typed ("verify", "checkpoint add"), and whether
    it has subcommands of its own."""
    import argparse

    from offline.cli.main import build_parser
    from provisioner.cli.main import EXTENSIONS

    found: dict[str, bool] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prefix}{name}"] = any(
                        isinstance(a, argparse._SubParsersAction) for a in sub._actions
                    )
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(EXTENSIONS), "")
    return found


_NAMED = re.compile(r"`airgap ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")


def _names_a_command(commands: dict[str, bool], first: str, second: str) -> bool:
    if first not in commands:
        return False
    # A leaf's next word is an argument; a group's must be one of its subcommands, if given.
    return not commands[first] or not second or f"{first} {second}" in commands


def test_every_command_a_message_names_exists() -> None:
    commands = _commands()
    assert "checkpoint add" in commands and "verify" in commands
    missing = [
        f"{path.relative_to(REPO)}: `airgap {first} {second}`"
        for package in ("offline", "provisioner")
        for path in (REPO / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        for first, second in _NAMED.findall(node.value)
        if not _names_a_command(commands, first, second)
    ]
    assert not missing


def test_no_help_text_names_a_command_still_to_come(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        operator_main(["bundle", "import", "--help"])
    assert "airgap install" not in capsys.readouterr().out


def test_the_command_line_names_the_flag_that_lists_repositories_by_hand(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The library's catalog error names no flag; `bundle inventory`, which has one, adds it."""
    from provisioner.copy import inventory
    from provisioner.copy.catalog import CatalogUnavailable

    def no_catalog(*args: object, **kwargs: object) -> None:
        raise CatalogUnavailable(
            "registry r.test does not list its repositories (404): name the repositories to "
            "look at instead"
        )

    monkeypatch.setattr(inventory, "build_inventory", no_catalog)
    argv = ["bundle", "inventory", "--registry", "r.test", "-o", str(tmp_path / "inv.json")]
    capsys.readouterr()
    assert operator_main(argv) == 2
    [message] = capsys.readouterr().err.strip().splitlines()
    assert message.endswith("give them with --repository NAME, once per repository")
