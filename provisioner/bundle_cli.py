"""`airgap bundle ...`: create, verify, import, inventory, push-ssh, keygen.

Handlers import their modules when run (the `provisioner` extra), so `airgap --help` and the
verifier's commands never pay for them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from offline.cli_options import add_registry_options, registry_options
from offline.errors import UsageError

KEY_PASSWORD_ENV = "AIRGAP_SIGN_KEY_PASSWORD"
_SIZE = re.compile(r"(\d+)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(text: str) -> int:
    """`700M`, `4G`, `4GiB`, `1048576`: bytes (K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 700M, 4G or 4GiB")
    number, unit = int(match.group(1)), (match.group(2) or "").upper().removesuffix("B")
    if unit.endswith("I"):
        size = number * int(1024 ** ("KMGT".index(unit[0]) + 1))
    else:
        size = number * _UNITS[unit]
    if size < 1_000_000:
        raise argparse.ArgumentTypeError(f"split size {text!r} is below 1M")
    return size


def register(commands: Any) -> None:
    bundle = commands.add_parser(
        "bundle",
        help="carry images, attachments, charts and files across the gap",
        description="Signed, checksummed, resumable bundles: create on the connected side, "
        "verify and import on the disconnected side.",
    )
    sub = bundle.add_subparsers(dest="bundle_command", metavar="COMMAND")
    sub.required = True

    create = sub.add_parser("create", help="build a bundle from a spec (bundles/*.yaml)")
    create.add_argument("spec", type=Path, metavar="SPEC")
    create.add_argument("-o", "--out", type=Path, required=True, help="bundle directory to make")
    create.add_argument(
        "--sign-key",
        type=Path,
        required=True,
        metavar="KEY",
        help=f"operator private key (PEM); password from ${KEY_PASSWORD_ENV}",
    )
    create.add_argument(
        "--since",
        type=Path,
        metavar="INVENTORY",
        help="leave out what this target inventory holds (a delta bundle)",
    )
    create.add_argument(
        "--compress",
        choices=("zstd", "none"),
        help="also write the bundle as one tar stream (OUT.tar[.zst])",
    )
    create.add_argument(
        "--split",
        type=parse_size,
        metavar="SIZE",
        help="split that stream into parts of SIZE (e.g. 4G); implies a stream",
    )
    create.add_argument(
        "--keep-dir",
        action="store_true",
        help="with --compress/--split: keep the bundle directory beside the stream",
    )
    create.add_argument(
        "--helm", metavar="PATH", help="helm executable (default: $AIRGAP_HELM or helm on PATH)"
    )
    add_registry_options(create)
    create.add_argument("--output", choices=("text", "json"), default="text")
    create.set_defaults(handler=run_create)

    verify = sub.add_parser(
        "verify", help="prove a bundle whole and untampered (signature, blobs, parts, graph)"
    )
    verify.add_argument(
        "bundle",
        type=Path,
        metavar="BUNDLE",
        help="bundle directory, or its parts list (OUT.parts.json)",
    )
    verify.add_argument("--key", type=Path, required=True, help="operator public key (PEM)")
    verify.add_argument("--output", choices=("text", "json"), default="text")
    verify.set_defaults(handler=run_verify)

    keygen = sub.add_parser("keygen", help="make an operator signing key pair (0600)")
    keygen.add_argument("key", type=Path, metavar="KEY", help="private key file to create")
    keygen.add_argument("--type", choices=("ecdsa-p256", "ed25519"), default="ecdsa-p256")
    keygen.set_defaults(handler=run_keygen)


def _provisioner_extra() -> None:
    """A clear message instead of an ImportError when the operator's extra is not installed."""
    try:
        import rich  # noqa: F401
        import zstandard  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"airgap bundle needs the operator's dependencies ({exc.name} is missing): "
            "pip install 'airgap[provisioner]'"
        ) from None


def _password() -> bytes | None:
    value = os.environ.get(KEY_PASSWORD_ENV)
    return value.encode() if value else None


def _warn(message: str) -> None:
    print(f"airgap: warning: {message}", file=sys.stderr)


def run_keygen(args: argparse.Namespace) -> int:
    from provisioner.bundle_signing import generate_key

    public = generate_key(args.key, args.type, _password())
    print(f"private key {args.key} (0600), public key {public}")
    return 0


def run_create(args: argparse.Namespace) -> int:
    _provisioner_extra()
    from provisioner.bundle_create import create_bundle
    from provisioner.bundle_signing import load_private_key
    from provisioner.bundle_spec import load_spec
    from provisioner.inventory import load_inventory
    from provisioner.progress import transfer_progress

    spec = load_spec(args.spec)
    key = load_private_key(args.sign_key, _password())
    since = load_inventory(args.since) if args.since is not None else None
    helm = args.helm or os.environ.get("AIRGAP_HELM")
    streaming = args.compress is not None or args.split is not None
    with transfer_progress(f"bundle {spec.name}") as progress:
        result = create_bundle(
            spec,
            args.out,
            signing_key=key,
            options=registry_options(args),
            since=since,
            helm=helm,
            progress=progress,
            warn=_warn,
        )
    summary = result.to_json()
    if streaming:
        from provisioner.bundle_archive import parts_list_path, write_archive

        parts = write_archive(
            result.path,
            result.path,
            compress=args.compress or "zstd",
            split_size=args.split,
            signing_key=key,
        )
        summary["archive"] = {"partsList": str(parts_list_path(result.path)), **parts.to_json()}
        if not args.keep_dir:
            shutil.rmtree(result.path)
            summary["bundle"] = str(parts_list_path(result.path))
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        manifest = result.manifest
        attachments = sum(sum(o.report.attachment_counts().values()) for o in result.images)
        delta = ""
        if manifest.on_target:
            left = sum(b.size for b in manifest.on_target)
            delta = f"; left out {len(manifest.on_target)} blobs ({left} bytes) the target has"
        print(
            f"bundle {summary['bundle']}: {len(manifest.images)} images, "
            f"{attachments} attachments, "
            f"{len(manifest.blobs)} blobs ({summary['blobBytes']} bytes), "
            f"{len(manifest.charts)} charts, {len(manifest.files)} files{delta}"
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from provisioner.bundle_check import verify_bundle_dir
    from provisioner.bundle_signing import load_public_key

    key = load_public_key(args.key)
    bundle: Path = args.bundle
    summary: dict[str, Any] = {"bundle": str(bundle)}
    if bundle.is_dir():
        report = verify_bundle_dir(bundle, key)
        summary.update(ok=report.ok, problem=report.problem)
        lines = [report.summary()]
    else:
        # A parts list: every part first (all bad ones named), then the unpacked bundle.
        _provisioner_extra()
        import tempfile

        from provisioner.bundle_archive import check_parts, extract_archive

        parts = check_parts(bundle, key)
        summary.update(ok=parts.ok, resend=parts.resend)
        lines = [parts.summary()]
        if parts.ok:
            with tempfile.TemporaryDirectory(dir=bundle.parent, prefix=".verify-") as scratch:
                unpacked = extract_archive(bundle, key, Path(scratch) / "bundle")
                report = verify_bundle_dir(unpacked, key)
                summary.update(ok=report.ok, problem=report.problem)
                lines.append(report.summary().replace(str(unpacked), "(unpacked)"))
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(lines))
    return 0 if summary["ok"] else 1
