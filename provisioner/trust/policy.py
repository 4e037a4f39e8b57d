"""How long each role's metadata stays valid, kept in REPO/policy.json.

    {"expiresDays": {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}}

The defaults are the site configuration's (provisioner.stack.site, `tuf.expiry`), so a
repository made by `airgap trust init` and one made for a site agree;
`ExpiryPolicy.from_days(site.tuf_expiry_days)` takes a site's.

Timestamp and snapshot are re-signed by every `airgap trust refresh` with the online keys; targets
by every build that changes a target; root only with the root keys, so its period is the longest.
A client refuses expired metadata, and so does policy-controller's TrustRoot: refresh well
before the timestamp expires.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.inputs import decode_strict_json, read_input
from provisioner.stack.site import DEFAULT_EXPIRY_DAYS
from provisioner.trust.layout import TOP_LEVEL_ROLES

MAX_DAYS = 3650  # ten years: longer is a typo, not a policy


@dataclass(frozen=True)
class ExpiryPolicy:
    root: int = DEFAULT_EXPIRY_DAYS["root"]
    targets: int = DEFAULT_EXPIRY_DAYS["targets"]
    snapshot: int = DEFAULT_EXPIRY_DAYS["snapshot"]
    timestamp: int = DEFAULT_EXPIRY_DAYS["timestamp"]

    def __post_init__(self) -> None:
        for role in TOP_LEVEL_ROLES:
            days = self.days(role)
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
                raise UsageError(
                    f"expiry of {role}: {days!r} is not a whole number of days 1-{MAX_DAYS}"
                )
        # Each role must outlive the one it signs for: a timestamp outliving its snapshot only
        # moves the failure from the expiry the operator watches to one they do not.
        for shorter, longer in itertools.pairwise(("timestamp", "snapshot", "targets", "root")):
            if self.days(shorter) > self.days(longer):
                raise UsageError(
                    f"expiry of {shorter}: {self.days(shorter)} days is longer than {longer}'s "
                    f"{self.days(longer)}"
                )

    def days(self, role: str) -> int:
        value: int = getattr(self, role)
        return value

    def expires(self, role: str, now: datetime) -> datetime:
        return (now + timedelta(days=self.days(role))).replace(microsecond=0)

    def to_json(self) -> dict[str, Any]:
        return {"expiresDays": {role: self.days(role) for role in TOP_LEVEL_ROLES}}

    @classmethod
    def from_days(cls, days: Mapping[str, int]) -> ExpiryPolicy:
        """From a mapping of role to days, such as a site's `tuf_expiry_days`."""
        if set(days) != set(TOP_LEVEL_ROLES):
            raise UsageError(f"expiry policy must name exactly {', '.join(TOP_LEVEL_ROLES)}")
        return cls(**days)

    def warn_days(self, role: str) -> float:
        """How early status warns about a role by default: half its period, at most 30 days
        (a one-day timestamp warns at 12 hours, a one-year root at 30 days)."""
        return min(30.0, self.days(role) / 2)

    @classmethod
    def from_json(cls, document: Any, where: str) -> ExpiryPolicy:
        if not isinstance(document, dict) or set(document) != {"expiresDays"}:
            raise UsageError(f"{where}: expected exactly one field, expiresDays")
        days = document["expiresDays"]
        if not isinstance(days, dict) or set(days) != set(TOP_LEVEL_ROLES):
            raise UsageError(f"{where}: expiresDays must name exactly {', '.join(TOP_LEVEL_ROLES)}")
        try:
            return cls.from_days(days)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None


def save_policy(policy: ExpiryPolicy, path: Path) -> None:
    atomic_write(path, canonical_json(policy.to_json(), ascii_only=True) + b"\n", mode=0o644)


def load_policy(path: Path) -> ExpiryPolicy:
    data = read_input(path, "expiry policy")
    return ExpiryPolicy.from_json(decode_strict_json(data, str(path)), str(path))
