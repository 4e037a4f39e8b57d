"""Benchmark: verify many signed images offline with `airgap verify` and with `cosign verify`.

Starts the private Sigstore stack and a registry (the same classes the test fixtures use),
pushes N small images, signs each keylessly with cosign and attests an SPDX SBOM, runs
`airgap checkpoint fetch` and `airgap proofs fetch`, stops the stack, and then times, with no
Sigstore service running:

- airgap: ONE `airgap verify --images-from LIST --attestation spdxjson --pinning require`
  process for all N images (signature, SBOM attestation, both pinned to the checkpoint store);
- cosign: what CD scripts run today, one process per image and per check, in sequence:
  `cosign verify` and `cosign verify-attestation --type spdxjson` (both with our
  trusted_root.json; cosign checks the log entries' SETs/proofs but pins nothing).

The images/s figures compare like with like: every image's signature AND its SBOM attestation
(cosign: verify + verify-attestation; airgap: one run doing both). The table also shows
`cosign verify` alone. Single-image times are the median wall time of a few runs of each tool on
one image (process start-up included, as a CD step pays it). airgap runs with its bytecode
cached (PYTHONDONTWRITEBYTECODE is dropped, PYTHONPYCACHEPREFIX points into the work directory),
as it is where the verifier is installed with pip.

    .venv/bin/python -m tests.bench.verify_images [--quick] [--images N]
        [--registry referrers|docker] [--legacy]

The last line printed is one JSON object: airgap_images_per_s, cosign_images_per_s,
airgap_single_s, cosign_single_s, python_floor_s (the interpreter starting and importing
cryptography.x509, nothing else: the floor under any one-image check written in Python).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from offline.oci.store import ImageSink
from tests.oci_images import make_image, push_image
from tests.offline.images.test_verify_images import (
    SIGNER,
    Cosign,
    airgap,
    check,
    isolated_env,
    write_docker_config,
    write_predicates,
)
from tests.registries import RegistryServer, start_docker_registry, start_referrers_registry
from tests.stack import SigstoreStack

SINGLE_RUNS = 5
# The least any Python verifier of X.509 certificates pays per process: the interpreter
# starting and importing the certificate library (the floor under airgap_single_s).
PYTHON_FLOOR = [sys.executable, "-c", "import cryptography.x509"]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _push_images(server: RegistryServer, count: int) -> list[str]:
    repository = server.client().repository("bench/app")
    sink: ImageSink = repository
    references = []
    for i in range(count):
        image = make_image(random.Random(1000 + i), layers=1, layer_size=1024)
        descriptor = push_image(sink, image, f"v{i}")
        references.append(f"{server.host}/bench/app@{descriptor.digest}")
    return references


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 images instead of 100")
    parser.add_argument("--images", type=int, help="number of images (overrides --quick)")
    parser.add_argument(
        "--registry",
        choices=("referrers", "docker"),
        default="referrers",
        help="go-containerregistry's registry with the referrers API (plain HTTP), or the "
        "Debian docker-registry (TLS, htpasswd, no referrers API: cosign's fallback tag)",
    )
    parser.add_argument(
        "--legacy", action="store_true", help="sign with cosign v2 (legacy .sig/.att tags)"
    )
    parser.add_argument("--signers", type=int, default=8, help="cosign processes at once")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = parser.parse_args()
    count = opts.images or (20 if opts.quick else 100)

    work = Path(tempfile.mkdtemp(prefix="airgap-bench-images-"))
    stack = SigstoreStack(work / "stack")
    registry: RegistryServer | None = None
    try:
        _log(f"starting the Sigstore stack and a registry in {work}")
        stack.start()
        (work / "registry").mkdir()
        if opts.registry == "docker":
            registry = start_docker_registry(work / "registry")
            assert registry.ca is not None
            ca, http_hosts = registry.ca.ca_cert, frozenset[str]()
        else:
            registry = start_referrers_registry(work / "registry")
            ca, http_hosts = None, frozenset({registry.host})
        docker_config = write_docker_config(work / "docker", [registry])
        cosign = Cosign(stack, work / "home", docker_config, ca, http_hosts)
        predicates = write_predicates(work / "predicates")
        env = isolated_env(work, docker_config)
        # Bytecode cached as on a CD host where the verifier is installed (pip compiles it);
        # kept in the work directory, so the checkout gets no __pycache__.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        registry_flags = ["--registry-ca", str(ca)] if ca else []
        registry_flags += [f for h in http_hosts for f in ("--allow-http-registry", h)]
        checkpoints = work / "checkpoints"
        checkpoints.mkdir()
        trust = ["--trusted-root", str(stack.trusted_root), "--checkpoints", str(checkpoints)]

        _log(f"pushing {count} images")
        images = _push_images(registry, count)

        def sign_and_attest(image: str) -> None:
            cosign.sign(image, legacy=opts.legacy)
            cosign.attest(image, "spdxjson", predicates["spdxjson"], legacy=opts.legacy)

        _log(f"signing and attesting {count} images with cosign {'v2' if opts.legacy else 'v3'}")
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=opts.signers) as pool:
            for future in [pool.submit(sign_and_attest, image) for image in images]:
                future.result()
        signing_s = time.perf_counter() - began

        _log("airgap checkpoint fetch, airgap proofs fetch")
        rekor = ["--rekor", stack.rekor_url]
        check(airgap(["checkpoint", "fetch", *rekor, *trust], env), "checkpoint fetch")
        listing = work / "images.txt"
        listing.write_text("".join(f"{image}\n" for image in images))
        began = time.perf_counter()
        check(
            airgap(["proofs", "fetch", *rekor, *trust, *registry_flags, *images], env),
            "proofs fetch",
        )
        proofs_s = time.perf_counter() - began

        _log("stopping the Sigstore stack: everything below is offline")
        stack.stop()

        verify = ["verify", *trust, *registry_flags, "--pinning", "require"]
        verify += ["--certificate-identity", stack.identity(SIGNER)]
        verify += ["--certificate-oidc-issuer", stack.oidc_issuer, "--attestation", "spdxjson"]

        def airgap_all() -> None:
            result = airgap([*verify, "--images-from", str(listing)], env)
            check(result, "airgap verify (all images)")
            if sum(line.startswith("OK ") for line in result.stdout.splitlines()) != count:
                raise AssertionError(f"airgap verified fewer than {count} images:\n{result.stdout}")

        def cosign_one(image: str, attestation: bool) -> None:
            identity = stack.identity(SIGNER)
            result = cosign.verify(image, identity)
            check(result, f"cosign verify {image}")
            if attestation:
                result = cosign.verify(image, identity, attestation="spdxjson")
                check(result, f"cosign verify-attestation {image}")

        _log("timing airgap verify (one process, all images)")
        airgap_all()  # warm the page cache and the registry
        airgap_all_s = _timed(airgap_all)

        _log("timing cosign verify + verify-attestation (one process each, per image)")
        cosign_one(images[0], attestation=True)  # warm-up
        cosign_verify_s = 0.0
        cosign_attest_s = 0.0
        identity = stack.identity(SIGNER)
        for image in images:
            start = time.perf_counter()
            check(cosign.verify(image, identity), f"cosign verify {image}")
            cosign_verify_s += time.perf_counter() - start
            start = time.perf_counter()
            attested = cosign.verify(image, identity, attestation="spdxjson")
            check(attested, f"cosign verify-attestation {image}")
            cosign_attest_s += time.perf_counter() - start
        cosign_all_s = cosign_verify_s + cosign_attest_s

        _log("timing single images")
        airgap_single = statistics.median(
            _timed(lambda: check(airgap([*verify, images[0]], env), "airgap verify (one image)"))
            for _ in range(SINGLE_RUNS)
        )
        cosign_single = statistics.median(
            _timed(lambda: cosign_one(images[0], attestation=True)) for _ in range(SINGLE_RUNS)
        )
        cosign_single_verify = statistics.median(
            _timed(lambda: cosign_one(images[0], attestation=False)) for _ in range(SINGLE_RUNS)
        )
        python_floor = statistics.median(
            _timed(lambda: subprocess.run(PYTHON_FLOOR, env=env, check=True))
            for _ in range(SINGLE_RUNS)
        )
    finally:
        stack.close()
        if registry is not None:
            registry.stop()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)

    airgap_rate = count / airgap_all_s
    cosign_rate = count / cosign_all_s
    kind = "cosign v2, legacy tags" if opts.legacy else "cosign v3, bundles as referrers"
    where = (
        "docker-registry (fallback tag)" if opts.registry == "docker" else "referrers API registry"
    )
    rows = [
        ("airgap verify, 1 process, all images", airgap_all_s, airgap_rate),
        ("cosign verify + verify-attestation, per image", cosign_all_s, cosign_rate),
        ("cosign verify alone, per image", cosign_verify_s, count / cosign_verify_s),
    ]
    print(f"{count} images signed ({kind}) with an SPDX SBOM attestation each, on a {where}")
    print(f"setup: signing {signing_s:.1f} s, airgap proofs fetch {proofs_s:.1f} s")
    print("offline verification (stack stopped; signature + SBOM attestation per image):")
    print(f"  {'':<48} {'total s':>9} {'images/s':>10}")
    for name, total, rate in rows:
        print(f"  {name:<48} {total:>9.2f} {rate:>10.1f}")
    print(f"  {'ratio airgap/cosign (images/s)':<48} {'':>9} {airgap_rate / cosign_rate:>10.1f}")
    print(f"single image, median of {SINGLE_RUNS} (wall time, process start included):")
    print(f"  {'airgap verify (signature + SBOM)':<48} {airgap_single:>9.3f} s")
    print(f"  {'cosign verify + verify-attestation':<48} {cosign_single:>9.3f} s")
    print(f"  {'cosign verify alone':<48} {cosign_single_verify:>9.3f} s")
    print(f"  {'python, importing cryptography.x509 only':<48} {python_floor:>9.3f} s")
    print(
        json.dumps(
            {
                "airgap_images_per_s": round(airgap_rate, 2),
                "cosign_images_per_s": round(cosign_rate, 2),
                "airgap_single_s": round(airgap_single, 3),
                "cosign_single_s": round(cosign_single, 3),
                "python_floor_s": round(python_floor, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
