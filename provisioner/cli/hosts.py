"""`airgap hosts`: hosts outside the cluster, through the playbooks of playbooks/.

    airgap hosts apply --inventory INV --site site.yaml [--playbook cd-host|node-prep] [--check]
                       [--bundle DIR --key PUB | --wheelhouse DIR] [--trust REPO]
                       [--trust-dir DIR] [--checkpoints DIR] [--known-hosts FILE]
                       [--limit PATTERN] [--output json]
    airgap hosts wheelhouse -o OUT [--source DIR] [--find-links DIR] [--no-index]

The wiring, the progress and the summary only: the work lives in provisioner/hosts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline.errors import UsageError
from provisioner.hosts.playbooks import PLAYBOOKS

if TYPE_CHECKING:
    from provisioner.hosts.material import Wheelhouse
    from provisioner.hosts.run import RunResult


def register(commands: Any) -> None:
    hosts = commands.add_parser(
        "hosts",
        help="CD hosts and nodes outside the cluster: the verifier and the site's trust",
        description="Run airgap's Ansible playbooks (ansible-core builtin modules only) over "
        "OpenSSH, host keys always checked.",
    )
    sub = hosts.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND")
    sub.required = True

    apply = sub.add_parser(
        "apply",
        help="install the verifier and trust on CD hosts (cd-host), or prepare nodes (node-prep)",
        description="cd-host: the verifier from the carried wheelhouse (no index), the trusted "
        "root, the TUF root and a checkpoint store seed in /etc/sigstore, /usr/local/bin/airgap "
        "set up to use them. node-prep: /etc/sigstore and containerd's hosts.toml and CA for "
        "the internal registry. A rerun changes nothing that did not change. Exit 1 when a "
        "host failed or was unreachable.",
    )
    apply.add_argument("--inventory", type=Path, required=True, metavar="INV")
    apply.add_argument(
        "--playbook", default="cd-host", metavar="|".join(PLAYBOOKS), help="(default cd-host)"
    )
    apply.add_argument(
        "--check", action="store_true", help="report what would change, change nothing"
    )
    apply.add_argument(
        "--site", type=Path, required=True, metavar="FILE", help="site.yaml: the registry and CA"
    )
    apply.add_argument(
        "--trust-dir",
        type=Path,
        metavar="DIR",
        help="trusted_root.json and the public keys (default: trust/ beside the site file, as "
        "airgap install writes it)",
    )
    apply.add_argument(
        "--trust",
        type=Path,
        metavar="REPO",
        help="the site's TUF repository (airgap trust init): its published root goes to the hosts "
        "(default: root.json in the trust dir, if there is one)",
    )
    apply.add_argument(
        "--checkpoints",
        type=Path,
        metavar="DIR|FILE",
        help="what seeds the hosts' checkpoint stores: a store, or an `airgap checkpoint "
        "export` (default: checkpoints.json in the trust dir if there is one, else "
        "$AIRGAP_CHECKPOINTS, else airgap's data dir)",
    )
    apply.add_argument(
        "--bundle", type=Path, metavar="DIR", help="a bundle carrying files/wheelhouse/ (cd-host)"
    )
    apply.add_argument("--key", type=Path, metavar="PUB", help="the bundle's public key")
    apply.add_argument(
        "--wheelhouse", type=Path, metavar="DIR", help="the verifier's wheels, already checked"
    )
    apply.add_argument(
        "--known-hosts",
        type=Path,
        metavar="FILE",
        help="the hosts' SSH keys (also: host variable airgap_ssh_host_keys); default: "
        "OpenSSH's known_hosts files",
    )
    apply.add_argument("--limit", metavar="PATTERN", help="only these inventory hosts")
    apply.add_argument("--output", choices=("text", "json"), default="text")
    apply.set_defaults(handler=run_apply)

    wheelhouse = sub.add_parser(
        "wheelhouse",
        help="build the verifier's wheels and a bundle spec that carries them",
        description="pip wheel airgap (the verifier's dependencies only) into OUT/wheelhouse, "
        "and write OUT/verifier-bundle.yaml for airgap bundle create.",
    )
    wheelhouse.add_argument("-o", "--out", type=Path, required=True, metavar="OUT")
    wheelhouse.add_argument("--source", type=Path, metavar="DIR", help="airgap's source tree")
    wheelhouse.add_argument(
        "--find-links", action="append", default=[], metavar="DIR", help="passed to pip"
    )
    wheelhouse.add_argument("--no-index", action="store_true", help="passed to pip")
    wheelhouse.set_defaults(handler=run_wheelhouse)


def _dependencies() -> None:
    try:
        import ansible_runner  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"airgap hosts needs the operator's dependencies ({exc.name} is missing): "
            "pip install 'airgap[provisioner]'"
        ) from None


def _wheelhouse(args: argparse.Namespace) -> Wheelhouse | None:
    from provisioner.hosts.wheelhouse import bundle_wheelhouse, find_wheelhouse

    if args.bundle is not None and args.wheelhouse is not None:
        raise UsageError("give --bundle or --wheelhouse, not both")
    if args.bundle is not None:
        if args.key is None:
            raise UsageError("--bundle needs --key: the bundle is verified before it is used")
        return bundle_wheelhouse(args.bundle, args.key)
    if args.wheelhouse is not None:
        return find_wheelhouse(args.wheelhouse)
    if args.playbook == "cd-host":
        raise UsageError(
            "cd-host installs the verifier: give --bundle DIR --key PUB or --wheelhouse"
        )
    return None


def run_apply(args: argparse.Namespace) -> int:
    _dependencies()
    from provisioner.hosts.inventory import read_inventory
    from provisioner.hosts.material import gather, published_tuf_root
    from provisioner.hosts.playbooks import playbook_path
    from provisioner.hosts.run import assemble_known_hosts, private_dir, run_playbook
    from provisioner.stack.site import load_site

    playbook = playbook_path(args.playbook)
    site = load_site(args.site)
    trust_dir = args.trust_dir or site.path.parent / "trust"
    tuf_root = published_tuf_root(args.trust) if args.trust is not None else None
    wheelhouse = _wheelhouse(args)
    with private_dir() as private:
        inventory = read_inventory(args.inventory, private.path)
        material = gather(site, trust_dir, tuf_root, args.checkpoints, private.path, wheelhouse)
        known_hosts = assemble_known_hosts(private, inventory, args.known_hosts)
        progress = _Progress(args.playbook, args.output)
        try:
            result = run_playbook(
                playbook,
                inventory,
                material.extravars(),
                private,
                known_hosts=known_hosts,
                check=args.check,
                limit=args.limit,
                progress=progress.update,
            )
        finally:
            progress.stop()
    if args.output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        _summary(result)
    return 0 if result.ok else 1


def _summary(result: RunResult) -> None:
    width = max(len("HOST"), *(len(name) for name in result.hosts))
    print(f"{'HOST':<{width}}  {'OK':>4}  {'CHANGED':>7}  {'FAILED':>6}  {'UNREACHABLE':>11}")
    for name, host in result.hosts.items():
        print(
            f"{name:<{width}}  {host.ok:>4}  {host.changed:>7}  {host.failed:>6}  "
            f"{host.unreachable:>11}"
        )
    for failure in result.failures:
        print(f"airgap: {failure.line()}", file=sys.stderr)
    mode = " (check mode: nothing was changed)" if result.check else ""
    if result.ok:
        done = "would change" if result.check else "changed"
        print(f"{result.playbook}: {len(result.hosts)} host(s) ok, {result.changed} {done}{mode}")
    else:
        bad = [n for n, h in result.hosts.items() if h.failed or h.unreachable] or ["the run"]
        print(f"{result.playbook}: failed on {', '.join(bad)}{mode}")


class _Progress:
    """On a terminal, a spinner with the task running and the results so far."""

    def __init__(self, playbook: str, output: str) -> None:
        from rich.console import Console

        self.playbook = playbook
        self.console = Console(stderr=True, highlight=False)
        self.status: Any = None
        self.counts: dict[str, int] = {}
        self.task = ""
        if self.console.is_terminal:
            self.status = self.console.status(f"{playbook} …")
            self.status.start()

    def update(self, what: str, host: str, task: str) -> None:
        if what == "task":
            self.task = task
        else:
            self.counts[what] = self.counts.get(what, 0) + 1
        if self.status is not None:
            seen = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            self.status.update(f"{self.playbook}: {self.task} ({seen})")

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def run_wheelhouse(args: argparse.Namespace) -> int:
    from provisioner.hosts.wheelhouse import SPEC, build_wheelhouse, default_source

    pip_args = [f"--find-links={d}" for d in args.find_links]
    if args.no_index:
        pip_args.append("--no-index")
    source = args.source or default_source()
    wheelhouse = build_wheelhouse(args.out, source, pip_args)
    count = len(list(wheelhouse.directory.glob("*.whl")))
    print(
        f"{count} wheels for airgap {wheelhouse.version} in {wheelhouse.directory}; carry them "
        f"with: airgap bundle create {args.out / SPEC} -o BUNDLE --sign-key KEY"
    )
    return 0
