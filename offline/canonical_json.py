"""The one writer of canonical JSON: sorted keys, no whitespace, no NaN or infinities.

What is signed or checksummed must be the same bytes every time it is written, so every writer
goes through here, and says explicitly whether non-ASCII text is written as UTF-8 or
\\u-escaped (the bundle manifest and the checkpoint store write UTF-8; the detached signature
file is ASCII by construction). tests/test_canonical_json.py pins the bytes of each.
"""

from __future__ import annotations

import json


def canonical_json(document: object, *, ascii_only: bool) -> bytes:
    """`document` as canonical JSON bytes; `ascii_only` \\u-escapes every non-ASCII character."""
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False
    )
    return text.encode("utf-8")
