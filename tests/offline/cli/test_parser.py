"""airgap's parsers size their help to the terminal as argparse would, without shutil."""

from __future__ import annotations

import argparse
import sys

import pytest

from offline.cli.main import build_parser
from offline.cli.parser import terminal_columns


@pytest.mark.parametrize(("columns", "expected"), [("120", 120), ("0", 80), ("wide", 80)])
def test_the_width_is_columns_else_the_terminal_else_80(
    monkeypatch: pytest.MonkeyPatch, columns: str, expected: int
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys, "__stdout__", None)  # no terminal to ask
    assert terminal_columns() == expected


@pytest.mark.parametrize("columns", ["60", "140", ""])
def test_help_is_what_argparse_itself_prints(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    parser = build_parser()
    ours = parser.format_help()
    parser.formatter_class = argparse.HelpFormatter
    assert ours == parser.format_help()
