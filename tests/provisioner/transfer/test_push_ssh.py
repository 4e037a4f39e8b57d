"""`push_files`: moving bundle files to a host over SSH, against a real OpenSSH sshd.

The server (tests/sshd.py) runs on loopback as the current user, so the "remote" directory is
a local temporary directory the tests can inspect and tamper with. Its second port is an
SFTP-only account (`ForceCommand internal-sftp`), where no `sha256sum` can run and the push
hashes by reading files back over SFTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError, VerificationFailure
from provisioner.transfer.push_ssh import PushReport, TransferItem, push_files, push_order
from provisioner.transfer.ssh import (
    PASSPHRASE_ENV,
    PASSWORD_ENV,
    Destination,
    HostKeyError,
    PushError,
    parse_destination,
)
from tests.sshd import SSH_KEYGEN, SshServer, keygen, sshd_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow

SECRET = "correct-horse-battery-staple-7731"


class Interrupted(Exception):
    """What a Ctrl-C or a dropped link looks like to the push: it stops mid-file."""


def item_for(path: Path, name: str | None = None) -> TransferItem:
    data = path.read_bytes()
    return TransferItem(path, name or path.name, len(data), hashlib.sha256(data).hexdigest())


def bundle_files(
    directory: Path, sizes: tuple[int, ...] = (1_500_000, 300_000, 0)
) -> list[TransferItem]:
    """Parts, a parts list and its signature, as `airgap bundle create` lays them out."""
    directory.mkdir(exist_ok=True)
    rng = random.Random(1234)
    parts = []
    for number, size in enumerate(sizes, 1):
        path = directory / f"stack.tar.zst.part{number:04d}"
        path.write_bytes(rng.randbytes(size))
        parts.append(item_for(path))
    listing = directory / "stack.parts.json"
    listing.write_text(
        json.dumps(
            {"parts": [{"name": p.remote_name, "size": p.size, "sha256": p.sha256} for p in parts]}
        )
    )
    signature = directory / "stack.parts.json.sig"
    signature.write_bytes(rng.randbytes(64))
    # Given lists first on purpose: push_order must put them last.
    return push_order([item_for(listing), item_for(signature), *parts])


def push(
    server: SshServer,
    items: list[TransferItem],
    remote: Path,
    known_hosts: Path | None,
    **options: Any,
) -> PushReport:
    settings: dict[str, Any] = {
        "port": server.port,
        "known_hosts": known_hosts,
        "identity_file": server.client_key,
        "environ": {},
    }
    settings.update(options)
    return push_files(items, server.destination(remote), **settings)


def assert_identical(items: list[TransferItem], remote: Path) -> None:
    for item in items:
        assert (remote / item.remote_name).read_bytes() == item.local_path.read_bytes()
    assert not list(remote.rglob("*.partial"))


def one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def fingerprint(public_key_line: str, tmp_path: Path) -> str:
    """The SHA256 fingerprint as OpenSSH's own ssh-keygen prints it."""
    pub = tmp_path / "host.pub"
    pub.write_text(public_key_line + "\n")
    out = subprocess.run([str(SSH_KEYGEN), "-lf", str(pub)], capture_output=True, check=True)
    return out.stdout.decode().split()[1]


@pytest.fixture
def known_hosts(tmp_path: Path, sshd_server: SshServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(
        sshd_server.known_hosts_line() + sshd_server.known_hosts_line(sshd_server.sftp_only_port)
    )
    return path


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    directory = tmp_path / "remote"
    directory.mkdir()
    return directory


@pytest.fixture
def items(tmp_path: Path) -> list[TransferItem]:
    return bundle_files(tmp_path / "local")


# --- moving files ---------------------------------------------------------------------------


def test_push_order_sends_parts_then_the_signature_then_the_list(
    items: list[TransferItem],
) -> None:
    names = [i.remote_name for i in items]
    assert names[-2:] == ["stack.parts.json.sig", "stack.parts.json"]
    assert all(".part0" in name for name in names[:-2])


def test_full_push_sends_every_file_verified_on_the_far_side(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    seen: list[tuple[int, int]] = []
    report = push(
        sshd_server, items, remote, known_hosts, progress=lambda d, t: seen.append((d, t))
    )

    assert_identical(items, remote)
    assert [r.remote_name for r in report.items] == [i.remote_name for i in items]
    assert {r.status for r in report.items} == {"sent"}
    assert {r.verified_by for r in report.items} == {"sha256sum"}
    total = sum(i.size for i in items)
    assert report.bytes_sent == total
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert report.to_json()["bytesSent"] == total


def test_rerun_transfers_nothing(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    push(sshd_server, items, remote, known_hosts)
    again = push(sshd_server, items, remote, known_hosts)

    assert {r.status for r in again.items} == {"present"}
    assert again.bytes_sent == 0
    assert_identical(items, remote)


def test_interrupted_push_resumes_from_the_partial_and_ends_byte_identical(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    first = items[0]

    def stop_after_600k(done: int, total: int) -> None:
        if done >= 600_000:
            raise Interrupted

    with pytest.raises(Interrupted):
        push(sshd_server, items, remote, known_hosts, progress=stop_after_600k)

    partial = remote / f"{first.remote_name}.partial"
    kept = partial.stat().st_size
    assert 0 < kept < first.size
    assert partial.read_bytes() == first.local_path.read_bytes()[:kept]
    # Nothing is final yet, and above all not the list.
    assert sorted(p.name for p in remote.iterdir()) == [partial.name]

    report = push(sshd_server, items, remote, known_hosts)

    resumed = report.items[0]
    assert (resumed.status, resumed.resumed_from) == ("resumed", kept)
    assert resumed.bytes_sent == first.size - kept
    assert report.bytes_sent == sum(i.size for i in items) - kept
    assert_identical(items, remote)


def test_a_corrupted_final_file_is_replaced(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    push(sshd_server, items, remote, known_hosts)
    same_size = remote / items[0].remote_name
    same_size.write_bytes(b"\0" * items[0].size)
    truncated = remote / items[1].remote_name
    truncated.write_bytes(truncated.read_bytes()[:1000])

    report = push(sshd_server, items, remote, known_hosts)

    statuses = {r.remote_name: r.status for r in report.items}
    assert statuses[items[0].remote_name] == "replaced"
    assert statuses[items[1].remote_name] == "replaced"
    assert {statuses[i.remote_name] for i in items[2:]} == {"present"}
    assert_identical(items, remote)


@pytest.mark.parametrize("account", ["shell", "sftp-only"])
def test_a_corrupted_partial_is_detected_not_renamed_and_removed(
    account: str,
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    known_hosts: Path,
) -> None:
    port = sshd_server.port if account == "shell" else sshd_server.sftp_only_port
    first = items[0]
    partial = remote / f"{first.remote_name}.partial"
    partial.write_bytes(b"\xff" * 100_000)  # the right length for a prefix, the wrong bytes

    with pytest.raises(VerificationFailure) as failure:
        push(sshd_server, items, remote, known_hosts, port=port)

    message = one_line(failure)
    assert first.remote_name in message and first.sha256 in message
    assert not (remote / first.remote_name).exists()
    assert not partial.exists()  # so the next run starts the file afresh
    assert list(remote.iterdir()) == []  # the push stopped: no list names a missing part

    report = push(sshd_server, items, remote, known_hosts, port=port)
    assert report.items[0].status == "sent"
    assert_identical(items, remote)


def test_an_sftp_only_account_is_verified_by_reading_back(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    port = sshd_server.sftp_only_port
    report = push(sshd_server, items, remote, known_hosts, port=port)
    assert {r.verified_by for r in report.items} == {"sftp"}
    assert_identical(items, remote)

    again = push(sshd_server, items, remote, known_hosts, port=port)
    assert {(r.status, r.verified_by) for r in again.items} == {("present", "sftp")}


def test_a_bundle_directory_is_pushed_with_its_subdirectories(
    sshd_server: SshServer, tmp_path: Path, remote: Path, known_hosts: Path
) -> None:
    local = tmp_path / "bundle"
    (local / "oci" / "blobs" / "sha256").mkdir(parents=True)
    blob = local / "oci" / "blobs" / "sha256" / "ab12"
    blob.write_bytes(b"layer")
    manifest = local / "airgap-bundle.json"
    manifest.write_text("{}")
    items = push_order(
        [item_for(manifest, "airgap-bundle.json"), item_for(blob, "oci/blobs/sha256/ab12")]
    )
    assert items[-1].remote_name == "airgap-bundle.json"

    push(sshd_server, items, remote, known_hosts)

    assert_identical(items, remote)


# --- host keys ------------------------------------------------------------------------------


def test_an_unknown_host_is_refused_with_its_fingerprint(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "empty_known_hosts"

    with pytest.raises(HostKeyError) as refused:
        push(sshd_server, items, remote, known_hosts)

    message = one_line(refused)
    assert fingerprint(sshd_server.host_public_key, tmp_path) in message
    assert sshd_server.host_key_name in message and "accept it as a new host key" in message
    assert refused.value.exit_code == 1
    assert not known_hosts.exists()
    assert list(remote.iterdir()) == []


def test_accept_new_records_the_key_and_the_next_run_needs_no_flag(
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default ~/.ssh/known_hosts
    known_hosts = tmp_path / "home" / ".ssh" / "known_hosts"

    first = push(sshd_server, items[:1], remote, None, accept_new_host_key=True)

    assert first.host_key_added
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    assert known_hosts.parent.stat().st_mode & 0o777 == 0o700
    # OpenSSH itself finds the entry.
    found = subprocess.run(
        [str(SSH_KEYGEN), "-F", sshd_server.host_key_name, "-f", str(known_hosts)],
        capture_output=True,
        check=True,
    )
    assert sshd_server.host_public_key.split()[1].encode() in found.stdout

    second = push(sshd_server, items, remote, None)
    assert not second.host_key_added
    assert_identical(items, remote)


def test_a_hashed_known_hosts_entry_is_honoured(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    subprocess.run([str(SSH_KEYGEN), "-H", "-f", str(known_hosts)], capture_output=True, check=True)
    assert "127.0.0.1" not in known_hosts.read_text()

    report = push(sshd_server, items, remote, known_hosts)

    assert not report.host_key_added
    assert_identical(items, remote)


@pytest.mark.parametrize("recorded_type", ["ed25519", "ecdsa"])
def test_a_changed_host_key_is_refused_even_with_accept_new(
    recorded_type: str,
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(
        [str(SSH_KEYGEN), "-q", "-t", recorded_type, "-N", "", "-f", str(other)], check=True
    )
    known_hosts = tmp_path / "known_hosts"
    public = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known_hosts.write_text(f"{sshd_server.host_key_name} {public}\n")
    before = known_hosts.read_bytes()

    with pytest.raises(HostKeyError) as refused:
        push(sshd_server, items, remote, known_hosts, accept_new_host_key=True)

    message = one_line(refused)
    assert "CHANGED" in message
    assert fingerprint(sshd_server.host_public_key, tmp_path) in message
    assert fingerprint(public, tmp_path) in message
    assert known_hosts.read_bytes() == before
    assert list(remote.iterdir()) == []


# --- authentication and other failures ------------------------------------------------------


def test_a_wrong_client_key_is_a_one_line_auth_error_without_secrets(
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    known_hosts: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stranger = keygen(tmp_path / "stranger")

    with pytest.raises(PushError) as denied:
        push(
            sshd_server,
            items,
            remote,
            known_hosts,
            identity_file=stranger,
            environ={PASSWORD_ENV: SECRET},
        )

    message = one_line(denied)
    assert "authentication" in message and sshd_server.user in message
    assert SECRET not in message and SECRET not in caplog.text


def test_an_encrypted_identity_uses_the_passphrase_from_the_environment(
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    known_hosts: Path,
    tmp_path: Path,
) -> None:
    key = keygen(tmp_path / "locked", passphrase=SECRET)
    authorized = sshd_server.directory / "authorized_keys"
    original = authorized.read_text()
    authorized.write_text(original + key.with_suffix(".pub").read_text())
    try:
        with pytest.raises(UsageError) as locked:
            push(sshd_server, items, remote, known_hosts, identity_file=key)
        assert PASSPHRASE_ENV in one_line(locked)

        with pytest.raises(UsageError) as wrong:
            push(
                sshd_server,
                items,
                remote,
                known_hosts,
                identity_file=key,
                environ={PASSPHRASE_ENV: "not-" + SECRET},
            )
        assert SECRET not in one_line(wrong)

        push(
            sshd_server,
            items,
            remote,
            known_hosts,
            identity_file=key,
            environ={PASSPHRASE_ENV: SECRET},
        )
    finally:
        authorized.write_text(original)
    assert_identical(items, remote)


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_remote_path_that_is_not_a_directory_is_a_one_line_error(
    what: str,
    sshd_server: SshServer,
    items: list[TransferItem],
    remote: Path,
    known_hosts: Path,
) -> None:
    target = remote / "nowhere"
    if what == "a file":
        target.write_text("")

    with pytest.raises(UsageError) as bad:
        push(sshd_server, items, target, known_hosts)

    assert str(target) in one_line(bad)


def test_a_closed_port_is_a_one_line_connection_error(
    sshd_server: SshServer, items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    with pytest.raises(PushError) as refused:
        push(sshd_server, items, remote, known_hosts, port=closed)

    assert "connection refused" in one_line(refused)


def test_a_local_file_that_does_not_match_its_size_is_refused_before_connecting(
    items: list[TransferItem], remote: Path, known_hosts: Path
) -> None:
    wrong = TransferItem(items[0].local_path, "x", items[0].size + 1, items[0].sha256)

    with pytest.raises(UsageError) as bad:
        # Port 1: nothing listens there; the check comes first.
        push_files([wrong], f"nobody@127.0.0.1:{remote}", port=1, known_hosts=known_hosts)

    assert "bytes" in one_line(bad)


# --- destinations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ops@bastion:/srv/in", Destination("ops", "bastion", "/srv/in", 2222)),
        ("ops@bastion:", Destination("ops", "bastion", ".", 2222)),
        ("ops@[fd00::1]:in@box", Destination("ops", "fd00::1", "in@box", 2222)),
    ],
)
def test_destinations_are_user_at_host_colon_path(text: str, expected: Destination) -> None:
    assert parse_destination(text, port=2222) == expected


@pytest.mark.parametrize("text", ["bastion", "/srv/in", "ops@:/srv", "-oProxyCommand=x:/srv"])
def test_malformed_destinations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_destination(text)
