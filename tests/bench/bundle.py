"""Benchmark: carry signed images across the gap with `airgap bundle` and with skopeo.

Generates N images (default 50, about 2 GB in all; `--quick`: 10, about 400 MB) of random,
incompressible layers: three base layers of different sizes that every image shares, then one
or two layers of its own. They are pushed to a source registry (go-containerregistry's, with the
referrers API: plain HTTP, blobs in memory), and cosign v3 signs and attests (SPDX) each one with
a key (no Sigstore service: `--tlog-upload=false --use-signing-config=false`), so every image
has two referrers. Then, timed, each tool run as an operator runs it (process start included):

- create (registry -> directory): ONE `airgap bundle create` process for every image and its
  attachments; `skopeo copy --all --preserve-digests`, one process per image, into one OCI
  layout (blobs shared between images are written once by both); and `cp -r` + `sync` of the
  bundle directory, the ceiling for moving these bytes on this disk;
- import (directory -> registry): `airgap bundle import` into a target registry; `skopeo copy`
  from the layout, one process per image, into a second, fresh target registry. Both targets
  are the Debian docker-registry (TLS, htpasswd, blobs on disk; no referrers API, so airgap
  pushes the attachments under their fallback tags). The two run `--import-rounds` times
  (default 3), each round into two fresh registries, who goes first alternating; the figures
  are the median round of each (a shared two-core machine's timings drift by 15 %).

skopeo carries no attachments (no referrers, no `.sig`/`.att` tags) unless told to: its figures
cover less work, and the table says so. All throughputs share one basis, the unique bytes of
the source (every distinct blob of every image and attachment: layers, configs, manifests, in
MB of 10^6 bytes), so their ratios are ratios of wall time.

Then one layer of one image is replaced and the image signed again: `airgap bundle inventory`
of the airgap target and `airgap bundle create --since` it give a delta bundle, which is
imported too. Last, one image with a single 2 GiB layer (`--big-layer`; 512 MiB for `--quick`
when the disk is short), pushed to a docker-registry, goes through `airgap bundle create` and
skopeo, each in its own process, for their peak RSS (MiB, as getrusage counts it, taken by a
small launcher process so that the benchmark's own memory is not inherited into the figure).
Every airgap command runs once on a small image first, untimed, so that none of the timed runs
compiles bytecode. Correctness is checked, so no figure comes from doing nothing:
both targets hold every image by digest, the airgap target holds both attachments of each, and
after the delta it holds the changed image.

    .venv/bin/python -m tests.bench.bundle [--quick] [--images N] [--big-layer MIB]
        [--import-rounds N] [--keep]

The last line printed is one JSON object: create_mb_s, skopeo_create_mb_s, copy_mb_s,
import_mb_s, skopeo_import_mb_s, bundle_bytes, unique_blob_bytes, delta_bytes,
changed_layer_bytes, peak_rss_mb (MiB), registry_put_mb_s and registry_get_mb_s (the target
registry's own ceiling: the skopeo layout's blobs pushed to a fresh docker-registry by parallel
plain blob uploads, then read back, on the same MB basis), import_peak_rss_mb (MiB, `airgap
bundle import`, its largest round). Everything happens in a temporary work directory
(removed unless --keep; the registries are stopped at the end, also on error), after a check
that the disk has room.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from offline.oci.manifest import OCI_MANIFEST
from offline.oci.registry import Repository
from provisioner.bundle.signing import generate_key
from tests.bundle_sites import write_spec
from tests.offline.images.test_verify_images import (
    isolated_env,
    write_docker_config,
    write_predicates,
)
from tests.registries import RegistryServer, start_docker_registry, start_referrers_registry
from tests.tools import go_tool

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000
MIB = 1024 * 1024
CHUNK = 4 * MIB
# Every image has these three base layers, then 1-2 layers of its own; an image averages
# IMAGE_BYTES with the base layers counted once for the whole set.
BASE_LAYERS = (30 * MB, 15 * MB, 5 * MB)
IMAGE_BYTES = 40 * MB
QUICK_IMAGES, FULL_IMAGES = 10, 50
TAG = "v1"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
SIGNERS = 4  # cosign processes at once
PROCESS_TIMEOUT = 3600.0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failed step: one line for the user (with the tool's output tail where there is one)."""


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Ran:
    what: str
    seconds: float
    max_rss_mib: float
    stdout: str
    stderr: str


# The measured process is started by this small launcher, not by the benchmark: a child's peak
# RSS (ru_maxrss) counts what it mapped before exec, the resident memory of whoever forked it,
# and this benchmark holds a few hundred MB. The launcher is a few MB: below any figure here.
LAUNCHER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{code} {seconds} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def run(
    argv: Sequence[str | os.PathLike[str]],
    env: dict[str, str],
    what: str,
    *,
    cwd: Path = REPO,
    timeout: float = PROCESS_TIMEOUT,
) -> Ran:
    """Run one process to the end: its wall time and its own peak RSS, measured by LAUNCHER.
    A non-zero exit raises BenchError."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as figures,
    ):
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, figures.name]
        process = subprocess.Popen(
            [*launcher, *(os.fspath(a) for a in argv)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher and what it runs
            process.wait()
            raise BenchError(f"{what} did not finish in {timeout:.0f} s") from None
        if process.returncode != 0:
            raise BenchError(f"the launcher of {what} failed with {process.returncode}")
        code, seconds, max_rss_kib = figures.read().split()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if code != "0":
        raise BenchError(
            f"{what} failed with exit status {code}:\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
    return Ran(what, float(seconds), int(max_rss_kib) / 1024, stdout, stderr)


@dataclass
class Timed:
    """Several processes run one after the other, as a script runs them."""

    seconds: float = 0.0
    max_rss_mib: float = 0.0
    runs: int = 0

    def add(self, ran: Ran) -> Ran:
        self.seconds += ran.seconds
        self.max_rss_mib = max(self.max_rss_mib, ran.max_rss_mib)
        self.runs += 1
        return ran


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (what a copy of it moves)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            item = Path(directory) / name
            if not item.is_symlink():
                total += item.stat().st_size
    return total


# -- images ------------------------------------------------------------------------------------


class RandomStream:
    """Fast reproducible random bytes (AES-CTR over zeros), seeded from `rng`: incompressible,
    like the compressed layers of real images."""

    _ZEROS = memoryview(bytes(CHUNK))

    def __init__(self, rng: random.Random) -> None:
        cipher = Cipher(algorithms.AES(rng.randbytes(32)), modes.CTR(rng.randbytes(16)))
        self._encryptor = cipher.encryptor()

    def read(self, size: int) -> bytes:
        return self._encryptor.update(self._ZEROS[:size])


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    diff_id: str
    payload: int  # bytes of random data in it
    data: bytes | None = None  # small layers stay in memory
    path: Path | None = None  # large ones are written to a file

    @property
    def descriptor(self) -> dict[str, object]:
        return {"mediaType": LAYER_TYPE, "digest": self.digest, "size": self.size}


def write_layer(rng: random.Random, payload: int, out: IO[bytes]) -> tuple[str, int, str]:
    """A gzip'd tar holding one file of `payload` random bytes, written to `out` a chunk at a
    time: (digest, size, diff_id). Deflate level 0 (stored blocks): random bytes do not
    compress, and a real layer's bytes would not either."""
    info = tarfile.TarInfo(f"data-{rng.getrandbits(64):016x}.bin")
    info.size, info.mtime, info.mode = payload, 0, 0o644
    tar_hash, blob_hash = hashlib.sha256(), hashlib.sha256()
    deflate = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            blob_hash.update(data)
            out.write(data)
            size += len(data)

    def feed(data: bytes) -> None:
        tar_hash.update(data)
        emit(deflate.compress(data))

    feed(info.tobuf(format=tarfile.USTAR_FORMAT))
    stream, remaining = RandomStream(rng), payload
    while remaining:
        chunk = stream.read(min(CHUNK, remaining))
        feed(chunk)
        remaining -= len(chunk)
    feed(bytes((-payload) % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))  # padding, end of tar
    emit(deflate.flush())
    return f"sha256:{blob_hash.hexdigest()}", size, f"sha256:{tar_hash.hexdigest()}"


def memory_layer(rng: random.Random, payload: int) -> Layer:
    buffer = io.BytesIO()
    digest, size, diff_id = write_layer(rng, payload, buffer)
    return Layer(digest, size, diff_id, payload, data=buffer.getvalue())


def file_layer(rng: random.Random, payload: int, path: Path) -> Layer:
    with path.open("wb") as out:
        digest, size, diff_id = write_layer(rng, payload, out)
    return Layer(digest, size, diff_id, payload, path=path)


def _dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class BenchImage:
    repository: str  # bench/app-NN
    layers: list[Layer]
    nonce: int
    digest: str = ""

    def config(self) -> bytes:
        return _dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": [f"NONCE={self.nonce}"]},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            }
        )

    def manifest(self) -> bytes:
        config = self.config()
        return _dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": CONFIG_TYPE,
                    "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                    "size": len(config),
                },
                "layers": [layer.descriptor for layer in self.layers],
            }
        )


def push(server: RegistryServer, image: BenchImage, tag: str = TAG) -> str:
    """Push an image's blobs (those the registry has are skipped), config and tagged manifest."""
    with server.client() as registry:
        repository = registry.repository(image.repository)
        for layer in image.layers:
            if layer.data is None and layer.path is None:
                continue  # pushed with an earlier version of the image, bytes dropped since
            if layer.data is not None:
                repository.push_blob(layer.data, layer.digest, layer.size)
            else:
                assert layer.path is not None
                with layer.path.open("rb") as stream:
                    repository.push_blob(stream, layer.digest, layer.size)
        config = image.config()
        repository.push_blob(config, f"sha256:{hashlib.sha256(config).hexdigest()}", len(config))
        image.digest = repository.push_manifest(image.manifest(), OCI_MANIFEST, tag).digest
    return image.digest


def own_layers(rng: random.Random, count: int) -> list[Layer]:
    """One or two layers of an image's own: with the base layers counted once, `count` images
    average IMAGE_BYTES each."""
    average = max(MB, (count * IMAGE_BYTES - sum(BASE_LAYERS)) // count)
    total = int(average * rng.uniform(0.8, 1.2))
    if rng.random() < 0.5:
        return [memory_layer(rng, total)]
    first = int(total * rng.uniform(0.3, 0.7))
    return [memory_layer(rng, first), memory_layer(rng, total - first)]


def source_blobs(
    server: RegistryServer, images: Sequence[BenchImage]
) -> tuple[dict[str, int], int]:
    """Every distinct blob of the images and their attachments (manifests, configs, layers:
    the files of an OCI layout), with sizes; and the number of attachments."""
    blobs: dict[str, int] = {}
    attachments = 0

    def walk(repository: Repository, digest: str) -> None:
        manifest = repository.fetch_manifest(digest)
        blobs[digest] = len(manifest.raw)
        document = manifest.json()
        for descriptor in [document.get("config"), *document.get("layers", [])]:
            if isinstance(descriptor, dict):
                blobs[str(descriptor["digest"])] = int(descriptor["size"])

    with server.client() as registry:
        for image in images:
            repository = registry.repository(image.repository)
            walk(repository, image.digest)
            for referrer in repository.referrers(image.digest).descriptors:
                walk(repository, referrer.digest)
                attachments += 1
    return blobs, attachments


# -- cosign ------------------------------------------------------------------------------------


class Signer:
    """cosign v3 with a key pair and no Sigstore service: a Sigstore bundle per signature and
    per attestation, pushed as referrers."""

    def __init__(self, work: Path) -> None:
        home = work / "cosign-home"
        home.mkdir(parents=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "TUF_ROOT": str(home / "tuf"),
            "COSIGN_PASSWORD": secrets.token_urlsafe(16),
        }
        run(
            [go_tool("cosign"), "generate-key-pair"], self.env, "cosign generate-key-pair", cwd=home
        )
        self.key = home / "cosign.key"
        self.predicate = write_predicates(work / "predicates")["spdxjson"]

    def _cosign(self, command: str, image: str, *extra: str) -> None:
        flags = ["--key", str(self.key), "--tlog-upload=false", "--use-signing-config=false"]
        flags += ["--yes", "--allow-http-registry", *extra]
        run([go_tool("cosign"), command, *flags, image], self.env, f"cosign {command} {image}")

    def sign_and_attest(self, image: str) -> None:
        self._cosign("sign", image)
        self._cosign("attest", image, "--type", "spdxjson", "--predicate", str(self.predicate))

    def all(self, images: Sequence[str]) -> None:
        with ThreadPoolExecutor(max_workers=SIGNERS) as pool:
            for future in [pool.submit(self.sign_and_attest, image) for image in images]:
                future.result()


# -- airgap and skopeo -------------------------------------------------------------------------


class Airgap:
    """The `airgap` command line, in its own process each time, with the registries' CA and
    plain-HTTP hosts; logins come from DOCKER_CONFIG."""

    def __init__(self, work: Path, docker_config: Path, ca: Path, http_hosts: Sequence[str]):
        self.env = isolated_env(work, docker_config)
        # Bytecode cached, as where airgap is installed with pip (kept in the work directory,
        # so the checkout gets no __pycache__): `warm_up` fills it before anything is timed.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.env.pop("AIRGAP_SIGN_KEY_PASSWORD", None)
        self.flags = ["--registry-ca", str(ca)]
        self.flags += [f for host in http_hosts for f in ("--allow-http-registry", host)]
        executable = Path(sys.executable).with_name("airgap")
        self.argv = (
            [str(executable)] if executable.exists() else [sys.executable, "-m", "provisioner.cli"]
        )

    def create(self, spec: Path, out: Path, key: Path, since: Path | None = None) -> Ran:
        argv = [*self.argv, "bundle", "create", str(spec), "-o", str(out), "--sign-key", str(key)]
        if since is not None:
            argv += ["--since", str(since)]
        return run([*argv, *self.flags], self.env, f"airgap bundle create {spec.name}")

    def import_(self, bundle: Path, target: str, public_key: Path) -> Ran:
        argv = [*self.argv, "bundle", "import", str(bundle), "--to", target]
        argv += ["--key", str(public_key), *self.flags]
        return run(argv, self.env, f"airgap bundle import {bundle.name}")

    def inventory(self, registry: str, out: Path) -> Ran:
        argv = [*self.argv, "bundle", "inventory", "--registry", registry, "-o", str(out)]
        return run([*argv, *self.flags], self.env, f"airgap bundle inventory {registry}")


class Skopeo:
    """Debian's skopeo, one `copy --all --preserve-digests` per image, as scripts run it; an
    isolated HOME (its blob-info cache starts empty), logins from an auth file."""

    def __init__(self, work: Path, auth_file: Path) -> None:
        home = work / "skopeo-home"
        home.mkdir(parents=True)
        self.env = {**os.environ, "HOME": str(home)}
        self.env.pop("REGISTRY_AUTH_FILE", None)
        self.auth_file = auth_file

    def copy(self, source: str, dest: str, flags: Sequence[str], timed: Timed) -> Ran:
        argv = ["skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests", "--quiet"]
        return timed.add(run([*argv, *flags, source, dest], self.env, f"skopeo copy {source}"))

    def tls_flags(self, side: str, server: RegistryServer) -> list[str]:
        if not server.tls:
            return [f"--{side}-tls-verify=false", f"--{side}-no-creds"]
        return [
            f"--{side}-cert-dir",
            str(server.cert_dir),
            f"--{side}-authfile",
            str(self.auth_file),
        ]


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Plan:
    count: int
    unique_estimate: int  # bytes of the generated images, base layers once
    big_layer: int  # payload bytes of the peak-memory layer
    big_note: str


def plan(opts: argparse.Namespace, free: int) -> Plan:
    count: int = opts.images or (QUICK_IMAGES if opts.quick else FULL_IMAGES)
    keep: bool = opts.keep
    unique = count * IMAGE_BYTES
    big: int = opts.big_layer * MIB
    big_note = ""

    # At most on disk at once: of the image set, skopeo's layout, the bundle, its copy and the
    # two targets; of the big layer, a registry's copy and one other (its file, then airgap's
    # bundle, then skopeo's layout, each removed as soon as measured). --keep removes nothing.
    def need(big_bytes: int) -> int:
        return (5 + 3 * keep) * unique + (2 + 2 * keep) * big_bytes + 1024 * MIB

    if need(big) > free and opts.quick and opts.big_layer == 2048:
        big, big_note = 512 * MIB, " (512 MiB: the disk is short for 2 GiB)"
    if need(big) > free:
        raise BenchError(
            f"not enough disk space in {tempfile.gettempdir()}: this run needs about "
            f"{need(big) / 1e9:.1f} GB and {free / 1e9:.1f} GB is free; free some space, set "
            "TMPDIR to a larger disk, or use --quick / fewer --images / a smaller --big-layer"
        )
    available = _mem_available()
    if available is not None and 2 * unique + 512 * MIB > available:
        raise BenchError(
            f"not enough memory: the source registry keeps about {unique / 1e9:.1f} GB of "
            f"blobs in memory and {available / 1e9:.1f} GB is available; use fewer --images"
        )
    return Plan(count, unique, big, big_note)


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_target(
    server: RegistryServer, images: Sequence[BenchImage], who: str, *, attachments: int = 0
) -> None:
    """Every image is on `server` by digest, with at least `attachments` referrers."""
    with server.client() as registry:
        for image in images:
            repository = registry.repository(image.repository)
            if not repository.manifest_exists(image.digest):
                raise BenchError(
                    f"{who}: {server.host}/{image.repository}@{image.digest} is missing"
                )
            if attachments:
                found = len(repository.referrers(image.digest).descriptors)
                if found < attachments:
                    raise BenchError(
                        f"{who}: {image.repository}@{image.digest} has {found} attachments on "
                        f"the target, expected {attachments}"
                    )


_UPLOAD = re.compile(r'"(PUT|POST) /v2/\S+/blobs/uploads/(\S*) HTTP/[0-9.]+" 201 ')


def log_mark(server: RegistryServer) -> int:
    return server.log_path.stat().st_size


def blob_pushes(server: RegistryServer, mark: int) -> tuple[int, int]:
    """From docker-registry's access log after `mark`: blob uploads completed, and blobs
    mounted from another repository instead (no bytes sent)."""
    with server.log_path.open("rb") as log:
        log.seek(mark)
        text = log.read().decode(errors="replace")
    uploads = mounts = 0
    for method, query in _UPLOAD.findall(text):
        if method == "PUT":
            uploads += 1
        elif "mount=" in query:
            mounts += 1
    return uploads, mounts


@dataclass
class Results:
    count: int = 0
    layers: int = 0
    unique_blob_bytes: int = 0
    attachments: int = 0
    signing_s: float = 0.0
    create: Ran | None = None
    skopeo_create: Timed = field(default_factory=Timed)
    copy_s: float = 0.0
    bundle_bytes: int = 0
    layout_bytes: int = 0
    import_rounds: list[Ran] = field(default_factory=list)
    skopeo_import_rounds: list[Timed] = field(default_factory=list)
    import_pushes: tuple[int, int] = (0, 0)  # blob uploads, cross-repository mounts
    skopeo_pushes: tuple[int, int] = (0, 0)
    inventory_s: float = 0.0
    delta_create_s: float = 0.0
    delta_import_s: float = 0.0
    delta_bytes: int = 0
    changed_layer_bytes: int = 0
    big_layer_bytes: int = 0
    big_note: str = ""
    big_airgap: Ran | None = None
    big_skopeo: Ran | None = None
    registry_put_mb_s: float = 0.0  # the target registry's own ceiling: plain parallel uploads
    registry_get_mb_s: float = 0.0  # ... and downloads of the same blobs


def bench(
    opts: argparse.Namespace, work: Path, plan: Plan, servers: list[RegistryServer]
) -> Results:
    results = Results(count=plan.count, big_note=plan.big_note)
    rng = random.Random(opts.seed)

    (work / "source").mkdir()
    source = start_referrers_registry(work / "source")
    servers.append(source)
    # A fresh target for each tool in each import round; the first pair also takes the delta
    # and the big layer.
    rounds: list[tuple[RegistryServer, RegistryServer]] = []
    for number in range(opts.import_rounds):
        pair = []
        for name in ("target", "skopeo-target"):
            directory = work / f"{name}-{number}"
            directory.mkdir()
            pair.append(start_docker_registry(directory))
            servers.append(pair[-1])
        rounds.append((pair[0], pair[1]))
    target, skopeo_target = rounds[0]
    targets = [server for pair in rounds for server in pair]
    ca_bundle = work / "registry-ca.pem"
    ca_bundle.write_bytes(b"".join(t.ca.ca_cert.read_bytes() for t in targets if t.ca))
    docker_config = write_docker_config(work / "docker", targets)
    airgap = Airgap(work, docker_config, ca_bundle, [source.host])
    skopeo = Skopeo(work, docker_config / "config.json")
    public_key = generate_key(work / "operator.key", "ecdsa-p256")
    private_key = work / "operator.key"

    _log(f"generating and pushing {plan.count} images (about {plan.unique_estimate / 1e6:.0f} MB)")
    bases = [memory_layer(rng, size) for size in BASE_LAYERS]
    images = [BenchImage(f"bench/app-{i:02d}", [], rng.getrandbits(63)) for i in range(plan.count)]
    for image in images:  # one image's layers in memory at a time
        image.layers = [*bases, *own_layers(rng, plan.count)]
        push(source, image)
        results.layers += len(image.layers) - len(bases)
        image.layers = [*bases, *(replace_data(layer) for layer in image.layers[len(bases) :])]
    del bases

    _log(f"signing and attesting {plan.count} images with cosign v3 (key, no transparency log)")
    signer = Signer(work)
    began = time.perf_counter()
    signer.all([f"{source.host}/{i.repository}@{i.digest}" for i in images])
    results.signing_s = time.perf_counter() - began
    blobs, results.attachments = source_blobs(source, images)
    results.unique_blob_bytes = sum(blobs.values())
    if results.attachments != 2 * plan.count:
        raise BenchError(
            f"expected {2 * plan.count} attachments, the source has {results.attachments}"
        )

    spec = write_spec(
        work / "bench.yaml",
        name="bench",
        images=[f"{source.host}/{i.repository}:{TAG}" for i in images],
    )

    _log("warm-up: airgap bundle create, import and inventory of one small image")
    warm_up(work, source, target, airgap, private_key, public_key)

    _log("create: airgap bundle create (one process)")
    bundle = work / "bundle"
    results.create = airgap.create(spec, bundle, private_key)
    results.bundle_bytes = tree_bytes(bundle)

    _log("create: skopeo copy --all, one process per image, into one OCI layout")
    layout = work / "skopeo-layout"
    for image in images:
        skopeo.copy(
            f"docker://{source.host}/{image.repository}@{image.digest}",
            f"oci:{layout}:{image.repository}:{TAG}",
            skopeo.tls_flags("src", source),
            results.skopeo_create,
        )
    results.layout_bytes = tree_bytes(layout)

    _log("create: cp -r + sync of the bundle directory")
    copy = work / "bundle-copy"
    began = time.perf_counter()
    subprocess.run(["cp", "-r", str(bundle), str(copy)], check=True)
    subprocess.run(["sync", "-f", str(copy)], check=True)
    results.copy_s = time.perf_counter() - began
    shutil.rmtree(copy)

    def airgap_import(number: int, server: RegistryServer) -> None:
        _log(f"import, round {number + 1}: airgap bundle import")
        mark = log_mark(server)
        ran = airgap.import_(bundle, server.host, public_key)
        results.import_rounds.append(ran)
        results.import_pushes = blob_pushes(server, mark)
        check_target(server, images, "airgap bundle import", attachments=2)

    def skopeo_import(number: int, server: RegistryServer) -> None:
        _log(f"import, round {number + 1}: skopeo copy --all from the layout, one per image")
        mark = log_mark(server)
        timed = Timed()
        for image in images:
            skopeo.copy(
                f"oci:{layout}:{image.repository}:{TAG}",
                f"docker://{server.host}/{image.repository}:{TAG}",
                skopeo.tls_flags("dest", server),
                timed,
            )
        results.skopeo_import_rounds.append(timed)
        results.skopeo_pushes = blob_pushes(server, mark)
        check_target(server, images, "skopeo import")

    for number, (airgap_target, skopeo_target_now) in enumerate(rounds):
        if number % 2 == 0:
            airgap_import(number, airgap_target)
            skopeo_import(number, skopeo_target_now)
        else:
            skopeo_import(number, skopeo_target_now)
            airgap_import(number, airgap_target)

    _log("ceiling: plain parallel blob uploads and downloads to a fresh docker-registry")
    (work / "ceiling").mkdir()
    ceiling = start_docker_registry(work / "ceiling")
    servers.append(ceiling)
    results.registry_put_mb_s, results.registry_get_mb_s = registry_ceiling(layout, ceiling)
    ceiling.stop()
    shutil.rmtree(work / "ceiling")
    if not opts.keep:  # room for the big layer below
        shutil.rmtree(layout)

    _log("delta: one layer of one image replaced, signed again; inventory, create --since")
    changed = images[0]
    old = changed.layers[-1]
    new = memory_layer(rng, old.payload)
    changed.layers = [*changed.layers[:-1], new]
    changed.nonce = rng.getrandbits(63)
    push(source, changed)
    results.changed_layer_bytes = new.size
    signer.sign_and_attest(f"{source.host}/{changed.repository}@{changed.digest}")
    changed.layers[-1] = replace_data(new)
    inventory = work / "target.inventory.json"
    results.inventory_s = airgap.inventory(target.host, inventory).seconds
    delta = work / "delta"
    results.delta_create_s = airgap.create(spec, delta, private_key, since=inventory).seconds
    results.delta_bytes = tree_bytes(delta)
    results.delta_import_s = airgap.import_(delta, target.host, public_key).seconds
    check_target(target, images, "airgap bundle import (delta)", attachments=2)
    if not opts.keep:
        shutil.rmtree(bundle)
        shutil.rmtree(delta)

    _log(f"peak memory: one image with a {plan.big_layer / MIB:.0f} MiB layer")
    big_file = work / "big-layer.tar.gz"
    big = BenchImage("bench/big", [file_layer(rng, plan.big_layer, big_file)], rng.getrandbits(63))
    results.big_layer_bytes = big.layers[0].size
    push(skopeo_target, big)
    big_file.unlink()
    big_spec = write_spec(
        work / "big.yaml", name="big", images=[f"{skopeo_target.host}/{big.repository}:{TAG}"]
    )
    results.big_airgap = airgap.create(big_spec, work / "big-bundle", private_key)
    if not opts.keep:
        shutil.rmtree(work / "big-bundle")
    results.big_skopeo = skopeo.copy(
        f"docker://{skopeo_target.host}/{big.repository}@{big.digest}",
        f"oci:{work / 'big-layout'}:big",
        skopeo.tls_flags("src", skopeo_target),
        Timed(),
    )
    if not opts.keep:
        shutil.rmtree(work / "big-layout")
    return results


def registry_ceiling(layout: Path, server: RegistryServer) -> tuple[float, float]:
    """MB/s of the registry itself: every blob of the layout pushed to it, then read back, by
    SIGNERS * 2 threads at once through one client (no manifests, no checks beyond the digests
    the client verifies): what no import into this registry can beat."""
    blobs = sorted(p for p in (layout / "blobs" / "sha256").iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in blobs)
    repo = server.client().repository("bench/ceiling")

    def put(path: Path) -> None:
        with path.open("rb") as data:
            repo.push_blob(data, f"sha256:{path.name}", path.stat().st_size)

    def get(path: Path) -> None:
        with repo.open_blob(f"sha256:{path.name}", path.stat().st_size) as reader:
            while reader.read(CHUNK):
                pass

    rates = []
    for action in (put, get):
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=SIGNERS * 2) as pool:
            list(pool.map(action, blobs))
        rates.append(total / MB / (time.perf_counter() - began))
    return rates[0], rates[1]


def warm_up(
    work: Path,
    source: RegistryServer,
    target: RegistryServer,
    airgap: Airgap,
    private_key: Path,
    public_key: Path,
) -> None:
    """Every airgap command once, untimed, on one small image of its own repository: Python
    compiles what each imports into the empty bytecode cache (as pip does on install), and no
    timed run pays for that."""
    rng = random.Random(0)
    image = BenchImage("bench/warm-up", [memory_layer(rng, 4096)], rng.getrandbits(63))
    push(source, image)
    spec = write_spec(
        work / "warm-up.yaml", name="warm-up", images=[f"{source.host}/{image.repository}:{TAG}"]
    )
    airgap.create(spec, work / "warm-up", private_key)
    airgap.import_(work / "warm-up", target.host, public_key)
    airgap.inventory(target.host, work / "warm-up.inventory.json")
    shutil.rmtree(work / "warm-up")


def replace_data(layer: Layer) -> Layer:
    """The layer without its bytes (pushed already): memory holds one image at a time."""
    return Layer(layer.digest, layer.size, layer.diff_id, layer.payload)


def report(results: Results) -> dict[str, float | int]:
    assert results.create is not None and results.import_rounds
    assert results.big_airgap is not None and results.big_skopeo is not None
    mb = results.unique_blob_bytes / MB

    def rate(seconds: float) -> float:
        return mb / seconds if seconds > 0 else float("inf")

    create, skopeo_create = rate(results.create.seconds), rate(results.skopeo_create.seconds)
    copy = rate(results.copy_s)
    import_s = statistics.median(r.seconds for r in results.import_rounds)
    skopeo_import_s = statistics.median(t.seconds for t in results.skopeo_import_rounds)
    import_, skopeo_import = rate(import_s), rate(skopeo_import_s)
    import_rss = max(r.max_rss_mib for r in results.import_rounds)
    skopeo_import_rss = max(t.max_rss_mib for t in results.skopeo_import_rounds)
    rounds = len(results.import_rounds)
    n = results.count
    print(
        f"{n} images: 3 shared base layers + {results.layers} layers of their own, each signed "
        f"and attested (cosign v3, key): {results.attachments} attachments (referrers)"
    )
    print(
        f"unique bytes in the source: {results.unique_blob_bytes} ({mb:.0f} MB, every distinct "
        f"layer, config, manifest and attachment); signing took {results.signing_s:.1f} s"
    )
    print("source: go-containerregistry (plain HTTP, in memory); targets: docker-registry (TLS)")
    print(f"throughput on that one basis, MB/s = {mb:.0f} MB / wall s (process starts included):")
    print(f"  {'':<52} {'wall s':>8} {'MB/s':>8} {'peak RSS MiB':>13}")
    rows = [
        ("create  airgap bundle create (1 process)", results.create.seconds, create,
         results.create.max_rss_mib),
        (f"create  skopeo copy --all ({n} processes, 1 layout)", results.skopeo_create.seconds,
         skopeo_create, results.skopeo_create.max_rss_mib),
        ("create  cp -r + sync of the bundle (ceiling)", results.copy_s, copy, None),
        ("import  airgap bundle import (1 process)", import_s, import_, import_rss),
        (f"import  skopeo copy --all ({n} processes)", skopeo_import_s, skopeo_import,
         skopeo_import_rss),
    ]  # fmt: skip
    for name, seconds, mb_s, rss in rows:
        memory = f"{rss:>13.0f}" if rss is not None else f"{'':>13}"
        print(f"  {name:<52} {seconds:>8.2f} {mb_s:>8.1f} {memory}")
    if rounds > 1:
        for who, times in (
            ("airgap", [r.seconds for r in results.import_rounds]),
            ("skopeo", [t.seconds for t in results.skopeo_import_rounds]),
        ):
            listed = ", ".join(f"{t:.2f}" for t in times)
            print(f"  import {who}, each of {rounds} rounds (s): {listed}; the median is above")
    print("ratios (throughput):")
    print(f"  {'create airgap/skopeo':<52} {create / skopeo_create:>8.2f}")
    print(f"  {'create airgap/copy':<52} {create / copy:>8.2f}")
    print(f"  {'import airgap/skopeo':<52} {import_ / skopeo_import:>8.2f}")
    print(f"  {'import airgap/copy':<52} {import_ / copy:>8.2f}")
    print(
        f"  {'import airgap/registry ceiling (plain parallel PUTs)':<52} "
        f"{import_ / results.registry_put_mb_s:>8.2f}  (ceiling: PUT "
        f"{results.registry_put_mb_s:.1f} MB/s, GET {results.registry_get_mb_s:.1f} MB/s)"
    )
    for who, (uploads, mounts) in (
        ("airgap", results.import_pushes),
        ("skopeo", results.skopeo_pushes),
    ):
        print(
            f"  import {who}: {uploads} blob uploads, {mounts} blobs mounted from another "
            "repository of the target (no bytes sent)"
        )
    print(
        f"  note: skopeo carried 0 of the {results.attachments} attachments (it copies no "
        "referrers and no .sig/.att tags unless told to); airgap carried all of them"
    )
    print("sizes:")
    print(f"  {'bundle directory (bytes)':<52} {results.bundle_bytes:>14}")
    print(f"  {'skopeo layout (bytes, no attachments)':<52} {results.layout_bytes:>14}")
    print(f"  {'unique blobs in the source (bytes)':<52} {results.unique_blob_bytes:>14}")
    print(
        f"  {'bundle / unique blobs':<52} {results.bundle_bytes / results.unique_blob_bytes:>14.4f}"
    )
    print("delta: one layer of one image replaced, the image signed again:")
    print(f"  {'changed layer (bytes)':<52} {results.changed_layer_bytes:>14}")
    print(f"  {'delta bundle (bytes)':<52} {results.delta_bytes:>14}")
    print(
        f"  {'delta bundle / changed layer':<52} "
        f"{results.delta_bytes / results.changed_layer_bytes:>14.4f}"
    )
    print(
        f"  inventory {results.inventory_s:.2f} s, create --since {results.delta_create_s:.2f} s, "
        f"import {results.delta_import_s:.2f} s"
    )
    print(f"peak RSS carrying one {results.big_layer_bytes / MIB:.0f} MiB layer{results.big_note}:")
    print(
        f"  {'airgap bundle create':<52} {results.big_airgap.max_rss_mib:>8.0f} MiB "
        f"({results.big_airgap.seconds:.1f} s)"
    )
    print(
        f"  {'skopeo copy (to an OCI layout)':<52} {results.big_skopeo.max_rss_mib:>8.0f} MiB "
        f"({results.big_skopeo.seconds:.1f} s)"
    )
    return {
        "create_mb_s": round(create, 1),
        "skopeo_create_mb_s": round(skopeo_create, 1),
        "copy_mb_s": round(copy, 1),
        "import_mb_s": round(import_, 1),
        "skopeo_import_mb_s": round(skopeo_import, 1),
        "bundle_bytes": results.bundle_bytes,
        "unique_blob_bytes": results.unique_blob_bytes,
        "delta_bytes": results.delta_bytes,
        "changed_layer_bytes": results.changed_layer_bytes,
        "peak_rss_mb": round(results.big_airgap.max_rss_mib, 1),
        "registry_put_mb_s": round(results.registry_put_mb_s, 1),
        "registry_get_mb_s": round(results.registry_get_mb_s, 1),
        "import_peak_rss_mb": round(import_rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 images (about 400 MB), not 50")
    parser.add_argument("--images", type=int, help="number of images (overrides --quick)")
    parser.add_argument(
        "--big-layer",
        type=int,
        default=2048,
        metavar="MIB",
        help="size of the layer carried for peak memory (default 2048; --quick falls back to "
        "512 when the disk is short)",
    )
    parser.add_argument(
        "--import-rounds",
        type=int,
        default=3,
        metavar="N",
        help="imports by each tool, each into a fresh registry; the median counts (default 3)",
    )
    parser.add_argument("--seed", type=int, default=20261122, help="seed of the generated bytes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = parser.parse_args()
    if opts.images is not None and opts.images < 1:
        parser.error("--images must be at least 1")
    if opts.import_rounds < 1:
        parser.error("--import-rounds must be at least 1")

    started = time.perf_counter()
    servers: list[RegistryServer] = []
    work: Path | None = None
    try:
        the_plan = plan(opts, shutil.disk_usage(tempfile.gettempdir()).free)
        work = Path(tempfile.mkdtemp(prefix="airgap-bench-bundle-"))
        _log(f"work directory {work}")
        results = bench(opts, work, the_plan, servers)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        if work is not None:
            if opts.keep:
                _log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
    figures = report(results)
    print(f"total time {time.perf_counter() - started:.0f} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
