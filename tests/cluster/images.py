"""The images the test cluster itself runs, built here with no pull from anywhere.

A base layer holds Debian's static busybox (its applets linked as a distribution image has them)
and `cluster-probe` (tests/tools/cluster-probe: the pod sandbox, an HTTP server, and HTTP and DNS
clients that do not crash on names as busybox's glibc build does). Images on it: `pause`,
`busybox`, `probe`, and `coredns` (CoreDNS v1.12.4 on top).

Layers are tarred here deterministically (sorted, mtime 0, root-owned), so an image's digest
follows from its content; each is tagged with a hash of its inputs and referred to by digest, so
containerd (which keeps an image it already has under `IfNotPresent`) never runs a stale one.
`crane` pushes them from inside the node's namespace.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = Path("/usr/bin/busybox")
PROBE = "/usr/local/bin/cluster-probe"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"


@dataclass
class Layer:
    """A deterministic tar layer: files, directories and symlinks, all root-owned, mtime 0."""

    entries: dict[str, tuple[str, bytes | str, int]] = field(default_factory=dict)

    def directory(self, path: str, mode: int = 0o755) -> None:
        self.entries[path.strip("/")] = ("dir", b"", mode)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(path)
        self.entries[path.strip("/")] = ("file", data, mode)

    def symlink(self, path: str, target: str) -> None:
        self._parents(path)
        self.entries[path.strip("/")] = ("symlink", target, 0o777)

    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.entries.setdefault("/".join(parts[:i]), ("dir", b"", 0o755))

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self.entries):
                kind, data, mode = self.entries[name]
                info = tarfile.TarInfo(name)
                info.mode, info.mtime, info.uid, info.gid = mode, 0, 0, 0
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, str(data)
                    tar.addfile(info)
                else:
                    assert isinstance(data, bytes)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return out.getvalue()


def base_layer(probe: Path) -> Layer:
    layer = Layer()
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev"):
        layer.directory(directory)
    layer.directory("tmp", 0o1777)
    layer.directory("var/run")
    layer.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "bin/busybox":
            layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", PASSWD)
    layer.file("etc/group", GROUP)
    layer.file(PROBE, probe.read_bytes(), 0o755)
    return layer


def program_layer(path: str, binary: Path) -> Layer:
    layer = Layer()
    layer.file(path, binary.read_bytes(), 0o755)
    return layer


@dataclass(frozen=True)
class ImageSpec:
    name: str
    layers: tuple[str, ...]  # names of layer files, bottom first
    entrypoint: tuple[str, ...]


@dataclass
class ImageBuilder:
    """Builds images into `registry` (host:port) with `crane`, run through `run_in_node` (the
    guarded entry into the node's namespace) with `env` (registry credentials, CA)."""

    directory: Path
    registry: str
    run_in_node: Callable[[Sequence[str]], str]
    layers: dict[str, Path] = field(default_factory=dict)
    built: dict[str, str] = field(default_factory=dict)  # name -> digest reference

    def add_layer(self, name: str, layer: Layer) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.tar"
        path.write_bytes(layer.tar())
        self.layers[name] = path

    def tag(self, spec: ImageSpec) -> str:
        digest = hashlib.sha256()
        for layer in spec.layers:
            digest.update(hashlib.sha256(self.layers[layer].read_bytes()).digest())
        digest.update("\0".join(spec.entrypoint).encode())
        return digest.hexdigest()[:16]

    def build(self, spec: ImageSpec) -> str:
        """Push `spec` (unless a tag of that content exists) and return its digest reference."""
        repository = f"{self.registry}/cluster/{spec.name}"
        tagged = f"{repository}:{self.tag(spec)}"
        staging = f"{self.registry}/cluster/staging-{spec.name}:{self.tag(spec)}"
        first, *rest = spec.layers
        self.run_in_node(
            ["crane", "append", "--oci-empty-base", "-f", str(self.layers[first]), "-t", staging]
        )
        for layer in rest:
            self.run_in_node(
                ["crane", "append", "-b", staging, "-f", str(self.layers[layer]), "-t", staging]
            )
        self.run_in_node(
            [
                "crane",
                "mutate",
                staging,
                "--set-platform",
                "linux/amd64",
                "--entrypoint",
                ",".join(spec.entrypoint),
                "-t",
                tagged,
            ]
        )
        digest = self.run_in_node(["crane", "digest", tagged]).strip()
        reference = f"{repository}@{digest}"
        self.built[spec.name] = reference
        return reference


CLUSTER_IMAGES = (
    ImageSpec("pause", ("base",), (PROBE, "pause")),
    ImageSpec("busybox", ("base",), ("/bin/sh",)),
    ImageSpec("probe", ("base",), (PROBE, "serve")),
    ImageSpec("coredns", ("base", "coredns"), ("/usr/local/bin/coredns",)),
)
