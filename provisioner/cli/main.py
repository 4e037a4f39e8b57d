"""The `airgap` command: the verifier's commands (offline/cli/main.py) plus the operator's.

The operator's commands import their dependencies (the `provisioner` extra) only when run, so a
verifier-only install still starts fast and says what to install when one of them is used.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from offline.cli import main as offline_cli
from provisioner.cli import bundle as bundle_cli
from provisioner.cli import hosts as hosts_cli
from provisioner.cli import install as install_cli
from provisioner.cli import nodes as nodes_cli
from provisioner.cli import policy as policy_cli
from provisioner.cli import trust as trust_cli

# The operator's command families, added to the verifier's parser.
EXTENSIONS = (
    bundle_cli.register,
    trust_cli.register,
    install_cli.register,
    nodes_cli.register,
    hosts_cli.register,
    policy_cli.register,
)


def main(argv: Sequence[str] | None = None) -> int:
    return offline_cli.main(argv, extensions=EXTENSIONS)


if __name__ == "__main__":
    sys.exit(main())
