"""Files a user names are read within a limit, and only when they are regular files: a FIFO or
a device given as a policy, trusted root, bundle, checkpoint file, image list, key or docker
config is refused at once (not read forever, not waited on forever), a file over the limit is
refused without being read, and `-` (standard input, where a command takes it) is bounded too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offline import inputs
from offline.errors import UsageError
from offline.inputs import MAX_INPUT_SIZE, MAX_KEY_SIZE, open_input, read_input
from offline.oci.layout import OCILayout
from offline.oci.registry_auth import find_credentials
from offline.policy.policy_file import load_policy_file
from offline.sigstore.model import load_bundle, sha256_file
from offline.tlog.checkpoint_store import STATE_FILE, CheckpointStore
from offline.tlog.witness import load_witness_policy
from offline.trust.keys import load_public_key_file
from offline.trust.root import load_trusted_root
from provisioner.bundle.signing import load_private_key, load_public_key
from provisioner.bundle.spec import FileSpec, load_spec
from provisioner.copy.inventory import load_inventory
from provisioner.create.create import _copy_file


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What `call` raised (None if it returned), failing the test if it is still running after
    `seconds` (it would block on a FIFO, or read a device forever)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still reading after {seconds}s"
    return outcome[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "input.fifo"
    os.mkfifo(path)
    return path


LOADERS: dict[str, Callable[[Path], object]] = {
    "policy": load_policy_file,
    "trusted root": load_trusted_root,
    "witness policy": load_witness_policy,
    "bundle": load_bundle,
    "key": load_public_key_file,
    "public key": load_public_key,
    "private key": load_private_key,
    "bundle spec": load_spec,
    "inventory": load_inventory,
    "artifact": sha256_file,
}


@pytest.mark.parametrize("what", sorted(LOADERS))
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_is_refused_at_once(what: str, kind: str, fifo: Path) -> None:
    path = fifo if kind == "fifo" else Path("/dev/zero")
    caught = within(5, lambda: LOADERS[what](path))
    assert isinstance(caught, UsageError)
    assert f"{path} is not a regular file" in str(caught)


@pytest.mark.parametrize("what", sorted(set(LOADERS) - {"artifact"}))
def test_a_file_over_the_limit_is_refused_unread(what: str, tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with path.open("wb") as f:
        f.truncate(MAX_INPUT_SIZE + 1)  # sparse: nothing is written, nothing need be read
    caught = within(5, lambda: LOADERS[what](path))
    assert isinstance(caught, UsageError)
    assert "is larger than" in str(caught)


def test_keys_have_a_smaller_limit(tmp_path: Path) -> None:
    path = tmp_path / "k.pub"
    path.write_bytes(b"-" * (MAX_KEY_SIZE + 1))
    with pytest.raises(UsageError, match=f"key {path} is larger than {MAX_KEY_SIZE} bytes"):
        load_public_key_file(path)


def test_read_input_messages(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_input(tmp_path / "absent", "policy")
    with pytest.raises(UsageError, match="is a directory, expected a file"):
        read_input(tmp_path, "policy")
    (tmp_path / "ok").write_bytes(b"12345")
    assert read_input(tmp_path / "ok", "policy", 5) == b"12345"
    with pytest.raises(UsageError, match="is larger than 4 bytes"):
        read_input(tmp_path / "ok", "policy", 4)
    with open_input(tmp_path / "ok", "policy") as f:
        assert f.read() == b"12345"


def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    caught = within(5, lambda: read_input(link, "policy"))
    assert isinstance(caught, UsageError) and "not a regular file" in str(caught)


def test_standard_input_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    endless = io.BytesIO(b"x" * 1000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(endless))
    with pytest.raises(UsageError, match="checkpoint file on standard input is larger than 999"):
        read_input("-", "checkpoint file", 999, stdin=True)
    endless.seek(0)
    assert read_input("-", "checkpoint file", 1000, stdin=True) == b"x" * 1000
    # `-` is a file name where a command does not take standard input.
    with pytest.raises(UsageError, match="policy - does not exist"):
        read_input("-", "policy")


def test_a_fifo_as_docker_config_is_refused(fifo: Path) -> None:
    os.replace(fifo, fifo.parent / "config.json")
    environ = {"DOCKER_CONFIG": str(fifo.parent)}
    caught = within(5, lambda: find_credentials("r.example", None, environ))
    assert isinstance(caught, UsageError) and "not a regular file" in str(caught)


def _layout(tmp_path: Path) -> Path:
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    return layout


@pytest.mark.parametrize("name", ["oci-layout", "index.json", "blob"])
def test_a_fifo_in_an_image_layout_is_refused(tmp_path: Path, name: str) -> None:
    layout = _layout(tmp_path)
    digest = "ab" * 32
    target = layout / "blobs" / "sha256" / digest if name == "blob" else layout / name
    if target.exists():
        target.unlink()
    os.mkfifo(target)

    def use() -> Any:
        opened = OCILayout(layout)
        if name == "blob":
            return opened.open_blob(f"sha256:{digest}", 1)
        return opened.entries()

    caught = within(5, use)
    assert isinstance(caught, UsageError)
    assert "is not a regular file" in str(caught) or "(no index.json)" in str(caught)


def test_the_command_line_refuses_a_fifo_image_list(fifo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "offline.cli", "verify", "--images-from", str(fifo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"image list {fifo} is not a regular file" in lines[0]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_bundle_file_entry_from_a_fifo_or_device_is_refused(
    kind: str, fifo: Path, tmp_path: Path
) -> None:
    source = fifo if kind == "fifo" else Path("/dev/zero")
    entry = FileSpec(path="data.bin", source=source, sha256="0" * 64)
    caught = within(5, lambda: _copy_file(entry, tmp_path / "partial", "files"))
    assert isinstance(caught, UsageError)
    assert f"files entry data.bin: source {source} is not a regular file" in str(caught)
    assert not list((tmp_path / "partial").rglob("*.partial"))


def test_a_fifo_in_the_checkpoint_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store" / "some-log").mkdir(parents=True)
    os.mkfifo(tmp_path / "store" / "some-log" / STATE_FILE)
    caught = within(5, lambda: CheckpointStore(tmp_path / "store").states())
    assert isinstance(caught, UsageError) and "is not a regular file" in str(caught)


def test_limits_are_what_the_documentation_says() -> None:
    assert inputs.MAX_INPUT_SIZE == 64 * 1024 * 1024
    assert inputs.MAX_KEY_SIZE == 1024 * 1024
