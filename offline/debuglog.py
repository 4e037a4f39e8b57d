"""Debug records from modules on the verifier's path, without importing `logging` for them.

A process that never imported `logging` has configured no handler, so a debug record would go
nowhere: such a process (a one-image `airgap verify`) skips the import and its ~3 ms. Where the
program uses logging (the operator's commands, pytest's caplog), records reach it as before.
"""

from __future__ import annotations

import sys


def debug(name: str, message: str, *args: object) -> None:
    """`logging.getLogger(name).debug(message, *args)` when the process uses logging."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).debug(message, *args)
