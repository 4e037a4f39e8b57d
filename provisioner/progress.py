"""Progress for long copies: a rich bar with bytes and rate on a terminal, nothing otherwise.

    with transfer_progress("carrying images", enabled=sys.stderr.isatty()) as progress:
        mirror_image(source, sink, digest, progress=progress)

The callback follows provisioner.copy.mirror.Progress: "blob" (a blob starts; its size grows the
total), "bytes" (bytes went through), "present" (already there: counted as done at once),
"manifest" (a manifest was written).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from provisioner.copy.mirror import Progress


@contextmanager
def transfer_progress(description: str, *, enabled: bool | None = None) -> Iterator[Progress]:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _ignore
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    lock = threading.Lock()
    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=0)

        def update(event: str, digest: str, amount: int) -> None:
            with lock:
                if event == "blob":
                    bar.update(task, total=(bar.tasks[task].total or 0) + amount)
                elif event == "bytes":
                    bar.advance(task, amount)

        yield update


def _ignore(event: str, digest: str, amount: int) -> None:
    return None


@contextmanager
def byte_progress(
    description: str, *, enabled: bool | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A bar fed with (bytes done, bytes in all), as provisioner.transfer.push_ssh reports them."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=0)
        yield lambda done, total: bar.update(task, completed=done, total=total)
