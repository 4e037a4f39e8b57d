"""Witness policies: the subset of C2SP tlog-policy (c2sp.org/tlog-policy) that decides whether
enough witnesses cosigned a checkpoint.

    # comment
    witness <name> <vkey> [url]
    group <name> <k|any|all> <member>...
    quorum <name>|none

`log <vkey> [url]` lines are accepted and ignored: the trusted root decides which logs are
trusted, and accepting them lets a sigsum-style policy file be shared unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from offline.errors import UsageError
from offline.inputs import read_input
from offline.record import Record
from offline.tlog.note import CosignatureVerifier, parse_vkey

NONE = "none"


class Group(Record):
    __slots__ = ("members", "name", "threshold")

    def __init__(self, name: str, threshold: int, members: tuple[str, ...]) -> None:
        self.name = name
        self.threshold = threshold
        self.members = members


class WitnessPolicy(Record):
    __slots__ = ("groups", "quorum", "source", "witnesses")

    def __init__(
        self,
        witnesses: Mapping[str, CosignatureVerifier],
        groups: Mapping[str, Group],
        quorum: str,
        source: str = "witness policy",
    ) -> None:
        self.witnesses = witnesses
        self.groups = groups
        self.quorum = quorum
        self.source = source

    def verifiers(self) -> tuple[CosignatureVerifier, ...]:
        return tuple(self.witnesses.values())

    def witness_name(self, verifier: CosignatureVerifier) -> str | None:
        """The policy's name for a witness key (policy names need not equal key names)."""
        return next((n for n, v in self.witnesses.items() if v == verifier), None)

    def satisfied(self, cosigned: Collection[str]) -> bool:
        """Whether the quorum holds when the witnesses named in `cosigned` have cosigned."""
        return self.quorum == NONE or self._holds(self.quorum, cosigned)

    def _holds(self, name: str, cosigned: Collection[str]) -> bool:
        group = self.groups.get(name)
        if group is None:
            return name in cosigned
        met = sum(1 for member in group.members if self._holds(member, cosigned))
        return met >= group.threshold

    def describe_quorum(self) -> str:
        group = self.groups.get(self.quorum)
        if group is None:
            return f"quorum {self.quorum}"
        return f"quorum {group.name} ({group.threshold} of {', '.join(group.members)})"


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.witnesses: dict[str, CosignatureVerifier] = {}
        self.groups: dict[str, Group] = {}
        self.quorum: str | None = None
        self.line = 0

    def error(self, message: str) -> UsageError:
        return UsageError(f"{self.source} line {self.line}: {message}")

    def defined(self, name: str) -> bool:
        return name in self.witnesses or name in self.groups

    def new_name(self, name: str) -> None:
        if name == NONE:
            raise self.error("'none' is reserved and cannot name a witness or group")
        if self.defined(name):
            raise self.error(f"{name!r} is already defined")

    def witness(self, args: list[str]) -> None:
        if len(args) not in (2, 3):
            raise self.error("expected: witness <name> <vkey> [url]")
        name, vkey = args[0], args[1]
        self.new_name(name)
        try:
            verifier = parse_vkey(vkey)
        except UsageError as exc:
            raise self.error(str(exc)) from exc
        if not isinstance(verifier, CosignatureVerifier):
            raise self.error(f"witness {name}: vkey is not a cosignature (type 0x04) key")
        if any(v.raw_key == verifier.raw_key for v in self.witnesses.values()):
            raise self.error(f"witness {name}: the same key is already listed")
        self.witnesses[name] = verifier

    def group(self, args: list[str]) -> None:
        if len(args) < 3:
            raise self.error("expected: group <name> <k|any|all> <member>...")
        name, k, members = args[0], args[1], tuple(args[2:])
        self.new_name(name)
        for member in members:
            if not self.defined(member):
                raise self.error(f"group {name}: member {member!r} is not defined above")
        if len(set(members)) != len(members):
            raise self.error(f"group {name}: a member is listed twice")
        if k == "any":
            threshold = 1
        elif k == "all":
            threshold = len(members)
        elif k.isdigit() and k.isascii() and 1 <= int(k) <= len(members):
            threshold = int(k)
        else:
            raise self.error(f"group {name}: threshold {k!r} must be any, all or 1..{len(members)}")
        self.groups[name] = Group(name, threshold, members)

    def set_quorum(self, args: list[str]) -> None:
        if len(args) != 1:
            raise self.error("expected: quorum <name>|none")
        if self.quorum is not None:
            raise self.error("a policy has exactly one quorum line")
        if args[0] != NONE and not self.defined(args[0]):
            raise self.error(f"quorum {args[0]!r} is not defined above")
        self.quorum = args[0]

    def parse(self, text: str) -> WitnessPolicy:
        for self.line, raw in enumerate(text.split("\n"), start=1):
            bad = next((c for c in raw if (c < " " and c != "\t") or c == "\x7f"), None)
            if bad is not None:
                raise self.error(f"control character U+{ord(bad):04X} is not allowed")
            words = raw.replace("\t", " ").split(" ")
            words = [w for w in words if w]
            if not words or words[0].startswith("#"):
                continue
            keyword, args = words[0], words[1:]
            if keyword == "witness":
                self.witness(args)
            elif keyword == "group":
                self.group(args)
            elif keyword == "quorum":
                self.set_quorum(args)
            elif keyword != "log":
                raise self.error(f"unknown keyword {keyword!r}")
        if self.quorum is None:
            self.line = 0
            raise UsageError(f"{self.source}: no quorum line (use `quorum none` for no witnesses)")
        return WitnessPolicy(self.witnesses, self.groups, self.quorum, self.source)


def parse_witness_policy(text: str, source: str = "witness policy") -> WitnessPolicy:
    return _Parser(source).parse(text)


def load_witness_policy(path: str | Path) -> WitnessPolicy:
    data = read_input(path, "witness policy")
    return parse_witness_policy(data.decode("utf-8", errors="replace"), str(path))
