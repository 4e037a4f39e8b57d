"""`airgap nodes apply` and `airgap nodes status`: the site's trust on every node.

    airgap nodes apply --site site.yaml [--trust REPO] [--trust-dir DIR] [--timeout S]
                       [--kubeconfig F] [--context C] [--output json]
    airgap nodes status --site site.yaml [--kubeconfig F] [--context C] [--output json]

The wiring only: the work lives in provisioner/nodes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from provisioner.cli.install import Progress


def register(commands: Any) -> None:
    nodes = commands.add_parser(
        "nodes",
        help="trust on every node: the site's trust files and registry configuration",
        description="A DaemonSet writes the site's public trust material (trusted root, TUF "
        "root, keys, certificate chains) and containerd's configuration for the internal "
        "registry onto every node.",
    )
    actions = nodes.add_subparsers(dest="nodes_command", required=True)
    apply = actions.add_parser(
        "apply",
        help="apply the DaemonSet and wait until every node holds the site's trust",
        description="Reads the trust directory `airgap install` wrote; a change rolls out to "
        "every node, an unchanged apply restarts nothing.",
    )
    _common(apply)
    apply.add_argument(
        "--trust",
        type=Path,
        metavar="REPO",
        help="the site's TUF repository (`airgap trust init`): its published root.json goes "
        "to every node",
    )
    apply.add_argument(
        "--trust-dir",
        type=Path,
        metavar="DIR",
        help="the trust files `airgap install` wrote (default: trust/ beside the site file)",
    )
    apply.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="seconds to wait (300)"
    )
    apply.set_defaults(handler=run_apply)
    status = actions.add_parser(
        "status",
        help="per node, the trust version it holds and when it was written; exit 1 if any "
        "node is behind",
    )
    _common(status)
    status.set_defaults(handler=run_status)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", type=Path, required=True, metavar="FILE", help="site.yaml")
    parser.add_argument("--kubeconfig", type=Path, metavar="FILE")
    parser.add_argument("--context", metavar="NAME")
    parser.add_argument("--output", choices=("text", "json"), default="text")


def run_apply(args: argparse.Namespace) -> int:
    from provisioner.nodes.apply import apply_nodes, prepare_nodes
    from provisioner.stack.install import Step
    from provisioner.stack.kube import Kube
    from provisioner.stack.mapping import load_mapping
    from provisioner.stack.site import load_site

    site = load_site(args.site)
    objects = prepare_nodes(site, load_mapping(site.registry.mapping), args.trust_dir, args.trust)
    kube = Kube.from_kubeconfig(args.kubeconfig, args.context)
    progress = Progress(args.output)
    steps: list[Step] = []

    def record(subject: str, action: str, detail: str, seconds: float) -> None:
        step = Step("nodes", subject, action, detail, seconds)
        steps.append(step)
        progress.step(step)

    with progress.shown():
        progress.component("nodes")
        apply_nodes(site, kube, objects, timeout=args.timeout, record=record)
    changed = any(s.action not in ("unchanged", "ready") for s in steps)
    if args.output == "json":
        summary = {
            "version": objects.version,
            "changed": changed,
            "steps": [s.to_json() for s in steps],
        }
        print(json.dumps(summary, indent=2))
    else:
        state = "changed" if changed else "unchanged"
        print(f"every node holds trust version {objects.version[:12]} ({state})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from provisioner.nodes.status import nodes_status
    from provisioner.stack.kube import Kube
    from provisioner.stack.site import load_site

    site = load_site(args.site)
    status = nodes_status(site, Kube.from_kubeconfig(args.kubeconfig, args.context))
    if args.output == "json":
        print(json.dumps(status.to_json(), indent=2))
    else:
        applied = status.applied[:12] if status.applied else "not applied"
        print(f"applied trust version: {applied}")
        for node in status.nodes:
            held = node.version[:12] if node.version else "-"
            state = "current" if node.current else "BEHIND"
            written = f"written {node.written}" if node.written else ""
            problem = f"  ({node.problem})" if node.problem else ""
            print(f"{node.node:<24} {state:<7} {held:<12} {written}{problem}")
        if status.behind:
            print(f"{len(status.behind)} of {len(status.nodes)} nodes behind: airgap nodes apply")
        elif not status.nodes:
            print("no Linux node found")
    return 0 if status.ok else 1
