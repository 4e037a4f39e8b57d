"""Signed and checksummed JSON keeps its bytes: the manifest, the parts list, the detached
signature file and the checkpoint store's checksum are all written by one canonical writer, and
these are the bytes each wrote before they shared it."""

from __future__ import annotations

import hashlib
import math

import pytest

from offline.canonical_json import canonical_json
from offline.tlog.checkpoint_files import canonical as checkpoint_canonical

DOCUMENT = {"b": [1, "ü", {"z": None, "a": True}], "a": "résumé \u2014 ok", "n": -3}
UTF8 = '{"a":"résumé — ok","b":[1,"ü",{"a":true,"z":null}],"n":-3}'.encode()
ASCII = b'{"a":"r\\u00e9sum\\u00e9 \\u2014 ok","b":[1,"\\u00fc",{"a":true,"z":null}],"n":-3}'


def test_utf8_canonical_bytes_are_pinned() -> None:
    assert canonical_json(DOCUMENT, ascii_only=False) == UTF8
    assert (
        hashlib.sha256(UTF8).hexdigest()
        == hashlib.sha256(
            canonical_json(dict(reversed(DOCUMENT.items())), ascii_only=False)
        ).hexdigest()
    )


def test_ascii_canonical_bytes_are_pinned() -> None:
    assert canonical_json(DOCUMENT, ascii_only=True) == ASCII


def test_the_checkpoint_store_checksums_the_utf8_form() -> None:
    assert checkpoint_canonical(DOCUMENT) == UTF8


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_hold_exactly_is_refused(value: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": value}, ascii_only=False)
