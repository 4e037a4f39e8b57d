"""Strict reading of YAML configuration written by people, with one-line errors that point.

YAML is parsed safely (no Python objects), duplicate keys are errors rather than "last one
wins", and booleans are only `true`/`false` as in YAML 1.2, so `off`, `no` and `on` stay words.
offline.strict.StrictReader turns the parsed document into typed values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, TypeVar

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
