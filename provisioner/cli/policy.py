"""`airgap policy generate`: admission policies from the policy file `airgap verify` uses.

    airgap policy generate --site site.yaml --policy images.yaml --trust REPO
                           [--enforce] [--tuf mirror|remote] [-o DIR] [--output json]

The wiring only: the work lives in provisioner/admission.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="admission policies (policy-controller, Kyverno) from an airgap policy file",
    )
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    sub.required = True
    generate = sub.add_parser(
        "generate",
        help="write policy-controller and Kyverno policies for the site",
        description="From the policy file airgap verify uses: policy-controller's TrustRoot "
        "(the site's TUF repository) and ClusterImagePolicy objects, and a Kyverno "
        "ClusterPolicy with the site's Rekor and CT log keys and Fulcio roots. Warn/audit "
        "unless --enforce. Each rule a controller cannot express is printed as a note.",
    )
    generate.add_argument("--site", type=Path, required=True, metavar="FILE", help="site.yaml")
    generate.add_argument(
        "--policy", type=Path, required=True, metavar="FILE", help="the airgap policy file"
    )
    generate.add_argument(
        "--trust",
        type=Path,
        required=True,
        metavar="REPO",
        help="the site's TUF repository (airgap trust init; published by airgap install)",
    )
    generate.add_argument(
        "--enforce", action="store_true", help="deny what fails (default: warn and audit)"
    )
    generate.add_argument(
        "--tuf",
        choices=("mirror", "remote"),
        default="mirror",
        help="mirror: inline the repository in the TrustRoot (no network); remote: the "
        "in-cluster TUF service (follows refreshes)",
    )
    generate.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help="where the YAML files go (default: admission/ beside the site file)",
    )
    generate.add_argument("--output", choices=("text", "json"), default="text")
    generate.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from provisioner.admission.generate import GenerateRequest, generate, write_files

    request = GenerateRequest(args.site, args.policy, args.trust, args.enforce, args.tuf)
    files = generate(request)
    out = args.out or args.site.parent / "admission"
    written = write_files(files, out)
    if args.output == "json":
        summary = {
            "enforce": args.enforce,
            "files": {controller: str(path) for controller, path in written.items()},
            "objects": {
                g.controller: [f"{o['kind']}/{o['metadata']['name']}" for o in g.objects]
                for g in files.controllers
            },
            "notes": [note.to_json() for note in files.notes],
        }
        print(json.dumps(summary, indent=2))
        return 0
    for generated in files.controllers:
        kinds = ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in generated.objects)
        print(f"{written[generated.controller]}: {kinds or 'nothing'}")
    for note in files.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
