"""The `airgap` command line: one parser, one subcommand module per concern.

Subcommand modules import their heavy dependencies inside the handler, so that
`airgap --help` and cheap commands start fast on a CD host. A run of one of the verifier's
commands builds the parser of that command alone: a one-image check pays for no other.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

from offline.cli.options import flag_remedy
from offline.cli.parser import ArgumentParser
from offline.errors import AirgapError

Handler = Callable[[argparse.Namespace], int]
# More commands, by name: the module that registers each (`register(commands)`). The operator's
# commands (provisioner/cli/main.py) build on this parser, so the verifier never imports them.
Extensions = Mapping[str, str]


# The verifier's commands and the modules that register them, in the order `--help` lists them.
COMMANDS = {
    "verify": "offline.cli.verify",
    "verify-bundle": "offline.cli.verify_bundle",
    "checkpoint": "offline.cli.checkpoint",
    "proofs": "offline.cli.proofs",
}


def build_parser(
    extensions: Extensions | None = None, only: str | None = None
) -> argparse.ArgumentParser:
    """The whole parser; with `only` (a command of COMMANDS or `extensions`), a parser of the
    module that registers it alone: a run of one command imports no other command's module."""
    parser = ArgumentParser(
        prog="airgap",
        description="Private Sigstore for disconnected networks: carry, install, verify offline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    registered: set[str] = set()
    for name, module in (*COMMANDS.items(), *(extensions or {}).items()):
        if (only is None or name == only) and module not in registered:
            registered.add(module)
            importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None, extensions: Extensions | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = words[0] if words else None
    known = command in COMMANDS or command in (extensions or {})
    parser = build_parser(extensions, only=command if known else None)
    args = parser.parse_args(words)
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
