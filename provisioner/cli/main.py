"""The `airgap` command: the verifier's commands (offline/cli/main.py) plus the operator's.

The operator's commands import their dependencies (the `provisioner` extra) only when run, so a
verifier-only install still starts fast and says what to install when one of them is used.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from offline.cli import main as offline_cli

# The operator's commands and the modules that register them (one module may register
# several), in the order `--help` lists them. A run of one command imports its module alone.
EXTENSIONS = {
    "bundle": "provisioner.cli.bundle",
    "trust": "provisioner.cli.trust",
    "install": "provisioner.cli.install",
    "status": "provisioner.cli.install",
    "uninstall": "provisioner.cli.install",
    "nodes": "provisioner.cli.nodes",
    "hosts": "provisioner.cli.hosts",
    "policy": "provisioner.cli.policy",
}


def main(argv: Sequence[str] | None = None) -> int:
    return offline_cli.main(argv, extensions=EXTENSIONS)


if __name__ == "__main__":
    sys.exit(main())
