"""Exit codes come from the error's class: an environment that fails (a host unreachable, an SSH
login refused, Fulcio or Rekor down while signing keylessly) is exit 2 in every command, as bad
input is; only material that does not verify is exit 1."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from offline.errors import EnvironmentFailure, UsageError, VerificationFailure
from offline.oci.registry_http import RegistryUnavailable
from offline.tlog.rekor_client import RekorUnavailable
from provisioner.bundle.keyless import KeylessSigner, KeylessSigningError
from provisioner.cli.main import main
from provisioner.transfer.ssh import HostKeyError, PushError
from tests.sshd import SshServer, keygen, sshd_server_fixture  # noqa: F401


def test_each_kind_of_failure_has_its_exit_code() -> None:
    assert UsageError.exit_code == EnvironmentFailure.exit_code == 2
    assert VerificationFailure.exit_code == 1
    assert PushError.exit_code == KeylessSigningError.exit_code == 2
    assert HostKeyError.exit_code == 1  # an unknown or changed host key is a failed check
    for unreachable in (PushError, KeylessSigningError, RegistryUnavailable, RekorUnavailable):
        assert issubclass(unreachable, EnvironmentFailure), unreachable


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    directory = tmp_path / "bundle"
    directory.mkdir()
    (directory / "manifest.json").write_text("{}")
    return directory


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_push_ssh_to_an_unreachable_host_exits_2(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = f"ops@127.0.0.1:{tmp_path / 'remote'}"
    code = main(["bundle", "push-ssh", str(bundle), destination, "--port", str(_closed_port())])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "connection refused" in err and err.count("\n") == 1


def test_push_ssh_with_a_refused_login_exits_2(
    sshd_server: SshServer, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd_server.known_hosts_line())
    remote = tmp_path / "remote"
    remote.mkdir()
    stranger = keygen(tmp_path / "stranger")
    code = main(
        [
            "bundle",
            "push-ssh",
            str(bundle),
            sshd_server.destination(remote),
            "--port",
            str(sshd_server.port),
            "--known-hosts",
            str(known_hosts),
            "--identity",
            str(stranger),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "authentication" in err and err.count("\n") == 1


def test_keyless_signing_with_sigstore_unreachable_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sigstore.sign import SigningContext

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("Connection refused")

    # Nothing is contacted: the trust config and token are stand-ins, Fulcio refuses at once.
    monkeypatch.setattr(KeylessSigner, "_load_config", lambda self: object())
    monkeypatch.setattr(KeylessSigner, "_identity_token", lambda self: object())
    monkeypatch.setattr(SigningContext, "from_trust_config", unreachable)
    with pytest.raises(KeylessSigningError) as failed:
        KeylessSigner("token").sign(b"data")
    assert failed.value.exit_code == 2
    assert str(failed.value).startswith("keyless signing failed: ")
