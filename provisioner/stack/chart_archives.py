"""The chart archive each component is installed from, found in the site's `charts` directory
(the bundle's `charts/`, searched below): exactly one `<chart>-<version>.tgz` per chart, so the
operator never gets a version they did not carry by accident.
"""

from __future__ import annotations

import re
from pathlib import Path

from offline.errors import UsageError

# The upstream chart each component's release is made from.
CHART_NAMES = {
    "trillian": "trillian",
    "rekor": "rekor",
    "fulcio": "fulcio",
    "ctlog": "ctlog",
    "tsa": "tsa",
    "tuf": "tuf",
    "policy-controller": "policy-controller",
}
_ARCHIVE = re.compile(
    r"(?P<name>[a-z0-9-]+?)-(?P<version>[0-9]+\.[0-9]+\.[0-9]+[-+.A-Za-z0-9]*)\.tgz"
)


def find_chart(directory: Path, component: str) -> Path:
    """The one archive of `component`'s chart under `directory`."""
    if not directory.is_dir():
        raise UsageError(f"site charts {directory}: not a directory")
    wanted = CHART_NAMES[component]
    found = sorted(
        path
        for path in directory.rglob("*.tgz")
        if (match := _ARCHIVE.fullmatch(path.name)) and match["name"] == wanted
    )
    if not found:
        raise UsageError(
            f"site charts {directory}: no {wanted} chart (<{wanted}-VERSION.tgz>); carry it in "
            f"the bundle"
        )
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(directory)) for p in found)
        raise UsageError(f"site charts {directory}: several {wanted} charts ({listed}); keep one")
    return found[0]
