"""Benchmark: verify every conformance case with airgap and with the `sigstore` library.

Prints per-verification times for airgap in one process, for sigstore-python's own Verifier on
the same cases, for the `airgap verify-bundle` CLI (one process per verification, as CD scripts
call it), the CLI's start-up time, and the floor under any verifier of X.509 written in Python:
the interpreter starting and importing cryptography.x509, nothing else (`python_floor_ms`).
The CLI runs with its bytecode cached, as where the verifier is installed with pip
(PYTHONDONTWRITEBYTECODE is dropped, PYTHONPYCACHEPREFIX points into a temporary directory, and
one run warms it). The last line is one JSON object.

    .venv/bin/python -m tests.bench.verify_bundles [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.offline.sigstore.test_conformance import CASES, protocol_args


def _airgap_in_process(cases: list[Path]) -> Callable[[], None]:
    from offline.cli.main import build_parser

    parser = build_parser()
    parsed = [parser.parse_args(protocol_args(c, by_digest=False)) for c in cases]

    def run_all() -> None:
        for args in parsed:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
                args.handler(args)

    return run_all


def _sigstore_library(cases: list[Path]) -> Callable[[], None]:
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    jobs = []
    for case in cases:
        args = protocol_args(case, by_digest=False)
        opt = dict(zip(args[1:-1:2], args[2:-1:2], strict=False))
        artifact = Path(args[-1]).read_bytes()
        bundle_json = Path(opt["--bundle"]).read_bytes()
        verifier = Verifier(trusted_root=TrustedRoot.from_file(opt["--trusted-root"]))
        policy = Identity(
            identity=opt["--certificate-identity"], issuer=opt["--certificate-oidc-issuer"]
        )
        jobs.append((bundle_json, artifact, verifier, policy))

    def run_all() -> None:
        for bundle_json, artifact, verifier, policy in jobs:
            # Parsing is part of a verification, for both tools.
            with contextlib.suppress(Exception):
                bundle = Bundle.from_json(bundle_json)
                if bundle._dsse_envelope is not None:
                    verifier.verify_dsse(bundle, policy)
                else:
                    verifier.verify_artifact(artifact, bundle, policy)

    return run_all


def _best_ms_per_item(run_all: Callable[[], None], items: int, rounds: int) -> float:
    run_all()  # warm caches and lazy imports
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run_all()
        times.append(time.perf_counter() - start)
    return min(times) * 1000 / items


def _cli_ms(argv_list: list[list[str]], env: dict[str, str]) -> float:
    subprocess.run(argv_list[0], capture_output=True, check=False, env=env)  # warms the bytecode
    times = []
    for argv in argv_list:
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()

    # Keyless cases are what both tools can verify; managed-key bundles are airgap-only.
    keyless = [c for c in CASES if not (c / "key.pub").exists()]
    airgap_ms = _best_ms_per_item(_airgap_in_process(keyless), len(keyless), opts.rounds)
    sigstore_ms = _best_ms_per_item(_sigstore_library(keyless), len(keyless), opts.rounds)
    all_ms = _best_ms_per_item(_airgap_in_process(CASES), len(CASES), opts.rounds)

    airgap = [sys.executable, "-m", "offline.cli"]
    with tempfile.TemporaryDirectory(prefix="airgap-bench-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        cli_ms = _cli_ms([[*airgap, *protocol_args(c, by_digest=False)] for c in CASES], env)
        startup_ms = _cli_ms([[*airgap, "--help"]] * 10, env)
        floor_ms = _cli_ms([[sys.executable, "-c", "import cryptography.x509"]] * 10, env)

    print(f"cases: {len(CASES)} ({len(keyless)} keyless, compared with sigstore-python)")
    print(f"airgap, one process:      {airgap_ms:8.2f} ms per verification (keyless cases)")
    print(f"sigstore-python Verifier: {sigstore_ms:8.2f} ms per verification (keyless cases)")
    print(f"ratio airgap/sigstore:    {airgap_ms / sigstore_ms:8.2f}")
    print(f"airgap, all cases:        {all_ms:8.2f} ms per verification")
    print(f"airgap CLI, per process:  {cli_ms:8.1f} ms per verification")
    print(f"airgap CLI start-up:      {startup_ms:8.1f} ms (airgap --help)")
    print(f"python + cryptography:    {floor_ms:8.1f} ms (import cryptography.x509, the floor)")
    print(
        json.dumps(
            {
                "airgap_ms_per_verify": round(airgap_ms, 3),
                "sigstore_ms_per_verify": round(sigstore_ms, 3),
                "cli_ms_per_verify": round(cli_ms, 1),
                "cli_startup_ms": round(startup_ms, 1),
                "python_floor_ms": round(floor_ms, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
