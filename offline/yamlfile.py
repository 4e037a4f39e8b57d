"""Strict reading of YAML configuration written by people, with one-line errors that point.

YAML is parsed safely (no Python objects), duplicate keys are errors rather than "last one
wins", and booleans are only `true`/`false` as in YAML 1.2, so `off`, `no` and `on` stay words.
`StrictReader` turns the parsed document into typed values, failing on the first problem with
`WHERE: path.to[0].key: what is wrong` (UsageError).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any, NoReturn, TypeVar

import yaml

from offline.errors import UsageError

_T = TypeVar("_T")


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str, where: str) -> object:
    """The single document in `text`; `where` ("policy FILE") starts every error message."""
    try:
        # A SafeLoader subclass: nothing in the file can build Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        place = ""
        if exc.problem_mark is not None:
            mark = exc.problem_mark
            place = f" at line {mark.line + 1}, column {mark.column + 1}"
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise UsageError(f"{where}: not valid YAML: {what}{place}") from exc
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{where}: not valid YAML: {first_line}") from exc


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

    def items(self, value: object, path: str, read: Callable[[object, str], _T]) -> list[_T]:
        """A non-empty list, each item read by `read(item, path_of_item)`."""
        if not isinstance(value, list):
            self.fail(path, f"expected a list; got {describe(value)}")
        if not value:
            self.fail(path, "is empty")
        return [read(item, at(path, index)) for index, item in enumerate(value)]

    def sequence(self, value: object, path: str) -> list[Any]:
        """A list that may be empty; absent (None) is the empty list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"expected a list; got {describe(value)}")
        return value

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
