"""The `airgap` console script. A verifier command (`airgap verify`, a CD host's one-image check)
starts without importing the operator's commands: only the full command line needs them."""

from __future__ import annotations

import sys


def main() -> int:
    from offline.cli import main as offline_cli

    words = sys.argv[1:]
    if words and words[0] in offline_cli.COMMANDS:
        return offline_cli.main(words)
    from provisioner.cli.main import main as full

    return full(words)


if __name__ == "__main__":
    sys.exit(main())
