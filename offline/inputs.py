"""Reading the files a user names, with one-line errors that say which file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offline.errors import AirgapError, UsageError


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
    except OSError as exc:  # a name too long, a loop of links, an I/O error
        raise UsageError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc
    except ValueError as exc:  # a NUL in the name, or a name that is not Unicode
        raise UsageError(f"{what} {str(path)[:80]!r} is not a usable file name") from exc


def decode_json(
    data: bytes | str, name: str, error: type[AirgapError] = UsageError, **options: Any
) -> Any:
    """Any JSON value; anything `json.loads` refuses is one `error` naming `name`: malformed
    JSON, bytes that are not Unicode, an integer of more than 4300 digits, nesting so deep
    that the parser runs out of stack."""
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise error(f"{name}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise error(f"{name}: not valid JSON ({exc})") from exc


def parse_json_object(data: bytes | str, name: str) -> dict[str, Any]:
    document = decode_json(data, name)
    if not isinstance(document, dict):
        raise UsageError(f"{name}: expected a JSON object")
    return document
