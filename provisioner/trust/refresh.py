"""`airgap trust refresh`: new timestamp and snapshot (and targets when they would expire before
the new snapshot) signed with the online keys, published like any build. The root is not
touched: its keys stay offline (`airgap trust rotate-root`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from offline.errors import UsageError
from provisioner.trust.build import BuildResult, build
from provisioner.trust.ceremony import load_root_chain
from provisioner.trust.layout import RepoLayout
from provisioner.trust.policy import load_policy
from provisioner.trust.published import read_published


def refresh(
    path: Path,
    *,
    resign_targets: bool = False,
    online_password: bytes | None = None,
    now: datetime | None = None,
) -> BuildResult:
    layout = RepoLayout(path)
    now = now or datetime.now(UTC)
    load_root_chain(layout)
    previous = read_published(layout)
    if previous is None:
        raise UsageError(f"{path}: nothing is published yet; run airgap trust build first")
    policy = load_policy(layout.policy)
    # A snapshot must never outlive the targets it names.
    expiring = previous.targets.signed.expires <= policy.expires("snapshot", now)
    return build(
        path,
        None,
        resign_targets=resign_targets or expiring,
        resign_online=True,
        online_password=online_password,
        now=now,
    )
