"""How long each role's metadata stays valid, kept in REPO/policy.json.

    {"expiresDays": {"root": 365, "targets": 180, "snapshot": 30, "timestamp": 14}}

Timestamp and snapshot are re-signed by every `airgap trust refresh` with the online keys; targets
by every build that changes a target; root only with the root keys, so its period is the longest.
A client refuses expired metadata, and so does policy-controller's TrustRoot: refresh well
before the timestamp expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.inputs import decode_strict_json, read_input
from provisioner.trust.layout import TOP_LEVEL_ROLES

MAX_DAYS = 3650  # ten years: longer is a typo, not a policy


@dataclass(frozen=True)
class ExpiryPolicy:
    root: int = 365
    targets: int = 180
    snapshot: int = 30
    timestamp: int = 14

    def __post_init__(self) -> None:
        for role in TOP_LEVEL_ROLES:
            days = self.days(role)
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
                raise UsageError(
                    f"expiry of {role}: {days!r} is not a whole number of days 1-{MAX_DAYS}"
                )
        if self.timestamp > self.snapshot or self.snapshot > self.targets:
            # A timestamp outliving its snapshot (or a snapshot its targets) only moves the
            # failure from the expiry the operator watches to one they do not.
            raise UsageError(
                "expiry policy: timestamp days must not exceed snapshot days, nor snapshot days "
                f"targets days (got timestamp {self.timestamp}, snapshot {self.snapshot}, "
                f"targets {self.targets})"
            )

    def days(self, role: str) -> int:
        value: int = getattr(self, role)
        return value

    def expires(self, role: str, now: datetime) -> datetime:
        return (now + timedelta(days=self.days(role))).replace(microsecond=0)

    def to_json(self) -> dict[str, Any]:
        return {"expiresDays": {role: self.days(role) for role in TOP_LEVEL_ROLES}}

    @classmethod
    def from_json(cls, document: Any, where: str) -> ExpiryPolicy:
        if not isinstance(document, dict) or set(document) != {"expiresDays"}:
            raise UsageError(f"{where}: expected exactly one field, expiresDays")
        days = document["expiresDays"]
        if not isinstance(days, dict) or set(days) != set(TOP_LEVEL_ROLES):
            raise UsageError(f"{where}: expiresDays must name exactly {', '.join(TOP_LEVEL_ROLES)}")
        try:
            return cls(**days)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None


def save_policy(policy: ExpiryPolicy, path: Path) -> None:
    atomic_write(path, canonical_json(policy.to_json(), ascii_only=True) + b"\n", mode=0o644)


def load_policy(path: Path) -> ExpiryPolicy:
    data = read_input(path, "expiry policy")
    return ExpiryPolicy.from_json(decode_strict_json(data, str(path)), str(path))
