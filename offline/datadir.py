"""airgap's user data directory (where the trusted root and the checkpoint store are by default),
as `platformdirs.user_data_path("airgap")` names it.

On Linux, where CD hosts verify, the XDG rule is applied here when it is unambiguous (an
absolute $XDG_DATA_HOME, else an absolute $HOME's ~/.local/share): importing platformdirs (and
the tempfile and shutil it loads) costs a one-bundle check about a tenth of its time. Every other
case (another platform, Android, no usable $HOME) asks platformdirs itself.
tests/offline/test_datadir.py checks the two agree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "airgap"


def user_data_dir() -> Path:
    if sys.platform == "linux" and not hasattr(sys, "getandroidapilevel"):
        if "ANDROID_DATA" not in os.environ:
            xdg = os.environ.get("XDG_DATA_HOME", "")
            if os.path.isabs(xdg):
                return Path(xdg, APP_NAME)
            home = os.environ.get("HOME", "")
            if os.path.isabs(home):
                return Path(os.path.expanduser("~/.local/share"), APP_NAME)
    from platformdirs import user_data_path

    return user_data_path(APP_NAME)
