"""THREAT-MODEL.md names the test that attacks each claim: every test it names must exist, so
the document cannot drift from the suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
# `tests/x.py::test_name` sets the file; a following `::test_name` refers to the same file.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)")


def _references() -> list[tuple[str, str]]:
    found = []
    current = None
    for match in REFERENCE.finditer((ROOT / "THREAT-MODEL.md").read_text()):
        current = match.group(1) or current
        assert current is not None, f"{match.group(2)} names no file before it"
        found.append((current, match.group(2)))
    return found


def test_the_threat_model_names_tests_for_its_claims() -> None:
    assert len(_references()) > 50


def test_every_test_the_threat_model_names_exists() -> None:
    missing = [
        f"{path}::{name}"
        for path, name in _references()
        if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert missing == []
