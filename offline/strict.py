"""The one strict reader: typed access to a parsed document (YAML written by people, JSON
written by machines), failing on the first problem with `WHERE: path.to[0].key: what is wrong`
(UsageError). It imports no parser, so the verifier's start-up pays for none it does not use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from offline.errors import UsageError

_T = TypeVar("_T")


def at(path: str, key: str | int) -> str:
    """`path` extended by a key (`a.b`) or a list index (`a[0]`)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: object) -> str:
    """What a user wrote, in words, for "expected X; got Y" messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class StrictReader:
    """Typed access to a parsed document; every failure names `where` and the path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, message: str) -> NoReturn:
        place = f"{path}: " if path else ""
        raise UsageError(f"{self.where}: {place}{message}")

    def mapping(
        self,
        value: object,
        path: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A mapping with only the allowed keys, all required ones present."""
        allowed = (*required, *optional)
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with {', '.join(allowed)}; got {describe(value)}")
        for key in value:
            if key not in allowed:
                self.fail(path, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.fail(path, f"missing {key}")
        return value

    def table(self, value: object, path: str) -> dict[str, Any]:
        """A mapping whose keys are data (names, kinds), not fields: any key is allowed."""
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping; got {describe(value)}")
        return value

    def items(
        self,
        value: object,
        path: str,
        read: Callable[[object, str], _T],
        *,
        allow_empty: bool = False,
    ) -> list[_T]:
        """A list (non-empty unless `allow_empty`), each item read by `read(item, path_of_item)`.
        Absent (None) is not a list here: a field that must be there must be a list."""
        if not isinstance(value, list):
            self.fail(path, f"expected a list; got {describe(value)}")
        if not value and not allow_empty:
            self.fail(path, "is empty")
        return [read(item, at(path, index)) for index, item in enumerate(value)]

    def unique(self, values: list[str], path: str) -> None:
        """Fail naming the first value listed twice."""
        seen: set[str] = set()
        for value in values:
            if value in seen:
                self.fail(path, f"{value!r} is listed twice")
            seen.add(value)

    def sequence(self, value: object, path: str) -> list[Any]:
        """A list that may be empty; absent (None) is the empty list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"expected a list; got {describe(value)}")
        return value

    def integer(self, value: object, path: str, minimum: int = 0) -> int:
        """An integer (never a boolean) of at least `minimum`."""
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(path, f"expected an integer of at least {minimum}; got {describe(value)}")
        return value

    def hex_bytes(self, value: object, path: str, size: int = 32) -> bytes:
        """`size` bytes written as lowercase hex."""
        if not isinstance(value, str) or re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value) is None:
            self.fail(path, f"expected {2 * size} lowercase hex digits; got {describe(value)}")
        return bytes.fromhex(value)

    def time(self, value: object, path: str) -> datetime:
        """An ISO 8601 time with its offset."""
        text = self.string(value, path)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(path, f"expected an ISO 8601 time; got {describe(value)}")
        if when.tzinfo is None:
            self.fail(path, f"the time {text!r} has no offset")
        return when

    def string(self, value: object, path: str) -> str:
        """Non-blank text. YAML reads 2.17 or 1 as numbers: the message says to quote them."""
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, int | float | bool) else ""
            self.fail(path, f"expected text; got {describe(value)}{hint}")
        if not value.strip():
            self.fail(path, "is empty")
        return value

    def regexp(self, value: object, path: str) -> re.Pattern[str]:
        text = self.string(value, path)
        try:
            return re.compile(text)
        except re.error as exc:
            self.fail(path, f"not a valid regular expression ({exc})")

    def choice(self, value: object, path: str, choices: tuple[_T, ...]) -> _T:
        for choice in choices:
            if value == choice:
                return choice
        names = ", ".join(str(choice) for choice in choices)
        self.fail(path, f"expected one of {names}; got {describe(value)}")
