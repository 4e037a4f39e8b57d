"""`airgap trust ...`: the Sigstore TUF repository, built and signed on the operator's machine.

    airgap trust init --dir REPO [--threshold K --keys N] [--root-keys DIR] [--*-days D]
    airgap trust build --dir REPO (--target NAME=FILE... | --from DIR)
    airgap trust refresh --dir REPO [--targets]
    airgap trust status --dir REPO [--warn-days D]
    airgap trust rotate-root --dir REPO [--root-keys DIR]
        [--new-keys N --new-root-keys DIR] [--threshold K]

The wiring only: the work lives in provisioner/trust.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.errors import UsageError

if TYPE_CHECKING:
    from provisioner.trust.build import BuildResult

ROOT_PASSWORD_ENV = "AIRGAP_TUF_ROOT_KEY_PASSWORD"
ONLINE_PASSWORD_ENV = "AIRGAP_TUF_ONLINE_KEY_PASSWORD"


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 1 or more")
    return int(text)


def register(commands: Any) -> None:
    trust = commands.add_parser(
        "trust",
        help="the Sigstore TUF repository, built and signed offline",
        description="A TUF repository for the private Sigstore stack: root keys made and kept "
        "on the operator's machine, targets signed with consistent snapshots, and the "
        "tuf-root Secret policy-controller reads.",
    )
    sub = trust.add_subparsers(dest="trust_command", metavar="COMMAND")
    sub.required = True

    init = sub.add_parser("init", help="make the root and online keys and sign root version 1")
    _dir(init)
    init.add_argument(
        "--keys", type=_positive, default=1, metavar="N", help="root keys (default 1)"
    )
    init.add_argument(
        "--threshold",
        type=_positive,
        default=1,
        metavar="K",
        help="root keys needed to sign (default 1)",
    )
    _root_keys(init)
    from provisioner.stack.site import DEFAULT_EXPIRY_DAYS

    for role, default in DEFAULT_EXPIRY_DAYS.items():
        init.add_argument(
            f"--{role}-days",
            type=_positive,
            default=default,
            metavar="D",
            help=f"days {role} metadata stays valid (default {default})",
        )
    _output(init)
    init.set_defaults(handler=run_init)

    build = sub.add_parser("build", help="sign and publish the targets (unchanged: nothing new)")
    _dir(build)
    given = build.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a target (repeatable), e.g. trusted_root.json=trusted_root.json",
    )
    given.add_argument(
        "--from", dest="source", type=Path, metavar="DIR", help="every file in DIR is a target"
    )
    _output(build)
    build.set_defaults(handler=run_build)

    refresh = sub.add_parser("refresh", help="re-sign timestamp and snapshot before they expire")
    _dir(refresh)
    refresh.add_argument("--targets", action="store_true", help="re-sign targets too")
    _output(refresh)
    refresh.set_defaults(handler=run_refresh)

    status = sub.add_parser("status", help="versions and expiry; exit 1 if anything needs action")
    _dir(status)
    status.add_argument(
        "--warn-days",
        type=int,
        metavar="D",
        help="not ok when a role expires within D days (default: half each role's period, "
        "at most 30 days)",
    )
    _output(status)
    status.set_defaults(handler=run_status)

    rotate = sub.add_parser(
        "rotate-root", help="sign the next root version: fresh expiry, optionally new root keys"
    )
    _dir(rotate)
    _root_keys(rotate)
    rotate.add_argument(
        "--new-keys", type=_positive, metavar="N", help="replace the root keys with N new ones"
    )
    rotate.add_argument(
        "--new-root-keys", type=Path, metavar="DIR", help="where the new root keys go"
    )
    rotate.add_argument(
        "--threshold", type=_positive, metavar="K", help="root keys needed from now on"
    )
    rotate.add_argument(
        "--new-online-keys",
        action="store_true",
        help="also replace the targets, snapshot and timestamp keys (the old ones are retired); "
        f"password from ${ONLINE_PASSWORD_ENV}",
    )
    _output(rotate)
    rotate.set_defaults(handler=run_rotate_root)


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, required=True, metavar="REPO", help="repository directory"
    )


def _root_keys(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root-keys",
        type=Path,
        metavar="DIR",
        help=f"root private keys (default REPO/keys/root); password from ${ROOT_PASSWORD_ENV}",
    )


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=("text", "json"), default="text")


def _password(env: str) -> bytes | None:
    value = os.environ.get(env)
    return value.encode() if value else None


def _root_keys_of(args: argparse.Namespace, directory: Path | None = None) -> Any:
    from provisioner.trust.ceremony import RootKeys
    from provisioner.trust.layout import RepoLayout

    where = directory or args.root_keys or RepoLayout(args.dir).default_root_keys
    return RootKeys(where, _password(ROOT_PASSWORD_ENV))


def _online_password() -> bytes | None:
    return _password(ONLINE_PASSWORD_ENV)


def run_init(args: argparse.Namespace) -> int:
    from provisioner.trust.ceremony import init_repository
    from provisioner.trust.policy import ExpiryPolicy

    policy = ExpiryPolicy(
        args.root_days, args.targets_days, args.snapshot_days, args.timestamp_days
    )
    root_keys = _root_keys_of(args)
    root = init_repository(
        args.dir,
        threshold=args.threshold,
        keys=args.keys,
        policy=policy,
        root_keys=root_keys,
        online_password=_online_password(),
    ).signed
    summary = {
        "repository": str(args.dir),
        "rootKeys": str(root_keys.directory),
        "threshold": args.threshold,
        "keyids": list(root.roles["root"].keyids),
        "expires": root.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "policy": policy.to_json()["expiresDays"],
    }
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"TUF repository {args.dir}: root version 1 ({args.threshold} of {args.keys} keys in "
            f"{root_keys.directory}, expires {summary['expires']}); keep the root keys offline"
        )
    return 0


def run_build(args: argparse.Namespace) -> int:
    from provisioner.trust.build import build
    from provisioner.trust.targets import parse_target_args, targets_from_dir

    targets = targets_from_dir(args.source) if args.source else parse_target_args(args.target)
    _print_result(build(args.dir, targets, online_password=_online_password()), args.output)
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    from provisioner.trust.refresh import refresh

    result = refresh(args.dir, resign_targets=args.targets, online_password=_online_password())
    _print_result(result, args.output)
    return 0


def _print_result(result: BuildResult, output: str) -> None:
    summary = result.to_json()
    if output == "json":
        print(json.dumps(summary, indent=2))
        return
    roles = ", ".join(
        f"{role} v{info['version']} until {info['expires']}"
        for role, info in summary["roles"].items()
    )
    state = "published" if result.changed else "unchanged"
    print(f"{state}: {summary['served']} ({roles}); {len(result.targets)} targets")
    print(f"pin: {summary['root']}; secret: {summary['secret']}")


def run_status(args: argparse.Namespace) -> int:
    from provisioner.trust.status import trust_status

    report = trust_status(args.dir, warn_days=args.warn_days)
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        for role in report.roles:
            expires = role.to_json()["expires"]
            print(
                f"{role.role}: version {role.version}, expires {expires} "
                f"({role.days_left:.1f} days)"
            )
        print(f"targets: {', '.join(report.targets)}")
        for problem in report.problems:
            print(f"FAIL {problem}")
        for warning in report.warnings:
            print(f"WARN {warning}")
    return 0 if report.ok else 1


def run_rotate_root(args: argparse.Namespace) -> int:
    from provisioner.trust.ceremony import rotate_root

    if (args.new_keys is None) != (args.new_root_keys is None):
        raise UsageError("--new-keys and --new-root-keys go together")
    new = _root_keys_of(args, args.new_root_keys) if args.new_root_keys else None
    root = rotate_root(
        args.dir,
        _root_keys_of(args),
        new_root_keys=new,
        new_keys=args.new_keys,
        threshold=args.threshold,
        new_online_keys=args.new_online_keys,
        online_password=_online_password(),
    ).signed
    summary: dict[str, Any] = {
        "repository": str(args.dir),
        "version": root.version,
        "threshold": root.roles["root"].threshold,
        "keyids": list(root.roles["root"].keyids),
        "expires": root.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"root version {root.version} signed ({summary['threshold']} of "
            f"{len(summary['keyids'])} keys, expires {summary['expires']}); publish it with "
            f"airgap trust build or refresh"
        )
    return 0
