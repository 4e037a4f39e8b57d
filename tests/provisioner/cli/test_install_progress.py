"""`airgap install`'s progress: plain lines when not on a terminal, a spinner naming the component
being waited for on one; every step is printed either way, and with `--output json` the lines go
to stderr so stdout stays one JSON document."""

from __future__ import annotations

import pytest

from provisioner.cli.install import Progress
from provisioner.stack.install import Step

STEP = Step("rekor", "release rekor", "installed", "chart 1.8.4", seconds=12.5)


def _run(progress: Progress) -> None:
    progress.component("rekor")
    progress.step(STEP)
    progress.component("fulcio")
    progress.stop()


def test_plain_lines_off_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    progress = Progress("text")
    assert not progress.live
    _run(progress)
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    assert line.endswith("rekor    release rekor: installed  chart 1.8.4 (12.5s)")
    assert "\x1b" not in out
    assert err == ""


def test_json_output_keeps_progress_off_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    _run(Progress("json"))
    out, err = capsys.readouterr()
    assert out == ""
    assert "release rekor: installed" in err


def test_a_terminal_gets_a_spinner_that_stops_with_the_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats the captured stream as a terminal
    progress = Progress("text")
    assert progress.live
    progress.component("rekor")
    assert progress.status is not None
    progress.step(STEP)
    progress.component("fulcio")
    progress.stop()
    assert progress.status is None
    out, _ = capsys.readouterr()
    assert "release rekor: installed  chart 1.8.4 (12.5s)" in out
    assert "fulcio …" in out  # the spinner's text names the component being waited for
    after_spinner = out.rsplit("fulcio …", 1)[1]
    assert "\x1b[?25h" in after_spinner  # the cursor comes back
    assert after_spinner.endswith("\x1b[2K")  # and the spinner's line is erased, not left behind
