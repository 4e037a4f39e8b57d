"""Progress bars: drawn on a terminal from the copy events, silent otherwise."""

from __future__ import annotations

import pytest

from provisioner.progress import byte_progress, transfer_progress


def test_a_transfer_bar_takes_every_copy_event() -> None:
    with transfer_progress("bundle", enabled=True) as progress:
        progress("blob", "sha256:" + "a" * 64, 100)
        progress("bytes", "sha256:" + "a" * 64, 60)
        progress("bytes", "sha256:" + "a" * 64, 40)
        progress("present", "sha256:" + "b" * 64, 10)
        progress("manifest", "sha256:" + "c" * 64, 5)


def test_a_byte_bar_takes_done_and_total() -> None:
    with byte_progress("push", enabled=True) as progress:
        progress(0, 100)
        progress(100, 100)


def test_no_terminal_no_output(capsys: pytest.CaptureFixture[str]) -> None:
    with transfer_progress("bundle", enabled=False) as progress:
        progress("blob", "sha256:" + "a" * 64, 100)
    with byte_progress("push", enabled=False) as pushed:
        pushed(1, 2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
