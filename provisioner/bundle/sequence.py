"""Bundle sequences: each `bundle create` of a name gets a number larger than the last.

    sequence = next_sequence("site")            # from the clock, never below the last + 1
    sequence = next_sequence("site", explicit=42)

A sequence is the creation time in milliseconds since the Unix epoch, raised to one more than
the last sequence this user issued for that name (a clock set back, or two creates in the same
millisecond, still give a larger number). The last one issued is kept per name in the user state
directory (`bundle-sequences/NAME`, under a lock). An explicit sequence is used as given and
recorded when it is the largest yet; the importing side refuses what is not newer than what it
imported, so an explicit one must still grow.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

from offline.atomicfile import atomic_write
from offline.errors import UsageError
from provisioner.bundle.manifest import MAX_SEQUENCE, check_name, check_sequence


def state_dir() -> Path:
    """The airgap user state directory (XDG_STATE_HOME on Linux)."""
    from platformdirs import user_state_path

    return user_state_path("airgap")


def next_sequence(name: str, explicit: int | None = None) -> int:
    check_name(name, "bundle name")
    directory = state_dir() / "bundle-sequences"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(directory / f"{name}.lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            path = directory / name
            last = _read_last(path)
            if explicit is not None:
                sequence = check_sequence(explicit, "sequence")
            else:
                sequence = max(time.time_ns() // 1_000_000, last + 1)
                if sequence > MAX_SEQUENCE:
                    raise UsageError(f"no sequence is left after {last} for bundle {name}")
            if sequence > last:
                atomic_write(path, f"{sequence}\n".encode())
    except OSError as exc:
        raise UsageError(
            f"cannot keep the bundle sequence in {directory}: {exc.strerror or exc}"
        ) from None
    return sequence


def _read_last(path: Path) -> int:
    """The last sequence issued (0 when none was); an unreadable record is refused, not
    taken as none (it could only make the next sequence smaller)."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        return check_sequence(int(text.strip()), str(path))
    except (ValueError, UsageError):
        raise UsageError(
            f"{path} does not hold a bundle sequence: fix or remove it (bundle create then "
            "numbers from the clock)"
        ) from None


__all__ = ["next_sequence", "state_dir"]
