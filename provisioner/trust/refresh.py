"""`airgap trust refresh`: new timestamp and snapshot (and targets when they would expire before
the new snapshot) signed with the online keys, published like any build. The root is not
touched: its keys stay offline (`airgap trust rotate-root`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from provisioner.trust.build import BuildResult, build


def refresh(
    path: Path,
    *,
    resign_targets: bool = False,
    online_password: bytes | None = None,
    now: datetime | None = None,
) -> BuildResult:
    return build(
        path,
        None,
        resign_targets=resign_targets,
        resign_online=True,
        online_password=online_password,
        now=now,
    )
