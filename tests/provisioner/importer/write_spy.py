"""A spy on every write the registry client makes during an import (tests of the importer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from offline.oci.registry import Repository

# (repository, write, its arguments)
Write = Callable[[str, str, tuple[Any, ...]], None]


def spy_writes(
    monkeypatch: pytest.MonkeyPatch,
    before: Write,
    after: Write | None = None,
) -> None:
    """`before(repository, name, args)` and `after(...)` around every write of the client: a
    checked blob upload counts as `push_blob`, and each manifest of `push_referrers` as a
    `push_referrer` (which itself goes through `push_referrers`)."""
    names = {"push_blob": "push_blob", "push_checked_blob": "push_blob"}
    names |= {"push_manifest": "push_manifest", "mount_blob": "mount_blob"}
    names["push_referrers"] = "push_referrer"
    for name, seen_as in names.items():
        real = getattr(Repository, name)

        def wrapper(
            self: Repository, *args: Any, _real: Any = real, _name: str = seen_as, **kwargs: Any
        ) -> Any:
            each = list(args[0]) if _name == "push_referrer" else [args]
            for item in each:
                before(self.name, _name, item)
            result = _real(self, *args, **kwargs)
            if after is not None:
                for item in each:
                    after(self.name, _name, item)
            return result

        monkeypatch.setattr(Repository, name, wrapper)
