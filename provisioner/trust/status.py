"""`airgap trust status`: each role's version and expiry, and whether a TUF client accepts the
published repository now. Not ok when anything is expired, refused, unpublished, or expires
within the warning window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from offline.errors import UsageError, VerificationFailure
from provisioner.trust.ceremony import load_root_chain
from provisioner.trust.client import fetch_all_targets
from provisioner.trust.layout import RepoLayout, repository_dir
from provisioner.trust.policy import load_policy
from provisioner.trust.published import read_published


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: datetime
    days_left: float

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "version": self.version,
            "expires": self.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "daysLeft": round(self.days_left, 1),
        }


@dataclass(frozen=True)
class TrustStatus:
    repository: Path
    roles: tuple[RoleStatus, ...]
    targets: tuple[str, ...]
    problems: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.warnings

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "ok": self.ok,
            "roles": [r.to_json() for r in self.roles],
            "targets": list(self.targets),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def trust_status(
    path: Path, *, warn_days: float | None = None, now: datetime | None = None
) -> TrustStatus:
    """`warn_days` None: each role by its policy's warning window (ExpiryPolicy.warn_days)."""
    if warn_days is not None and warn_days < 0:
        raise UsageError(f"--warn-days {warn_days}: must not be negative")
    layout = RepoLayout(path)
    now = now or datetime.now(UTC)
    # The root chain is checked whatever its expiry, so that an expired root is reported here.
    root = load_root_chain(layout, now=datetime.min.replace(tzinfo=UTC)).signed
    policy = load_policy(layout.policy)
    published = read_published(layout)
    if published is None:
        raise UsageError(f"{path}: nothing is published yet; run airgap trust build")
    roles = tuple(
        RoleStatus(role, signed.version, signed.expires, (signed.expires - now) / timedelta(days=1))
        for role, signed in (
            ("root", root),
            ("targets", published.targets.signed),
            ("snapshot", published.snapshot.signed),
            ("timestamp", published.timestamp.signed),
        )
    )
    problems, warnings = [], []
    for role in roles:
        day = role.expires.strftime("%Y-%m-%d %H:%M UTC")
        if role.days_left <= 0:
            problems.append(f"{role.role} version {role.version} expired on {day}")
        elif role.days_left <= (policy.warn_days(role.role) if warn_days is None else warn_days):
            warnings.append(
                f"{role.role} version {role.version} expires on {day}: {_remedy(role.role)}"
            )
    if published.root.version != root.version:
        problems.append(f"root version {root.version} is not published yet: run airgap trust build")
    try:
        fetch_all_targets(repository_dir(published.generation), layout.root_file(1).read_bytes())
    except VerificationFailure as exc:
        problems.append(str(exc))
    return TrustStatus(
        path, roles, tuple(t.name for t in published.files), tuple(problems), tuple(warnings)
    )


def _remedy(role: str) -> str:
    if role == "root":
        return "sign a new root with airgap trust rotate-root (root keys needed)"
    return "run airgap trust refresh"
