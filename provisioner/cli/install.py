"""`airgap install`, `airgap status` and `airgap uninstall`: the private Sigstore stack.

    airgap install --site site.yaml [--trust REPO] [--kubeconfig F] [--context C] [--dry-run]
                   [--trust-out DIR] [--timeout S] [--output json]
    airgap status --site site.yaml [--trust REPO] [--output json]
    airgap uninstall --site site.yaml [--trust REPO] [--delete-keys]

The wiring and the progress lines only: the work lives in provisioner/stack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.cli.trust import ONLINE_PASSWORD_ENV, _online_password

if TYPE_CHECKING:
    from provisioner.stack.install import Installer, Step


def register(commands: Any) -> None:
    install = commands.add_parser(
        "install",
        help="install the private Sigstore stack from the carried charts and images",
        description="Trillian, Rekor, Fulcio, the CT log (and the TSA) from the upstream "
        "charts, every image from the internal registry by digest, with keys made once by "
        "airgap; then the site's TUF repository, served in the cluster. A rerun changes "
        "nothing that did not change.",
    )
    _common(install)
    install.add_argument(
        "--dry-run", action="store_true", help="print what would be done, change nothing"
    )
    install.add_argument(
        "--trust-out",
        type=Path,
        metavar="DIR",
        help="where trusted_root.json, signing_config.v0.2.json and the public keys go "
        "(default: trust/ beside the site file)",
    )
    install.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="seconds per wait (300)"
    )
    install.set_defaults(handler=run_install)

    status = commands.add_parser(
        "status", help="each component of the stack: release, images, ready, what it serves"
    )
    _common(status)
    status.set_defaults(handler=run_status)

    uninstall = commands.add_parser(
        "uninstall", help="remove the stack's releases; the keys stay unless --delete-keys"
    )
    _common(uninstall)
    uninstall.add_argument(
        "--delete-keys",
        action="store_true",
        help="also delete the keys, tree IDs and database claim: the next install makes new "
        "ones, and every verifier's trust must be replaced",
    )
    uninstall.add_argument("--timeout", type=float, default=300.0, metavar="S")
    uninstall.set_defaults(handler=run_uninstall)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", type=Path, required=True, metavar="FILE", help="site.yaml")
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="REPO",
        help="the TUF repository of `airgap trust init` to sign and serve (online key "
        f"password from ${ONLINE_PASSWORD_ENV}); without it there is no TUF step",
    )
    parser.add_argument("--kubeconfig", type=Path, metavar="FILE")
    parser.add_argument("--context", metavar="NAME")
    parser.add_argument("--helm", metavar="PATH", help="the helm program (default: on PATH)")
    parser.add_argument("--output", choices=("text", "json"), default="text")


class Progress:
    """One line per step, with the component and the time since it started; on a terminal a
    spinner names what is being waited for."""

    def __init__(self, output: str) -> None:
        from rich.console import Console

        self.output = output
        self.console = Console(stderr=output == "json", highlight=False)
        self.live = self.console.is_terminal
        self.status: Any = None
        self.started = time.monotonic()
        self.current = ""

    def component(self, name: str) -> None:
        self.current = name
        if self.live:
            if self.status is None:
                self.status = self.console.status(f"{name} …")
                self.status.start()
            self.status.update(f"{name} …")

    def step(self, step: Step) -> None:
        elapsed = time.monotonic() - self.started
        took = f" ({step.seconds:.1f}s)" if step.seconds >= 0.1 else ""
        detail = f"  {step.detail}" if step.detail else ""
        line = f"[{elapsed:6.1f}s] {step.component:<8} {step.subject}: {step.action}{detail}{took}"
        if self.live:
            self.console.print(line, markup=False)
        else:
            print(line, file=sys.stderr if self.output == "json" else sys.stdout, flush=True)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    @contextmanager
    def shown(self) -> Iterator[None]:
        """Around the work: the spinner stops at the end, and a workload that did not become
        ready has its events and logs printed before its one-line error."""
        from provisioner.stack.kube import StepNotReady

        try:
            yield
        except StepNotReady as exc:
            self.stop()
            if exc.details:
                print(exc.details, file=sys.stderr)
            raise
        finally:
            self.stop()


def _installer(args: argparse.Namespace, progress: Progress, dry_run: bool) -> Installer:
    from provisioner.stack.install import Installer, InstallOptions
    from provisioner.stack.kube import Kube
    from provisioner.stack.releases import Releases
    from provisioner.stack.site import load_site

    site = load_site(args.site)
    kube = Kube.from_kubeconfig(args.kubeconfig, args.context)
    releases = Releases(args.helm, args.kubeconfig, args.context)
    out = getattr(args, "trust_out", None) or site.path.parent / "trust"
    options = InstallOptions(
        trust_repo=args.trust,
        online_password=_online_password(),
        out_dir=out,
        timeout=getattr(args, "timeout", 300.0),
        helm=args.helm,
        dry_run=dry_run,
    )
    return Installer(site, kube, releases, options, progress)


def run_install(args: argparse.Namespace) -> int:
    progress = Progress(args.output)
    with progress.shown():
        installer = _installer(args, progress, args.dry_run)
        result = installer.run()
    if args.dry_run:
        for component, rendered in installer.prepared_values().items():
            if args.output == "text":
                print(f"--- values of release {component} ({rendered['chart']})")
                print(json.dumps(rendered["values"], indent=2, sort_keys=True))
    summary = {
        "changed": result.changed,
        "dryRun": args.dry_run,
        "steps": [s.to_json() for s in result.steps],
        "trustFiles": result.trust_files,
    }
    if args.output == "json":
        if args.dry_run:
            summary["values"] = installer.prepared_values()
        print(json.dumps(summary, indent=2))
    elif not args.dry_run:
        state = "changed" if result.changed else "unchanged"
        print(
            f"the stack is installed and serving ({state}); trust for clients in "
            f"{Path(next(iter(result.trust_files.values()))).parent}"
        )
    return 0


def run_status(args: argparse.Namespace) -> int:
    from provisioner.stack.lifecycle import stack_status

    progress = Progress(args.output)
    installer = _installer(args, progress, dry_run=True)
    prepared = installer.prepare()
    statuses = stack_status(installer.site, installer.kube, installer.releases, prepared)
    expiry = _tuf_expiry(args)
    ok = all(s.ready for s in statuses) and (expiry is None or expiry["ok"])
    if args.output == "json":
        print(json.dumps({"ok": ok, "components": [s.to_json() for s in statuses],
                          "tuf": expiry}, indent=2))  # fmt: skip
    else:
        for s in statuses:
            state = "ready" if s.ready else "NOT READY"
            print(f"{s.component:<8} {state:<9} {s.release or 'not installed'}")
            for image in s.images:
                print(f"         image {image}")
            if s.serving:
                print(f"         serving: {s.serving}")
        if expiry is not None:
            print(f"tuf      {expiry['summary']}")
    return 0 if ok else 1


def _tuf_expiry(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.trust is None:
        return None
    from provisioner.trust.status import trust_status

    status = trust_status(args.trust)
    document: dict[str, Any] = status.to_json()
    document["summary"] = (
        "repository ok"
        if status.ok
        else "; ".join([*status.problems, *status.warnings]) + " (airgap trust refresh)"
    )
    return document


def run_uninstall(args: argparse.Namespace) -> int:
    from provisioner.stack.install import Step
    from provisioner.stack.lifecycle import uninstall

    progress = Progress(args.output)
    installer = _installer(args, progress, dry_run=True)
    steps: list[Step] = []

    def record(subject: str, action: str) -> None:
        step = Step("uninstall", subject, action)
        steps.append(step)
        progress.step(step)

    uninstall(
        installer.site,
        installer.kube,
        installer.releases,
        installer.components(),
        delete_keys=args.delete_keys,
        timeout=int(args.timeout),
        record=record,
    )
    if args.output == "json":
        print(json.dumps({"steps": [s.to_json() for s in steps]}, indent=2))
    return 0
