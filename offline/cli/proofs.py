"""`airgap proofs fetch`: complete log entries with inclusion proofs to pinned checkpoints.

    airgap proofs fetch --rekor URL [--trusted-root F] [--checkpoints DIR] [--out DIR]
        (BUNDLE | IMAGE)...

Run inside the gap while the internal Rekor is reachable; afterwards the bundles verify with
`--pinning require` and no Rekor at all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from offline.cli.options import add_registry_options, add_trusted_root_option, registry_options
from offline.errors import UsageError


def register(commands: Any) -> None:
    proofs = commands.add_parser(
        "proofs",
        help="fetch inclusion proofs so that later verification needs no Rekor",
        description="Complete log entries with inclusion proofs against pinned checkpoints.",
    )
    sub = proofs.add_subparsers(dest="proofs_command", metavar="SUBCOMMAND")
    sub.required = True
    fetch = sub.add_parser(
        "fetch",
        help="add inclusion proofs to bundles whose entries have none or an unpinned one",
        description="For every log entry without an inclusion proof (cosign's legacy format "
        "carries only a SET) or whose proof predates the pinned checkpoints, fetch a fresh proof "
        "from Rekor, verify it, move the checkpoint store forward to its tree with a verified "
        "consistency proof, and write the completed bundle.",
    )
    fetch.add_argument("--rekor", required=True, metavar="URL", help="the Rekor server")
    fetch.add_argument("--ca-bundle", metavar="FILE", help="CA certificates for Rekor's TLS")
    add_trusted_root_option(fetch)
    fetch.add_argument("--checkpoints", type=Path, metavar="DIR", help="checkpoint store")
    fetch.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write completed bundles here (default: replace each bundle in place, atomically)",
    )
    add_registry_options(fetch)
    fetch.add_argument("--output", choices=("text", "json"), default="text")
    fetch.add_argument(
        "targets",
        nargs="+",
        metavar="BUNDLE|IMAGE",
        help="bundle files (rewritten) or images (proofs attached as a referrer)",
    )
    fetch.set_defaults(handler=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from offline.atomicfile import atomic_write
    from offline.inputs import parse_json_object, read_input
    from offline.sigstore.proofs import complete_bundle
    from offline.tlog.checkpoint_store import CheckpointStore
    from offline.tlog.rekor_client import RekorClient
    from offline.trust.root import find_trusted_root

    trusted_root = find_trusted_root(args.trusted_root)
    if args.out is not None and not args.out.is_dir():
        raise UsageError(f"output directory {args.out} does not exist")
    bundles = [Path(t) for t in args.targets if _names_a_bundle(t)]
    images = [t for t in args.targets if not _names_a_bundle(t)]
    # Read every bundle before fetching anything: bad input fails before the store moves.
    documents = [(p, parse_json_object(read_input(p, "bundle"), str(p))) for p in bundles]
    client = RekorClient(args.rekor, ca_bundle=args.ca_bundle)
    store = CheckpointStore(args.checkpoints, trusted_root=trusted_root)
    report: list[dict[str, Any]] = []
    for source, document in documents:
        completed, updates = complete_bundle(document, client, store, trusted_root, str(source))
        target = args.out / source.name if args.out is not None else source
        atomic_write(target, (json.dumps(completed, indent=2) + "\n").encode())
        report.append(
            {
                "bundle": str(source),
                "written": str(target),
                "entries": [
                    {"logIndex": u.log_index, "action": u.action, "treeSize": u.tree_size}
                    for u in updates
                ],
            }
        )
    if images:
        report += _fetch_for_images(args, images, client, store, trusted_root)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        for item in report:
            actions = ", ".join(
                f"entry {e['logIndex']} {e['action']} (tree size {e['treeSize']})"
                for e in item["entries"]
            )
            print(f"{item['written']}: {actions or 'no log entries'}")
    return 0


def _fetch_for_images(
    args: argparse.Namespace, images: list[str], client: Any, store: Any, trusted_root: Any
) -> list[dict[str, Any]]:
    from offline.images.proofs import fetch_image_proofs
    from offline.oci.sources import Sources

    options = registry_options(args)
    report: list[dict[str, Any]] = []
    with Sources(options) as sources:
        for reference in images:
            image = sources.resolve(reference)
            for result in fetch_image_proofs(image, client, store, trusted_root):
                entries = [
                    {"logIndex": u.log_index, "action": u.action, "treeSize": u.tree_size}
                    for _, updates in result.completed
                    for u in updates
                ]
                written = f"{reference} ({result.digest})"
                if result.referrer:
                    written += f", proofs attached as referrer {result.referrer}"
                report.append({"image": reference, "written": written, "entries": entries})
    return report


def _names_a_bundle(target: str) -> bool:
    """A file, or a path to a missing .json file (reported as such, not looked up as an image)."""
    if Path(target).is_file():
        return True
    return target.endswith(".json") and ":" not in target and "@" not in target
