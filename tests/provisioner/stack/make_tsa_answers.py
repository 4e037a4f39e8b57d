"""Remake the recorded timestamp authority answers that tests/provisioner/stack/test_probes.py
feeds the TSA probe (tsa_answers/):

    pytest tests/provisioner/stack/make_tsa_answers.py

Two TSAs, each with a chain airgap made for a site, run as the pinned timestamp-server (as
test_keys_in_servers.py runs it) and asked by the install's own probe to timestamp one message;
each one's chain and answer are written beside that message. Not collected by the normal run (its
name does not start with test_).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.stack.keys import generate_keyset, public_material
from provisioner.stack.probes import check_tsa
from tests.provisioner.stack.sites import lab_site
from tests.provisioner.stack.test_keys_in_servers import timestamp_server
from tests.stack.procs import ProcessManager

OUT = Path(__file__).parent / "tsa_answers"
MESSAGE = b"timestamped by a site's TSA for the TSA probe's tests\n"
pytestmark = pytest.mark.slow


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessManager]:
    manager = ProcessManager(tmp_path / "logs", base_env={"HOME": str(tmp_path)})
    yield manager
    manager.stop_all()


def test_make_tsa_answers(procs: ProcessManager, tmp_path: Path) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "message").write_bytes(MESSAGE)
    for name in ("site", "other"):
        chain, answer = timestamp_of_message(procs, tmp_path / name)
        (OUT / f"{name}-chain.pem").write_bytes(chain)
        (OUT / f"{name}-answer.der").write_bytes(answer)


def timestamp_of_message(procs: ProcessManager, directory: Path) -> tuple[bytes, bytes]:
    """A new site's TSA chain, and its server's answer to the probe for MESSAGE."""
    site = lab_site(tsa={"enabled": True})
    keys = generate_keyset(site)
    chain = public_material(keys).tsa_chain
    assert chain is not None
    answers: list[bytes] = []
    with timestamp_server(procs, keys, site, directory) as server:

        def post(path: str, body: bytes, content_type: str) -> bytes:
            answers.append(server.post(path, body, content_type))
            return answers[-1]

        check_tsa(server.get, post, chain, message=MESSAGE)
    return chain, answers[-1]
