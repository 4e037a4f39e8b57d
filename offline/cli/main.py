"""The `airgap` command line: one parser, one subcommand module per concern.

Subcommand modules import their heavy dependencies inside the handler, so that
`airgap --help` and cheap commands start fast on a CD host.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from offline.cli.options import flag_remedy
from offline.errors import AirgapError

Handler = Callable[[argparse.Namespace], int]
# Adds more subcommands: the operator's commands (provisioner/cli/main.py) build on this parser, so
# the verifier never imports them.
Extension = Callable[[Any], None]


def build_parser(extensions: Sequence[Extension] = ()) -> argparse.ArgumentParser:
    from offline.cli import checkpoint as checkpoint_cli
    from offline.cli import proofs as proofs_cli
    from offline.cli import verify as verify_cli
    from offline.cli import verify_bundle as verify_bundle_cli

    parser = argparse.ArgumentParser(
        prog="airgap",
        description="Private Sigstore for disconnected networks: carry, install, verify offline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    verify_cli.register(commands)
    verify_bundle_cli.register(commands)
    checkpoint_cli.register(commands)
    proofs_cli.register(commands)
    for extend in extensions:
        extend(commands)
    return parser


def main(argv: Sequence[str] | None = None, extensions: Sequence[Extension] = ()) -> int:
    parser = build_parser(extensions)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except AirgapError as exc:
        print(f"airgap: {exc}{flag_remedy(exc)}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"airgap: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"airgap: permission denied: {exc.filename}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, an I/O error: one line, never a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"airgap: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("airgap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
