"""`airgap checkpoint`: pin signed checkpoints, list, export and import the checkpoint store.

    airgap checkpoint add [FILE|-] [--proof FILE] [--trusted-root F] [--witness-policy F]
    airgap checkpoint fetch --rekor URL [--trusted-root F] [--witness-policy F]
    airgap checkpoint list
    airgap checkpoint export OUT|-
    airgap checkpoint import FILE [--trusted-root F] [--witness-policy F]

All take --checkpoints DIR; add, list and import take --output text|json.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.cli.options import add_trusted_root_option
from offline.errors import UsageError, VerificationFailure

if TYPE_CHECKING:
    from offline.tlog.checkpoint import Checkpoint
    from offline.tlog.checkpoint_store import CheckpointStore
    from offline.tlog.rekor_json import ConsistencyProofInput
    from offline.tlog.witness import WitnessPolicy
    from offline.trust.root import LogInstance, TrustedRoot

SubParsers = argparse._SubParsersAction  # the type add_subparsers() returns


def _common(parser: argparse.ArgumentParser, output: bool = True) -> None:
    parser.add_argument(
        "--checkpoints",
        type=Path,
        metavar="DIR",
        help="checkpoint store directory (default: $AIRGAP_CHECKPOINTS, else airgap's data dir)",
    )
    if output:
        parser.add_argument("--output", choices=("text", "json"), default="text")


def _trust_options(parser: argparse.ArgumentParser) -> None:
    add_trusted_root_option(parser)
    parser.add_argument(
        "--witness-policy",
        type=Path,
        metavar="FILE",
        help="C2SP tlog-policy file: witness cosignatures every checkpoint must carry",
    )


def register(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    checkpoint = subparsers.add_parser(
        "checkpoint",
        help="pin signed log checkpoints for offline verification",
        description="Keep signature-checked, mutually consistent log checkpoints that bundle "
        "entries are verified against.",
    )
    commands = checkpoint.add_subparsers(dest="checkpoint_command", metavar="SUBCOMMAND")
    commands.required = True

    add = commands.add_parser(
        "add",
        help="verify and pin a checkpoint",
        description="Verify a checkpoint against the trusted root and pin it. A newer checkpoint "
        "needs a consistency proof from the latest pinned one; an older one needs a proof to the "
        "next pinned one.",
    )
    add.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="a checkpoint note, or the JSON of Rekor's GET /api/v1/log (default: stdin)",
    )
    add.add_argument(
        "--proof",
        type=Path,
        metavar="FILE",
        help="consistency proof: a JSON list of hashes, or the JSON of GET /api/v1/log/proof",
    )
    _trust_options(add)
    _common(add)
    add.set_defaults(handler=run_add)

    fetch = commands.add_parser(
        "fetch",
        help="pin the signed tree heads a reachable Rekor serves, proving consistency",
        description="Read the log's signed tree heads (GET /api/v1/log), verify them with the "
        "trusted root, fetch and verify the consistency proof from the latest pinned checkpoint "
        "of each, and pin them. The first checkpoint of a log is pinned on first use.",
    )
    fetch.add_argument("--rekor", required=True, metavar="URL", help="the Rekor server")
    fetch.add_argument("--ca-bundle", metavar="FILE", help="CA certificates for Rekor's TLS")
    _trust_options(fetch)
    _common(fetch)
    fetch.set_defaults(handler=run_fetch)

    listing = commands.add_parser("list", help="list pinned logs")
    _trust_options(listing)
    _common(listing)
    listing.set_defaults(handler=run_list)

    export = commands.add_parser("export", help="write the whole store to one JSON file")
    export.add_argument("out", metavar="OUT", help="output file, or - for stdout")
    _trust_options(export)
    _common(export, output=False)
    export.set_defaults(handler=run_export)

    imp = commands.add_parser(
        "import",
        help="merge an exported store, re-verifying every signature and proof",
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="a file from `checkpoint export`")
    _trust_options(imp)
    _common(imp)
    imp.set_defaults(handler=run_import)


def _read(name: str | Path, what: str) -> bytes:
    from offline.inputs import read_input

    return read_input(name, what, stdin=True)


def _store(args: argparse.Namespace, trusted_root: TrustedRoot | None) -> CheckpointStore:
    """The store; with a trusted root, every state read is re-verified against it."""
    from offline.tlog.checkpoint_store import CheckpointStore

    return CheckpointStore(args.checkpoints, trusted_root=trusted_root)


def _optional_trusted_root(args: argparse.Namespace) -> TrustedRoot | None:
    from offline.trust.root import find_optional_trusted_root

    return find_optional_trusted_root(args.trusted_root)


def _trusted_root(args: argparse.Namespace) -> TrustedRoot:
    from offline.trust.root import find_trusted_root

    return find_trusted_root(args.trusted_root)


def _witness_policy(args: argparse.Namespace) -> WitnessPolicy | None:
    from offline.tlog.witness import load_witness_policy

    return load_witness_policy(args.witness_policy) if args.witness_policy else None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _proof_target(
    store: CheckpointStore,
    verified: list[tuple[Checkpoint, LogInstance]],
    proof: ConsistencyProofInput,
    source: str,
) -> tuple[Checkpoint, tuple[int, int]]:
    """The one checkpoint in the input the consistency proof is for, and the sizes the proof
    must link (read now: if another run moves the store before the add, the add says so)."""
    needing = [
        (cp, log) for cp, log in verified if store.proof_endpoints(log.log_id, cp.origin, cp.size)
    ]
    if not needing:
        raise UsageError(
            f"{source}: no checkpoint in the input needs a consistency proof (each is already "
            "pinned, or the first for its log); leave out --proof"
        )
    if len(needing) > 1:
        raise UsageError(
            f"{source}: {len(needing)} checkpoints in the input need a consistency proof; "
            "add them one at a time"
        )
    target, log = needing[0]
    endpoints = store.proof_endpoints(log.log_id, target.origin, target.size)
    assert endpoints is not None
    from_size, to_size = endpoints
    expected = (
        target.root_hash
        if to_size == target.size
        else store.root_at(log.log_id, target.origin, to_size)
    )
    if proof.root_hash is not None and proof.root_hash != expected:
        from offline.tlog.checkpoint_store import StaleProofError

        # A proof for other sizes (fetched before the store moved, or for another checkpoint)
        # is a wrong input, not a lying log: no evidence is kept.
        raise StaleProofError(
            f"{source}: the proof ends at root {proof.root_hash.hex()[:16]}…, but log "
            f"{target.origin} now needs a proof from size {from_size} to {to_size}, ending at "
            f"{(expected or b'').hex()[:16]}… (did the store move since it was fetched?); fetch "
            "the proof for those sizes"
        )
    return target, endpoints


def run_add(args: argparse.Namespace) -> int:
    from offline.tlog.checkpoint import find_log_for_checkpoint, parse_checkpoint
    from offline.tlog.rekor_json import parse_consistency_proof, parse_tree_heads

    source = "stdin" if args.file == "-" else str(args.file)
    heads = parse_tree_heads(_read(args.file, "checkpoint file"), source)
    proof = None
    if args.proof is not None:
        proof = parse_consistency_proof(_read(args.proof, "proof file"), str(args.proof))
    trusted_root = _trusted_root(args)
    policy = _witness_policy(args)
    store = _store(args, trusted_root)

    verified: list[tuple[Checkpoint, LogInstance]] = []
    for head in heads:
        checkpoint = parse_checkpoint(head.note)
        claimed = (head.claimed_size, head.claimed_root)
        if claimed[0] not in (None, checkpoint.size) or claimed[1] not in (
            None,
            checkpoint.root_hash,
        ):
            raise VerificationFailure(
                f"{source}: treeSize/rootHash disagree with the signed {checkpoint.describe()}"
            )
        verified.append(find_log_for_checkpoint(checkpoint, trusted_root, policy))
    target = _proof_target(store, verified, proof, source) if proof is not None else None

    results = []
    for checkpoint, log in verified:
        if proof is not None and target is not None and checkpoint is target[0]:
            result = store.add(checkpoint, log, proof.hashes, proof_sizes=target[1])
        else:
            result = store.add(checkpoint, log)
        results.append((result, checkpoint, log))

    if args.output == "json":
        _print_json(
            [
                {
                    "origin": r.origin,
                    "size": r.size,
                    "root": r.root.hex(),
                    "outcome": r.outcome,
                    "previous_latest_size": r.previous_latest,
                    "log": log.base_url,
                    "cosignatures": [
                        {"witness": c.witness, "key_name": c.key_name, "timestamp": c.timestamp}
                        for c in cp.cosignatures
                    ],
                }
                for r, cp, log in results
            ]
        )
    else:
        for r, _, _ in results:
            print(f"{r.outcome}: {r.origin} at size {r.size} (root {r.root.hex()[:16]}…)")
    return 0


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(max(seconds, 0))}s"


def run_list(args: argparse.Namespace) -> int:
    trusted_root = _optional_trusted_root(args)
    store = _store(args, trusted_root)
    states = store.states()
    now = datetime.now(UTC)
    if args.output == "json":
        rows = [
            {
                "origin": s.origin,
                "log_id": s.log_id.hex(),
                "checkpoints": len(s.checkpoints),
                "anchors": len(s.anchors),
                "latest_size": s.latest.size,
                "latest_root": s.latest.root.hex(),
                "latest_added": s.latest.added.isoformat(),
                "age_seconds": int((now - s.latest.added).total_seconds()),
                "verified": trusted_root is not None
                and trusted_root.tlog_by_id(s.log_id) is not None,
            }
            for s in states
        ]
        _print_json({"store": str(store.path), "logs": rows})
        return 0
    if not states:
        print(f"no checkpoints pinned in {store.path}")
        return 0
    width = max(len("ORIGIN"), *(len(s.origin) for s in states))
    print(f"{'ORIGIN':<{width}}  CHECKPOINTS  {'LATEST SIZE':>12}  {'ROOT':<17}  AGE")
    for s in states:
        age = _age((now - s.latest.added).total_seconds())
        print(
            f"{s.origin:<{width}}  {len(s.checkpoints):>11}  {s.latest.size:>12}  "
            f"{s.latest.root.hex()[:16]}…  {age}"
        )
    if trusted_root is None:
        print("(signatures not re-checked: no trusted root; pass --trusted-root to check them)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    store = _store(args, _optional_trusted_root(args))
    if args.out == "-":
        _print_json(store.export_document())
        return 0
    count = store.export(args.out)
    print(f"exported {count} log(s) from {store.path} to {args.out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    trusted_root = _trusted_root(args)
    policy = _witness_policy(args)
    store = _store(args, trusted_root)
    results = store.import_(args.file, trusted_root, policy)
    if args.output == "json":
        _print_json(
            [
                {
                    "origin": r.origin,
                    "checkpoints_added": r.checkpoints_added,
                    "anchors_added": r.anchors_added,
                    "latest_size": r.latest_size,
                }
                for r in results
            ]
        )
    else:
        for r in results:
            print(
                f"{r.origin}: {r.checkpoints_added} checkpoint(s) and {r.anchors_added} anchor(s) "
                f"added, latest size {r.latest_size}"
            )
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from offline.tlog.checkpoint_sync import sync_from_rekor
    from offline.tlog.rekor_client import RekorClient

    client = RekorClient(args.rekor, ca_bundle=args.ca_bundle)
    trusted_root = _trusted_root(args)
    store = _store(args, trusted_root)
    results = sync_from_rekor(client, store, trusted_root, _witness_policy(args))
    if args.output == "json":
        _print_json(
            [
                {
                    "origin": r.added.origin,
                    "size": r.added.size,
                    "root": r.added.root.hex(),
                    "outcome": r.added.outcome,
                    "first_use": r.first_use,
                    "previous_latest_size": r.added.previous_latest,
                    "log": r.log.base_url,
                }
                for r in results
            ]
        )
        return 0
    for r in results:
        how = (
            "pinned on first use"
            if r.first_use
            else (
                f"consistent with size {r.added.previous_latest}"
                if r.added.outcome == "added"
                else "already pinned"
            )
        )
        print(f"{r.added.outcome}: {r.added.origin} at size {r.added.size} ({how})")
    return 0
