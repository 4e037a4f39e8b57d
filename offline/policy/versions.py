"""Package versions as SBOMs carry them, compared without knowing the ecosystem, and ranges.

One SBOM mixes Maven, npm, PyPI, Go, Debian, Alpine and RPM versions, and a ban such as
`log4j-core <2.17.1` must work on all of them. PEP 440 (`packaging`) rejects most of these
(`1:5.6.0-0.2`, `1.1.1w-0+deb11u1`, `2.0.0-SNAPSHOT`), so versions compare by one rule:

1. An epoch `N:` at the start (Debian, RPM) compares first; no epoch is epoch 0. A leading `v`
   before a digit is dropped (`v1.2` == `1.2`).
2. The rest splits into tokens: runs of digits (numbers), runs of letters (words, compared
   case-insensitively), and `~`. Every other character (`.`, `-`, `_`, `+`, ...) only separates
   tokens, so `1.2-3` == `1.2.3`.
3. Tokens compare left to right, each in this order, lowest first:
   - `~` (Debian: `5.6.0~rc1` < `5.6.0`);
   - pre-release words: `dev`, `snapshot` < `alpha` < `beta` < `milestone` < `pre`, `preview`
     < `rc`, `cr`; the PEP 440 short forms `a`/`b` count as alpha/beta only when written
     between digits (`1.0a1`), because OpenSSL's `1.1.1a` is a release after `1.1.1`;
   - numbers, numerically (`2.17.10` > `2.17.9`, `1.01` == `1.1`); the words `final`, `ga` and
     `release` count as 0 (`1.0.RELEASE` == `1.0`);
   - every other word, by text (`1.1.1w` > `1.1.1t` > `1.1.1`, `2.36-9+deb12u1` > `2.36-9`).
4. The shorter version is padded with zeros, so `2.17` == `2.17.0`, `2.0-rc1` < `2.0`, and
   `5.6.0-0.2` > `5.6.0`.

Every token maps to one key in a single total order, so the comparison is transitive.

A range is comparisons joined by commas, all of which must hold: `>=5.6.0,<5.6.2`. Operators are
`<`, `<=`, `>`, `>=`, `==`, `!=`; a bare version means `==`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Operator = Literal["<", "<=", ">", ">=", "==", "!="]

_PRE_RELEASE = {
    "dev": 0,
    "snapshot": 0,
    "alpha": 1,
    "beta": 2,
    "milestone": 3,
    "pre": 4,
    "preview": 4,
    "rc": 5,
    "cr": 5,
}
_SHORT_PRE_RELEASE = {"a": 1, "b": 2}
_NEUTRAL_WORDS = frozenset({"final", "ga", "release"})
_EPOCH = re.compile(r"(\d+):(.*)", re.DOTALL)
_TOKEN = re.compile(r"(\d+)|([A-Za-z]+)|(~)")
_OPERATORS: dict[str, Operator] = {op: op for op in ("<", "<=", ">", ">=", "==", "!=")}
_CLAUSE = re.compile(r"(<=|>=|==|!=|<|>)?\s*(.*)", re.DOTALL)

# Token keys: (kind, number, text). Kinds in order: `~`, pre-release word, number, other word.
_Key = tuple[int, int, str]
_ZERO: _Key = (2, 0, "")


@dataclass(frozen=True)
class Version:
    """A parsed version; `text` is what the SBOM or the policy said."""

    text: str
    epoch: int
    keys: tuple[_Key, ...]

    def compare(self, other: Version) -> int:
        """-1, 0 or 1 as self is lower than, equal to, or higher than `other`."""
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        length = max(len(self.keys), len(other.keys))
        mine = self.keys + (_ZERO,) * (length - len(self.keys))
        theirs = other.keys + (_ZERO,) * (length - len(other.keys))
        if mine == theirs:
            return 0
        return -1 if mine < theirs else 1


def parse_version(text: str) -> Version:
    """Parse `text` by the rule above; ValueError when it holds no number or word at all."""
    body = text.strip()
    epoch = 0
    match = _EPOCH.fullmatch(body)
    if match is not None:
        epoch, body = int(match.group(1)), match.group(2)
    if len(body) > 1 and body[0] in "vV" and body[1].isdigit():
        body = body[1:]
    keys: list[_Key] = []
    tokens = list(_TOKEN.finditer(body))
    for token in tokens:
        number, word, tilde = token.groups()
        if tilde is not None:
            keys.append((0, 0, ""))
        elif number is not None:
            keys.append((2, int(number), ""))
        else:
            keys.append(_word_key(word.lower(), body, token.start(), token.end()))
    if not keys:
        raise ValueError(f"{text!r} is not a version (no numbers or words in it)")
    return Version(text=text, epoch=epoch, keys=tuple(keys))


def _word_key(word: str, body: str, start: int, end: int) -> _Key:
    if word in _PRE_RELEASE:
        return (1, _PRE_RELEASE[word], "")
    between_digits = start > 0 and end < len(body) and body[start - 1].isdigit()
    if word in _SHORT_PRE_RELEASE and between_digits and body[end].isdigit():
        return (1, _SHORT_PRE_RELEASE[word], "")
    if word in _NEUTRAL_WORDS:
        return _ZERO
    return (3, 0, word)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as `left` is lower than, equal to, or higher than `right`."""
    return parse_version(left).compare(parse_version(right))


def versions_equal(left: str, right: str) -> bool:
    """Equal as text, or equal by the comparison rule (`v1.2` and `1.2.0`)."""
    if left == right:
        return True
    try:
        return compare_versions(left, right) == 0
    except ValueError:
        return False


@dataclass(frozen=True)
class VersionRange:
    """Comparisons that must all hold; `str()` gives them back as `>=5.6.0,<5.6.2`."""

    clauses: tuple[tuple[Operator, Version], ...]

    def contains(self, version: str | Version) -> bool:
        """Whether `version` satisfies every comparison; ValueError if it is not a version."""
        candidate = parse_version(version) if isinstance(version, str) else version
        return all(_holds(op, candidate.compare(bound)) for op, bound in self.clauses)

    def __str__(self) -> str:
        return ",".join(f"{op}{bound.text}" for op, bound in self.clauses)


def parse_range(text: str) -> VersionRange:
    """Parse `<2.17.1` or `>=5.6.0,<5.6.2`; ValueError with a one-line reason when malformed."""
    clauses: list[tuple[Operator, Version]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"{text!r} has an empty comparison (a stray comma?)")
        match = _CLAUSE.fullmatch(part)
        assert match is not None  # the pattern accepts any text
        op, bound = match.group(1) or "==", match.group(2).strip()
        if not bound or bound[0] in "<>=!":
            raise ValueError(
                f"{part!r} is not a comparison: write one of <, <=, >, >=, ==, != and a version"
            )
        clauses.append((_operator(op), parse_version(bound)))
    return VersionRange(tuple(clauses))


def _operator(text: str) -> Operator:
    try:
        return _OPERATORS[text]
    except KeyError:
        raise ValueError(f"unknown comparison {text!r}") from None


def _holds(op: Operator, order: int) -> bool:
    if op == "<":
        return order < 0
    if op == "<=":
        return order <= 0
    if op == ">":
        return order > 0
    if op == ">=":
        return order >= 0
    if op == "==":
        return order == 0
    return order != 0
