"""Reading protobuf messages from their JSON form (protojson), strictly, with no model library.

The Sigstore formats (bundles, log entries) are protobuf messages written as JSON. Reading them
here, rather than through pydantic models, keeps the import of a model library out of a CD
host's one-image check (it cost more than the check). The reader is as strict as those models:
every field's JSON type is checked, unknown fields are refused, 64-bit integers are decimal
strings, bytes are standard padded base64 (nothing else is skipped or guessed), and any problem
is one ProtoJsonError naming the field's path.

Field names are protojson's lowerCamelCase; the proto names (snake_case), which protojson also
reads, are accepted, but not both for one field. A null is an absent field, as protojson reads it.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

MAX_UINT64 = (1 << 64) - 1


class ProtoJsonError(ValueError):
    """`where`: what is wrong there."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def at(where: str, key: str | int) -> str:
    """`where` extended by a field (`a.b`) or a list index (`a[0]`)."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@functools.cache
def _names(fields: tuple[str, ...]) -> dict[str, str]:
    """Each field's camelCase name, by that name and by its snake_case one (once per message)."""
    names = {name: name for name in fields}
    names.update({_snake(name): name for name in fields})
    return names


def message(
    value: object, where: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A message's fields by their camelCase name (nulls left out): only `required` and
    `optional` ones, every required one present."""
    if not isinstance(value, dict):
        raise ProtoJsonError(where, "expected an object")
    names = _names((*required, *optional))
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for key, item in value.items():
        name = names.get(key)
        if name is None:
            raise ProtoJsonError(at(where, key), "unknown field")
        if name in seen:
            raise ProtoJsonError(at(where, key), f"given twice (as {name} too)")
        seen.add(name)
        if item is not None:
            fields[name] = item
    for name in required:
        if name not in fields:
            raise ProtoJsonError(at(where, name), "missing")
    return fields


def one_of(fields: dict[str, Any], where: str, names: tuple[str, ...]) -> str:
    """The one member of a oneof that is set."""
    present = [name for name in names if name in fields]
    if len(present) != 1:
        raise ProtoJsonError(where, f"exactly one of {', '.join(names)} must be set")
    return present[0]


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ProtoJsonError(where, "expected a string")
    return value


def uint64(value: object, where: str) -> int:
    """A uint64 (or a non-negative int64) as protojson writes it: a decimal string."""
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise ProtoJsonError(
            where, f"expected an unsigned integer as a decimal string; got {value!r:.40}"
        )
    number = int(value)
    if number > MAX_UINT64:
        raise ProtoJsonError(where, f"{value} is out of range (0 to {MAX_UINT64})")
    return number


def bytes_field(value: object, where: str) -> bytes:
    """Bytes as protojson writes them: standard base64, padded."""
    if not isinstance(value, str):
        raise ProtoJsonError(where, "expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise ProtoJsonError(where, "not valid base64") from exc


def repeated(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtoJsonError(where, "expected a list")
    return value
