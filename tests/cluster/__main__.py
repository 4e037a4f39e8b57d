"""The test cluster for a person trying airgap by hand (root needed):

    .venv/bin/python -m tests.cluster up            # start it; runs until Ctrl-C, then removes it
    .venv/bin/python -m tests.cluster run -- kubectl get pods -A     # in another terminal

    .venv/bin/python -m tests.cluster up --stack DIR   # also carry the Sigstore stack across
        # the gap into it (bundle create, bundle import) and write DIR/site/site.yaml and a
        # TUF repository DIR/trust for `airgap install`

`up` writes where the running cluster is to /run/airgap-test-cluster.json (or
$AIRGAP_TEST_CLUSTER); `run` enters its
namespaces through the same guard the tests use, with kubectl, helm and crane configured for
it (KUBECONFIG, registry credentials and CA), and exits with the command's status.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from tests.cluster.fixtures import stop_and_check
from tests.cluster.network import GuardRefused, NodeNamespace, reap_abandoned
from tests.cluster.node import Cluster

STATE_FILE = Path(os.environ.get("AIRGAP_TEST_CLUSTER", "/run/airgap-test-cluster.json"))


def describe(cluster: Cluster) -> dict[str, object]:
    """What `run` needs to find a running cluster from another process."""
    assert cluster.namespace.anchor is not None
    return {
        "name": cluster.name,
        "state": str(cluster.state),
        "anchor": cluster.namespace.anchor.pid,
        "env": cluster.env,
        "registry": cluster.registry,
        "images": cluster.images,
    }


def up(stack: Path | None = None) -> int:
    if STATE_FILE.exists():
        print(f"a test cluster is already described in {STATE_FILE}", file=sys.stderr)
        return 2
    reap_abandoned()
    cluster = Cluster(f"airgap{os.getpid()}try", Path(tempfile.mkdtemp(prefix="airgap-cluster-")))
    try:
        cluster.start()
        STATE_FILE.write_text(json.dumps(describe(cluster), indent=2))
        print(f"cluster {cluster.name} is up (node Ready at {cluster.timings['node Ready']} s)")
        print(f"internal registry: {cluster.registry} (CA {cluster.pki.ca})")
        print(f"run commands in it: {sys.executable} -m tests.cluster run -- kubectl get pods -A")
        if stack is not None:
            carry_for_install(cluster, stack)
        print("Ctrl-C stops it and removes everything it made.", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        STATE_FILE.unlink(missing_ok=True)
        stop_and_check(cluster)
        shutil.rmtree(cluster.state, ignore_errors=True)
        print("cluster stopped; nothing left behind")
    return 0


def carry_for_install(cluster: Cluster, directory: Path) -> None:
    """The Sigstore stack carried into the cluster the way an operator carries it, a site file
    for it, and a TUF repository whose keys stay here: what `airgap install` needs."""
    import subprocess

    from tests.cluster.carried_stack import prepare_carried_stack

    directory = directory.resolve()
    print(f"carrying the Sigstore stack across the gap into {directory} ...", flush=True)
    carried = prepare_carried_stack(cluster, directory)
    trust = directory / "trust"
    if not trust.exists():
        subprocess.run(
            [sys.executable, "-m", "provisioner.cli", "trust", "init", "--dir", str(trust)],
            check=True,
        )
    print(f"site: {carried.site}; install the stack with:")
    print(
        f"  {sys.executable} -m tests.cluster run -- {sys.executable} -m provisioner.cli "
        f"install --site {carried.site} --trust {trust}",
        flush=True,
    )


def run(command: list[str]) -> int:
    try:
        described = json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        print("no test cluster is running: start one with `-m tests.cluster up`", file=sys.stderr)
        return 2
    namespace = NodeNamespace(
        described["name"], Path(described["state"]), attached_anchor=described["anchor"]
    )
    try:
        argv = namespace.enter(command)
    except GuardRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    os.execvpe(argv[0], argv, {**os.environ, **described["env"]})


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    starter = sub.add_parser("up", help="start the test cluster; Ctrl-C stops it")
    starter.add_argument(
        "--stack",
        type=Path,
        metavar="DIR",
        help="also carry the Sigstore stack into it and write DIR/site/site.yaml for install",
    )
    runner = sub.add_parser("run", help="run a command inside the running test cluster")
    runner.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    args = parser.parse_args()
    if args.command == "up":
        # Ctrl-C (even when started where SIGINT is ignored) and SIGTERM both stop it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return up(args.stack)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("run: no command given")
    return run(command)


if __name__ == "__main__":
    sys.exit(main())
