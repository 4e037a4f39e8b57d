"""`airgap verify-bundle`: the Sigstore client conformance protocol, plus checkpoint pinning.

    airgap verify-bundle --bundle FILE (--certificate-identity ID --certificate-oidc-issuer URL
        | --key PEM) [--trusted-root FILE] [--checkpoints DIR] [--pinning require|warn|off]
        [--witness-policy FILE] (ARTIFACT_PATH | sha256:HEX)

Exit 0 when the bundle verifies, 1 when it does not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.cli.options import add_trusted_root_option
from offline.errors import UsageError

if TYPE_CHECKING:
    from offline.sigstore.verify import SignerPolicy

PINNING_MODES = ("require", "warn", "off")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify-bundle",
        help="verify a Sigstore bundle for an artifact, offline",
        description="Verify a Sigstore bundle (v0.1-v0.3) for a file or a sha256 digest, with no "
        "network. Log entries must be included in checkpoints pinned in the store when the "
        "store knows the log.",
    )
    parser.add_argument("--bundle", required=True, type=Path, help="the bundle JSON file")
    parser.add_argument("--certificate-identity", help="expected signer identity (exact SAN)")
    parser.add_argument("--certificate-oidc-issuer", help="expected OIDC issuer (exact)")
    parser.add_argument("--key", type=Path, help="public key (PEM) for key-signed bundles")
    add_trusted_root_option(parser)
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="checkpoint store directory (default: $AIRGAP_CHECKPOINTS, else airgap's data dir)",
    )
    parser.add_argument(
        "--pinning",
        choices=PINNING_MODES,
        help="what an entry not covered by a pinned checkpoint does (default: require when the "
        "store knows the entry's log, otherwise off)",
    )
    parser.add_argument(
        "--witness-policy",
        type=Path,
        help="C2SP tlog-policy file: witness cosignatures every checkpoint must carry",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("artifact", help="the artifact file, or sha256:<hex digest>")
    parser.set_defaults(handler=run)


def _policy(args: argparse.Namespace) -> SignerPolicy:
    from offline.sigstore.verify import IdentityPolicy, KeyPolicy
    from offline.trust.keys import load_public_key_file

    if args.key is not None:
        if args.certificate_identity or args.certificate_oidc_issuer:
            raise UsageError("give either --key or --certificate-identity/-oidc-issuer, not both")
        return KeyPolicy(load_public_key_file(args.key))
    if not (args.certificate_identity and args.certificate_oidc_issuer):
        raise UsageError(
            "say who must have signed: --certificate-identity and --certificate-oidc-issuer, "
            "or --key"
        )
    return IdentityPolicy(args.certificate_identity, args.certificate_oidc_issuer)


def run(args: argparse.Namespace) -> int:
    from offline.sigstore.model import load_bundle
    from offline.sigstore.verify import Artifact
    from offline.verifier import Verifier

    policy = _policy(args)
    verifier = Verifier.open(
        trusted_root=args.trusted_root,
        checkpoints=args.checkpoints,
        witness_policy=args.witness_policy,
        pinning=args.pinning,
    )
    bundle = load_bundle(args.bundle)
    artifact = Artifact.from_argument(args.artifact)
    result = verifier.verify_artifact(bundle, artifact, policy)

    if args.output == "json":
        print(
            json.dumps(
                {
                    "verified": True,
                    "bundle": str(args.bundle),
                    "artifact": artifact.describe(),
                    "signer": result.signer,
                    "entries": [
                        {
                            "log": e.log.base_url,
                            "logIndex": e.log_index,
                            "checkpoint": (
                                {"origin": e.checkpoint.origin, "size": e.checkpoint.size}
                                if e.checkpoint
                                else None
                            ),
                        }
                        for e in result.entries
                    ],
                    "pinning": [p.as_dict() for p in result.pins],
                },
                indent=2,
            )
        )
    else:
        for warning in result.warnings:
            print(f"airgap: warning: {warning}", file=sys.stderr)
        print(f"verified: {args.bundle} for {artifact.describe()}")
        print(f"  signer: {result.signer}")
        for pin in result.pins:
            print(f"  {pin.status}: {pin.message}")
    return 0
