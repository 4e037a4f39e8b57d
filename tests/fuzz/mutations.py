"""JSON-aware and text-aware mutations of real inputs, driven by a `Draw` so that the same code
serves Hypothesis (which shrinks the choices) and a plain `random.Random` (for exploration).

A mutation picks a node of the document and does one of: delete it, swap its type, replace it
with a hostile value (huge, zero or negative numbers, NaN-like strings, empty containers), or,
for strings, edit it: flip a byte inside base64 content (re-encoded, so it still decodes),
write base64 garbage, truncate, duplicate, add control characters.
"""

from __future__ import annotations

import base64
import binascii
import copy
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# draw(n) -> an int in [0, n): the only source of choices.
Draw = Callable[[int], int]
Path = tuple[str | int, ...]

HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    10**400,
    1.5,
    -0.0,
    1e308,
    "",
    "0",
    "-1",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "1e400",
    "NaN",
    "A",
    "!!!not base64!!!",
    "AAAA",
    "====",
    "\u2014 ",
    "\x00",
    "\ud800",
    "a" * 5000,
    [],
    {},
    [None],
    [[]],
    {"": None},
)


def random_draw(rng: random.Random) -> Draw:
    return lambda n: rng.randrange(n)


def pick(draw: Draw, items: Sequence[T]) -> T:
    return items[draw(len(items))]


def hostile(draw: Draw) -> Any:
    # A copy: a later mutation may edit inside the value it returns.
    return copy.deepcopy(pick(draw, HOSTILE_VALUES))


def paths(document: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every node's path, the root included, depth first."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from paths(value, (*prefix, i))


MISSING = object()


def get(document: Any, path: Path) -> Any:
    node: Any = document
    for key in path:
        present = (isinstance(node, dict) and isinstance(key, str) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        )
        if not present:
            return MISSING
        node = node[key]
    return node


def _set(document: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    parent = get(document, path[:-1])
    parent[path[-1]] = value
    return document


def _delete(document: Any, path: Path) -> Any:
    if not path:
        return document
    parent = get(document, path[:-1])
    del parent[path[-1]]
    return document


def _b64_decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) if text else None
    except (binascii.Error, ValueError):
        return None


def mutate_bytes(draw: Draw, data: bytes) -> bytes:
    """Flip, drop, insert or truncate bytes; never returns `data` unchanged."""
    if not data:
        return bytes([draw(256)])
    op = draw(5)
    i = draw(len(data))
    if op == 0:
        return data[:i] + bytes([data[i] ^ (1 << draw(8))]) + data[i + 1 :]
    if op == 1:
        return data[:i] + data[i + 1 :]
    if op == 2:
        return data[:i] + bytes([draw(256)]) + data[i:]
    if op == 3:
        return data[:i]
    return data + data[: 1 + draw(len(data))]


def mutate_string(draw: Draw, text: str) -> str:
    """Base64 content is edited as bytes and re-encoded; other strings as text."""
    decoded = _b64_decode(text)
    op = draw(6)
    if decoded is not None and op < 3:
        return base64.b64encode(mutate_bytes(draw, decoded)).decode()
    if op == 3:
        return pick(draw, ["", "=", "A===", "!!!!", "\u2014\u2014", text + "\n", "\n" + text])
    if op == 4 and text.strip("-").isdigit():
        return pick(draw, ["0", "-1", "-" + text, text + "0" * 20, "1" + "0" * 5000, " " + text])
    changed = mutate_bytes(draw, text.encode(errors="surrogatepass")).decode(errors="replace")
    return changed if changed != text else text + "x"


def mutate_node(draw: Draw, value: Any) -> Any:
    """A replacement for `value`: a type swap, a hostile value or an edit of the same type."""
    op = draw(4)
    if op == 0:
        return hostile(draw)
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        if op == 1 and value.lstrip("-").isdigit() and len(value) < 100:
            return int(value)  # protojson int64 as a number
        return mutate_string(draw, value)
    if isinstance(value, int | float):
        if op == 1:
            return str(value)
        as_float = float(value) if abs(value) < 1e300 else 1e300
        return pick(draw, [0, -1, -value, value * 2**64, value + 1, as_float, 2**64 + value])
    if isinstance(value, list):
        if op == 1 or not value:
            return {"0": value}
        i = draw(len(value))
        return pick(draw, [[*value, value[i]], value[:i] + value[i + 1 :], [value[i]] * 40, []])
    if isinstance(value, dict):
        if op == 1:
            return list(value.values())
        return {**value, pick(draw, ["unknown", "", "\u2014"]): hostile(draw)}
    return hostile(draw)


def mutate_json(draw: Draw, document: Any, count: int | None = None) -> Any:
    """A deep copy of `document` with 1 to 3 mutations (or `count`)."""
    result = copy.deepcopy(document)
    for _ in range(count if count is not None else 1 + draw(3)):
        candidates = list(paths(result))
        path = pick(draw, candidates)
        if path and draw(6) == 0:
            result = _delete(result, path)
        else:
            result = _set(result, path, mutate_node(draw, get(result, path)))
    return result


def mutate_lines(draw: Draw, text: str) -> str:
    """Line-level edits for line formats (signed notes, checkpoints): drop, duplicate, swap or
    replace a line, or edit one's bytes; sometimes edit the whole text's bytes."""
    if draw(5) == 0:
        return mutate_bytes(draw, text.encode()).decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    i = draw(len(lines))
    op = draw(6)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2:
        j = draw(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        lines[i] = pick(
            draw,
            [
                "",
                " ",
                "0",
                "-1",
                "18446744073709551616",
                "9" * 5000,
                "00",
                "\u2014 x AAAA",
                "\u2014 rekor.sigstore.dev " + "A" * 200,
                "\t",
                "\r",
                "\x00",
            ],
        )
    elif op == 4:
        lines.insert(i, pick(draw, ["", "\u2014 x AAAAAAAAAA==", "extra", "\u2014"]))
    else:
        lines[i] = mutate_string(draw, lines[i])
    return "\n".join(lines)


def leniently_decoded(value: Any) -> Any:
    """The bytes a base64 field stands for, decoded as the bundle models do (the standard
    library's non-strict decoder, which skips stray characters and stops at padding), so that
    two spellings of the same bytes compare equal; an undecodable value stays itself."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return ("undecodable", value)


def as_number(value: Any) -> Any:
    """protojson's int64 may be a string or a number: compare them as numbers."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 100:
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(value, bool):
        return ("bool", value)
    return value


def only_deletions(final: Any, seed: Any) -> bool:
    """Whether `final` is `seed` with parts deleted and nothing changed or added."""
    if isinstance(seed, dict) and isinstance(final, dict):
        return all(k in seed and only_deletions(v, seed[k]) for k, v in final.items())
    if isinstance(seed, list) and isinstance(final, list):
        remaining = iter(seed)  # `final` must be a subsequence of `seed`
        return all(any(only_deletions(item, s) for s in remaining) for item in final)
    return type(final) is type(seed) and final == seed


def binary_paths(document: Any) -> list[Path]:
    """Paths of strings that hold base64 of at least 32 bytes: keys, certificates, signatures,
    timestamps, log entry bodies."""
    found = []
    for path in paths(document):
        value = get(document, path)
        if isinstance(value, str) and len(value) >= 44:
            decoded = _b64_decode(value)
            if decoded is not None and len(decoded) >= 32:
                found.append(path)
    return found


def mutate_binary(draw: Draw, document: Any) -> Any:
    """A deep copy of `document` with the bytes inside one base64 field edited 1 to 4 times
    (DER certificates, RFC 3161 timestamps, keys): what a JSON-level mutation rarely reaches."""
    result = copy.deepcopy(document)
    candidates = binary_paths(result)
    if not candidates:
        return mutate_json(draw, result, 1)
    path = pick(draw, candidates)
    data = base64.b64decode(get(result, path))
    for _ in range(1 + draw(4)):
        data = mutate_bytes(draw, data)
    return _set(result, path, base64.b64encode(data).decode())
