"""Reading the files a user names, with one-line errors that say which file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offline.errors import UsageError


def read_input(path: str | Path, what: str) -> bytes:
    """The bytes of `path`; `what` names the file in errors ("bundle", "trusted root", ...)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{what} {path} is a directory, expected a file") from exc
    except PermissionError as exc:
        raise UsageError(f"{what} {path} is not readable (permission denied)") from exc


def parse_json_object(data: bytes | str, name: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise UsageError(f"{name}: expected a JSON object")
    return document
