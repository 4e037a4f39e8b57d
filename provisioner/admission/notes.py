"""What a generated admission policy does not check as `airgap verify` does, one note each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Inexpressible(ValueError):
    """A rule an admission controller cannot state; the message says why, in one line."""


@dataclass(frozen=True)
class Note:
    controller: str  # "policy-controller" or "kyverno"
    policy: str  # the airgap policy's name
    rule: str  # where in the policy file: "signers[1].subjectRegExp", "attestations[0].sbom"
    text: str

    def __str__(self) -> str:
        return f"{self.controller}: policy {self.policy}: {self.rule}: {self.text}"

    def to_json(self) -> dict[str, str]:
        return {
            "controller": self.controller,
            "policy": self.policy,
            "rule": self.rule,
            "text": self.text,
        }


@dataclass
class Generated:
    """Kubernetes objects for one controller, and the notes on what they leave out."""

    controller: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def note(self, policy: str, rule: str, text: str) -> None:
        self.notes.append(Note(self.controller, policy, rule, text))
