"""Command-line options that several commands share. Nothing heavy is imported here: it runs
when the parser is built, before any command starts.

Registry credentials are not options (they would show in the process list): they come from a
docker config.json entry for each host, or from AIRGAP_REGISTRY_USERNAME/PASSWORD for the one
host AIRGAP_REGISTRY_HOST names (offline.oci.registry_auth)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offline.oci.sources import RegistryOptions


def add_trusted_root_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    """--trusted-root FILE; when absent, offline.trust.root.locate_trusted_root looks further."""
    parser.add_argument(
        "--trusted-root",
        type=Path,
        metavar="FILE",
        help=f"trusted_root.json (default: $AIRGAP_TRUSTED_ROOT, else the one in airgap's data "
        f"dir{note})",
    )


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry-ca", type=Path, metavar="FILE", help="CA bundle for registries")
    parser.add_argument(
        "--allow-http-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="reach this registry host over plain HTTP, and accept a token service on it "
        "over plain HTTP (repeatable); credentials go over plain HTTP only to hosts named here",
    )


def flag_remedy(error: BaseException | None) -> str:
    """What the command line adds to a library error that one of its flags overrides (the
    library says what is wrong in its own terms, and names no flags). A wrapped error keeps
    the library's as its cause or context, so the chain is searched."""
    registry_http = sys.modules.get("offline.oci.registry_http")
    if registry_http is None:  # no registry was reached: none refused plain HTTP
        return ""
    while error is not None:
        if isinstance(error, registry_http.PlainHttpRefused) and error.host:
            return f" (--allow-http-registry {error.host})"
        error = error.__cause__ or error.__context__
    return ""


def registry_options(args: argparse.Namespace) -> RegistryOptions:
    from offline.oci.sources import RegistryOptions

    return RegistryOptions(
        ca_bundle=args.registry_ca, insecure_http_hosts=frozenset(args.allow_http_registry)
    )
