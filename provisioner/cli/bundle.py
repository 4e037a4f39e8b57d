"""`airgap bundle ...`: create, verify, import, inventory, push-ssh, keygen.

Handlers import their modules when run (the `provisioner` extra), so `airgap --help` and the
verifier's commands never pay for them.

One module for the whole `bundle` family, as offline/cli has one per command family: the
parser and the handlers that read its flags and print the results. It stays one because all it
holds is that wiring; the work (create, check, archive, import, push) lives in the library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.cli.options import add_registry_options, registry_options
from offline.errors import AirgapError, UsageError

if TYPE_CHECKING:
    from provisioner.bundle.detached import ManifestSigner, ManifestTrust

KEY_PASSWORD_ENV = "AIRGAP_SIGN_KEY_PASSWORD"
TOKEN_ENV = "SIGSTORE_ID_TOKEN"
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


def _sequence(text: str) -> int:
    from provisioner.bundle.manifest import MAX_SEQUENCE

    if not text.strip().isdigit() or not 0 < int(text) <= MAX_SEQUENCE:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer from 1 to {MAX_SEQUENCE}")
    return int(text)


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
    signer = create.add_mutually_exclusive_group(required=True)
    signer.add_argument(
        "--sign-key",
        type=Path,
        metavar="KEY",
        help=f"operator private key (PEM); password from ${KEY_PASSWORD_ENV}",
    )
    signer.add_argument(
        "--keyless",
        action="store_true",
        help="sign with a Fulcio certificate for --identity-token, logged in Rekor",
    )
    create.add_argument(
        "--identity-token",
        type=Path,
        metavar="FILE",
        help=f"with --keyless: a file holding the OIDC token (or ${TOKEN_ENV})",
    )
    create.add_argument(
        "--sigstore-trust-config",
        type=Path,
        metavar="FILE",
        help="with --keyless: a private Sigstore instance's ClientTrustConfig JSON "
        "(default: the public-good instance)",
    )
    create.add_argument(
        "--sequence",
        type=_sequence,
        metavar="N",
        help="this bundle's sequence among the bundles of its name (default: from the clock, "
        "above any made here before); a target refuses one older than it has imported",
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
    create.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="UPSTREAM=MIRROR[/PREFIX]",
        help="fetch the images of registry UPSTREAM from MIRROR instead (e.g. "
        "ghcr.io=mirror.internal:5000/ghcr; repeatable); the bundle keeps the upstream names, "
        "and every digest is checked as usual",
    )
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
    _add_trust_options(verify)
    verify.add_argument("--output", choices=("text", "json"), default="text")
    verify.set_defaults(handler=run_verify)

    imp = sub.add_parser(
        "import",
        help="verify a bundle, then push it into a registry or an OCI layout, digests unchanged",
    )
    imp.add_argument(
        "bundle",
        type=Path,
        metavar="BUNDLE",
        help="bundle directory, or its parts list (OUT.parts.json)",
    )
    _add_trust_options(imp)
    imp.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="REGISTRY[/PREFIX] (e.g. registry.internal:5000/mirror) or oci:DIR",
    )
    imp.add_argument(
        "--dry-run",
        action="store_true",
        help="report what exists, the bytes to push and tags that would move; write nothing",
    )
    imp.add_argument(
        "--allow-rollback",
        action="store_true",
        help="import a bundle older than (or another than, at the same sequence) the newest "
        "of its name this target imported; tags may move back",
    )
    imp.add_argument(
        "--journal",
        type=Path,
        help="import journal (default: in the user state directory, by target and bundle)",
    )
    imp.add_argument(
        "--mapping",
        type=Path,
        help="where each image landed, as JSON for whatever deploys from the target "
        "(default: beside the bundle)",
    )
    add_registry_options(imp)
    imp.add_argument("--output", choices=("text", "json"), default="text")
    imp.set_defaults(handler=run_import)

    inventory = sub.add_parser(
        "inventory", help="record what a registry holds, to build delta bundles against it"
    )
    inventory.add_argument(
        "--registry", required=True, metavar="TARGET", help="REGISTRY[/PREFIX] or oci:DIR"
    )
    inventory.add_argument(
        "--repository",
        action="append",
        default=[],
        metavar="NAME",
        help="look only at these repositories (registries without a catalog)",
    )
    inventory.add_argument("-o", "--out", type=Path, required=True, help="inventory file")
    add_registry_options(inventory)
    inventory.add_argument("--output", choices=("text", "json"), default="text")
    inventory.set_defaults(handler=run_inventory)

    push = sub.add_parser(
        "push-ssh", help="send a bundle to a bastion over SFTP, resumable, host key checked"
    )
    push.add_argument(
        "bundle",
        type=Path,
        metavar="BUNDLE",
        help="parts list (OUT.parts.json) or bundle directory",
    )
    push.add_argument("destination", metavar="USER@HOST:PATH")
    push.add_argument("--port", type=int, default=22)
    push.add_argument(
        "--identity",
        type=Path,
        metavar="KEY",
        help="SSH private key (passphrase from $AIRGAP_SSH_KEY_PASSPHRASE)",
    )
    push.add_argument("--known-hosts", type=Path, metavar="FILE", help="default ~/.ssh/known_hosts")
    push.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust an unknown host's key and record it (a changed key is always refused)",
    )
    push.add_argument("--output", choices=("text", "json"), default="text")
    push.set_defaults(handler=run_push_ssh)

    keygen = sub.add_parser("keygen", help="make an operator signing key pair (0600)")
    keygen.add_argument("key", type=Path, metavar="KEY", help="private key file to create")
    keygen.add_argument("--type", choices=("ecdsa-p256", "ed25519"), default="ecdsa-p256")
    keygen.set_defaults(handler=run_keygen)


def _add_trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, help="operator public key (PEM)")
    keyless = parser.add_argument_group("a keyless signer (instead of --key)")
    keyless.add_argument("--certificate-identity", help="the signer's identity, exactly")
    keyless.add_argument("--certificate-oidc-issuer", help="the signer's OIDC issuer, exactly")
    keyless.add_argument(
        "--trusted-root", type=Path, help="trusted_root.json of the instance that signed"
    )


def _trust(args: argparse.Namespace) -> ManifestTrust:
    """The operator's public key, or the keyless identity checked against a trusted root."""
    keyless = (args.certificate_identity, args.certificate_oidc_issuer, args.trusted_root)
    if args.key is not None:
        if any(keyless):
            raise UsageError("give --key or the keyless signer's identity, not both")
        from provisioner.bundle.signing import load_public_key

        return load_public_key(args.key)
    if not all(keyless):
        raise UsageError(
            "who signed the bundle? give --key PUB, or --certificate-identity, "
            "--certificate-oidc-issuer and --trusted-root"
        )
    from provisioner.bundle.keyless import KeylessTrust

    return KeylessTrust(args.trusted_root, args.certificate_identity, args.certificate_oidc_issuer)


def _signer(args: argparse.Namespace) -> ManifestSigner:
    if args.sign_key is not None:
        if args.identity_token or args.sigstore_trust_config:
            raise UsageError("--identity-token and --sigstore-trust-config go with --keyless")
        from provisioner.bundle.signing import load_private_key

        return load_private_key(args.sign_key, _password())
    from provisioner.bundle.keyless import KeylessSigner

    token: str | Path | None = args.identity_token or os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"--keyless needs --identity-token FILE or ${TOKEN_ENV}")
    return KeylessSigner(token, trust_config=args.sigstore_trust_config)


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
    from provisioner.bundle.signing import generate_key

    args.key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    public = generate_key(args.key, args.type, _password())
    print(f"private key {args.key} (0600), public key {public}")
    return 0


def _mirrors(given: list[str]) -> dict[str, str]:
    from offline.oci.sources import parse_mirror

    mirrors: dict[str, str] = {}
    for text in given:
        upstream, mirror = parse_mirror(text)
        if upstream in mirrors:
            raise UsageError(f"--registry-mirror: {upstream} is given two mirrors")
        mirrors[upstream] = mirror
    return mirrors


def run_create(args: argparse.Namespace) -> int:
    _provisioner_extra()
    from provisioner.bundle.spec import load_spec
    from provisioner.copy.inventory import load_inventory
    from provisioner.create.create import create_bundle
    from provisioner.progress import transfer_progress

    options = registry_options(args).replace(mirrors=_mirrors(args.registry_mirror))
    spec = load_spec(args.spec)
    key = _signer(args)
    since = load_inventory(args.since) if args.since is not None else None
    helm = args.helm or os.environ.get("AIRGAP_HELM")
    streaming = args.compress is not None or args.split is not None
    with transfer_progress(f"bundle {spec.name}") as progress:
        result = create_bundle(
            spec,
            args.out,
            signing_key=key,
            options=options,
            since=since,
            helm=helm,
            progress=progress,
            warn=_warn,
            sequence=args.sequence,
        )
    summary = result.to_json()
    if streaming:
        from provisioner.archive.names import parts_list_path
        from provisioner.archive.write import write_archive

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
        for outcome in result.images:
            # Looked for everywhere and found nowhere: told apart from a failed fetch.
            if not outcome.report.attachments and not outcome.report.fetch_failures:
                _warn(f"{outcome.reference}: no signatures, attestations or SBOMs exist for it")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from provisioner.bundle.check import verify_bundle_dir

    key = _trust(args)
    bundle: Path = args.bundle
    _exists(bundle)
    summary: dict[str, Any] = {"bundle": str(bundle)}
    if bundle.is_dir():
        report = verify_bundle_dir(bundle, key)
        summary.update(ok=report.ok, problem=report.problem)
        lines = [report.summary()]
    else:
        # A parts list: every part first (all bad ones named), then the unpacked bundle.
        _provisioner_extra()
        import tempfile

        from provisioner.archive.check import check_parts
        from provisioner.archive.extract import extract_archive

        parts = check_parts(bundle, key)
        summary.update(ok=parts.ok, resend=parts.resend)
        lines = [parts.summary()]
        if parts.ok:
            with tempfile.TemporaryDirectory(dir=bundle.parent, prefix=".verify-") as scratch:
                unpacked = extract_archive(bundle, key, Path(scratch) / "bundle", checked=parts)
                report = verify_bundle_dir(unpacked, key)
                summary.update(ok=report.ok, problem=report.problem)
                lines.append(report.summary().replace(str(unpacked), "(unpacked)"))
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(lines))
    return 0 if summary["ok"] else 1


def _exists(bundle: Path) -> None:
    if not bundle.exists():
        raise UsageError(f"no bundle at {bundle}: give a bundle directory or its parts list")


def _bundle_dir(bundle: Path, key: Any) -> tuple[Path, str | None]:
    """A bundle directory, and for a parts list the manifest SHA-256 its signed list records.
    A parts list is checked and unpacked beside it first; a directory unpacked by an earlier
    import is used again only if it holds the bundle the signed list names (import then checks
    every byte of it against its signed manifest, as for any bundle directory)."""
    _exists(bundle)
    if bundle.is_dir():
        return bundle, None
    from provisioner.archive.extract import unpacked_bundle

    return unpacked_bundle(bundle, key)


@contextmanager
def _remedy(error: type[AirgapError], flag_words: str) -> Iterator[None]:
    """The library says what is wrong; the command line adds which of its flags overrides it."""
    try:
        yield
    except error as exc:
        raise type(exc)(f"{exc}; {flag_words}") from None


def run_import(args: argparse.Namespace) -> int:
    _provisioner_extra()
    from provisioner.copy.inventory import parse_target
    from provisioner.importer.importer import import_bundle
    from provisioner.importer.record import RollbackRefused
    from provisioner.progress import transfer_progress

    parse_target(args.to)  # a wrong target is reported before any work
    key = _trust(args)
    bundle, manifest_sha256 = _bundle_dir(args.bundle, key)
    # A dry run reads nothing from the bundle: there would be no bytes to show.
    show = None if not args.dry_run else False
    rollback = _remedy(RollbackRefused, "pass --allow-rollback to import it anyway")
    with rollback, transfer_progress(f"import into {args.to}", enabled=show) as progress:
        report = import_bundle(
            bundle,
            key,
            args.to,
            options=registry_options(args),
            dry_run=args.dry_run,
            journal_path=args.journal,
            mapping_path=args.mapping,
            progress=progress,
            allow_rollback=args.allow_rollback,
            expected_manifest_sha256=manifest_sha256,
        )
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
        if report.mapping is not None:
            print(f"mapping: {report.mapping}")
    return 0 if report.ok else 1


def run_inventory(args: argparse.Namespace) -> int:
    from provisioner.copy.catalog import CatalogUnavailable
    from provisioner.copy.inventory import build_inventory

    with _remedy(CatalogUnavailable, "give them with --repository NAME, once per repository"):
        inventory = build_inventory(
            args.registry, registry_options(args), repositories=args.repository or None
        )
    inventory.write(args.out)
    summary = {
        "inventory": str(args.out),
        "registry": args.registry,
        "blobs": len(inventory.blobs),
        "blobBytes": sum(inventory.blobs.values()),
        "manifests": len(inventory.manifests),
    }
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"inventory {args.out}: {summary['manifests']} manifests, {summary['blobs']} blobs "
            f"({summary['blobBytes']} bytes) in {args.registry}"
        )
    return 0


def run_push_ssh(args: argparse.Namespace) -> int:
    _provisioner_extra()
    from provisioner.progress import byte_progress
    from provisioner.transfer.bundle_files import bundle_files
    from provisioner.transfer.push_ssh import push_files

    _exists(args.bundle)
    items = bundle_files(args.bundle)
    from provisioner.transfer.ssh import UnknownHostKey

    accept = _remedy(UnknownHostKey, "rerun with --accept-new-host-key to add it")
    with accept, byte_progress(f"push to {args.destination}") as progress:
        report = push_files(
            items,
            args.destination,
            port=args.port,
            known_hosts=args.known_hosts,
            accept_new_host_key=args.accept_new_host_key,
            identity_file=args.identity,
            progress=progress,
        )
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        sent = sum(1 for i in report.items if i.status != "present")
        print(
            f"pushed {len(report.items)} files to {report.destination} ({sent} sent, "
            f"{report.bytes_sent} bytes; host key {report.host_key})"
        )
    return 0
