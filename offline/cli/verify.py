"""`airgap verify IMAGE...`: verify container images offline, the way a CD script needs it.

    airgap verify [--policy FILE | --key K | --certificate-identity[-regexp] I
                   --certificate-oidc-issuer[-regexp] U] [--trusted-root F] [--checkpoints DIR]
                   [--pinning require|warn|off] [--insecure-ignore-tlog] [--images-from FILE]
                   [--registry-ca FILE] [--allow-http-registry HOST] [--output text|json] IMAGE...

Images are `registry/repo[:tag][@digest]` or `oci:DIR[:REF]`. Exit 0 when every image
verifies, 1 when any fails its policy, 2 for bad input or an unreachable registry.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.cli.options import (
    add_registry_options,
    add_trusted_root_option,
    flag_remedy,
    registry_options,
)
from offline.errors import AirgapError, UsageError

if TYPE_CHECKING:
    from offline.images.verify import ImageResult
    from offline.policy.policy_file import ImagePolicy


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify container images' signatures and attestations, offline",
        description="Verify every signature and attestation attached to each image (cosign "
        "tags, OCI referrers, Sigstore bundles) against a trusted root and pinned checkpoints, "
        "with no network beyond the registry (none at all for oci: layouts).",
    )
    signers = parser.add_argument_group("who must have signed (without --policy)")
    signers.add_argument("--key", type=Path, help="public key (PEM) of a key signer")
    signers.add_argument("--certificate-identity", help="signer identity (exact)")
    signers.add_argument("--certificate-identity-regexp", help="signer identity (regexp)")
    signers.add_argument("--certificate-oidc-issuer", help="OIDC issuer (exact)")
    signers.add_argument("--certificate-oidc-issuer-regexp", help="OIDC issuer (regexp)")
    signers.add_argument(
        "--attestation",
        action="append",
        default=[],
        metavar="TYPE",
        help="require a verified attestation of this predicate type (or cosign alias); repeatable",
    )
    parser.add_argument("--policy", type=Path, help="image policy file (YAML)")
    add_trusted_root_option(parser, note="; only --key with --insecure-ignore-tlog needs none")
    parser.add_argument("--checkpoints", type=Path, help="checkpoint store directory")
    parser.add_argument("--pinning", choices=("require", "warn", "off"))
    parser.add_argument(
        "--max-checkpoint-age", metavar="AGE", help="e.g. 7d: newest pinned checkpoint at most"
    )
    parser.add_argument("--witness-policy", type=Path, help="C2SP tlog-policy file")
    parser.add_argument(
        "--insecure-ignore-tlog",
        action="store_true",
        help="accept signatures with no transparency log entry",
    )
    parser.add_argument(
        "--images-from",
        type=Path,
        metavar="FILE",
        help="a list of images, or Kubernetes manifests whose images to verify",
    )
    add_registry_options(parser)
    parser.add_argument("--jobs", type=int, default=4, help="images verified at once (default 4)")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("images", nargs="*", metavar="IMAGE")
    parser.set_defaults(handler=run)


def _flags_policy(args: argparse.Namespace) -> ImagePolicy:
    from offline.cli.signer_flags import policy_from_flags
    from offline.policy.policy_file import parse_duration

    age = None
    if args.max_checkpoint_age:
        try:
            age = parse_duration(args.max_checkpoint_age)
        except ValueError as exc:
            raise UsageError(f"--max-checkpoint-age: {exc}") from exc
    return policy_from_flags(
        key=args.key,
        certificate_identity=args.certificate_identity,
        certificate_identity_regexp=args.certificate_identity_regexp,
        certificate_oidc_issuer=args.certificate_oidc_issuer,
        certificate_oidc_issuer_regexp=args.certificate_oidc_issuer_regexp,
        insecure_ignore_tlog=args.insecure_ignore_tlog,
        pinning=args.pinning,
        max_checkpoint_age=age,
    )


def run(args: argparse.Namespace) -> int:
    from offline.images.image_list import parse_image_list
    from offline.images.verify import ImageResult
    from offline.inputs import read_input
    from offline.oci.imageref import ImageRef, parse_reference
    from offline.oci.sources import Sources
    from offline.verifier import Verifier

    images = list(args.images)
    if args.images_from is not None:
        text = read_input(args.images_from, "image list").decode("utf-8", errors="replace")
        images += parse_image_list(text, str(args.images_from))
    if not images:
        raise UsageError("no images to verify: name them, or pass --images-from FILE")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")

    signer_flags = (
        args.key,
        args.certificate_identity,
        args.certificate_identity_regexp,
        args.certificate_oidc_issuer,
        args.certificate_oidc_issuer_regexp,
    )
    if args.policy is not None:
        if any(signer_flags):
            raise UsageError("give signers either in --policy or as flags, not both")
        from offline.policy.policy_file import load_policy_file

        policy_file = load_policy_file(args.policy)
        policies = {image: policy_file.for_image(image) for image in images}
    else:
        flags_policy = _flags_policy(args)
        policies = dict.fromkeys(images, flags_policy)

    # Without a policy that needs one (every signer a key, the log ignored), no trusted root.
    verifier = Verifier.open(
        trusted_root=args.trusted_root,
        checkpoints=args.checkpoints,
        witness_policy=args.witness_policy,
        needs_trusted_root=any(p.needs_trusted_root for p in policies.values() if p is not None),
        pinning=args.pinning,
        extra_attestations=args.attestation,
    )

    options = registry_options(args)

    def one(image: str) -> ImageResult:
        policy = policies[image]
        if policy is None:
            result = ImageResult(image)
            result.fail("policy", f"no policy in {args.policy} matches {image}")
            return result
        return verifier.verify_image(sources, image, policy)

    with Sources(options) as sources:
        references = []
        for image in images:
            with contextlib.suppress(AirgapError):  # a bad reference fails as that image's
                if isinstance(ref := parse_reference(image), ImageRef):
                    references.append(ref)
        sources.list_tags_once(references)
        if len(images) == 1:  # no thread pool to start for a CD step's one image
            results = [one(images[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                results = list(pool.map(one, images))

    if args.output == "json":
        print(
            json.dumps(
                {
                    "verified": all(r.verified for r in results),
                    "images": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    else:
        for r in results:
            if r.verified:
                summary = "; ".join(c.reason for c in r.checks if c.name.endswith("signature"))
                attested = sum(1 for c in r.checks if " attestation " in f" {c.name} ")
                extra = f", {attested} attestation(s)" if attested else ""
                shown = (
                    r.reference if r.reference.endswith(r.digest) else f"{r.reference}@{r.digest}"
                )
                print(f"OK   {shown} ({r.signed} signed{extra}): {summary}")
            else:
                print(f"FAIL {r.reference}: {r.first_failure()}{flag_remedy(r.error)}")
        for r in results:
            for c in r.checks:
                if c.ok and c.reason.startswith("warning: "):
                    print(f"airgap: {r.reference}: {c.reason}", file=sys.stderr)

    if all(r.verified for r in results):
        return 0
    if any(not r.verified and not r.environment_error for r in results):
        return 1
    return 2
