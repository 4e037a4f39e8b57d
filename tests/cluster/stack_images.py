"""The images the Sigstore stack's charts run, built here with no pull from anywhere, into one
OCI image layout, each listed under its upstream name.

Each image keeps the contract its upstream image has with its chart (entrypoint, env, args,
paths, users, probes; ../shared/reference/cluster-stack.md lists them):

- real programs, pinned and built from the Go module proxy (tests/tools), on a small static base
  (passwd with nonroot 65532, /tmp; no shell, like the distroless images upstream uses), each
  the image's entrypoint and run as 65532 as upstream's ko images are: Trillian's log server and
  signer, rekor-server, fulcio, ct_server, policy-controller's webhook;
- from Debian packages (debian_rootfs.py), on a shell base of dash (the charts' `sh -c` scripts)
  and busybox's applets: MariaDB as Trillian's `db_server` (the MySQL image's entrypoint and env,
  storage.sql in /docker-entrypoint-initdb.d, trillian.cnf, `/etc/init.d/mysql status` for the
  probes), Redis (`--protected-mode no` first, as the official entrypoint adds; /data), kubectl
  for policy-controller's leases-cleanup hook (`/bin/sh -c "kubectl delete leases ..."`);
- stand-ins where upstream's code cannot be built here (sigstore/scaffolding is not on the
  module proxy), each saying in its own source what it stands in for: `createdb`
  (stack_files/createdb.sh on the MariaDB image), `createtree` (tests/tools/scaffolding-createtree
  with Trillian's createtree), and the init containers' `nc -z` and `curl` (tests/tools/nc, curl:
  busybox's nc has no -z, and Debian's static busybox sh runs its own applets before $PATH, hence
  dash).

Layers are deterministic and cached by recipe (oci_build.py), so a second build takes seconds;
the layout lives outside the repository (AIRGAP_IMAGES_CACHE, default ~/.cache/airgap/images).
`push` copies the layout's images into a registry with skopeo, digests unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.cluster import debian_rootfs
from tests.cluster.binaries import cluster_tool
from tests.cluster.images import BUSYBOX, Layer
from tests.cluster.oci_build import (
    ImageConfig,
    LayerBlob,
    LayoutBuilder,
    file_identity,
    tar_files,
    tar_tree,
)
from tests.tools import go_program_from_source, go_tool

HERE = Path(__file__).parent
FILES = HERE / "stack_files"
TOOLS = HERE.parent / "tools"
NONROOT = "65532"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "mysql:x:999:999:MariaDB:/nonexistent:/bin/false\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nmysql:x:999:\nnonroot:x:65532:\nnobody:x:65534:\n"
# Busybox applets that must not stand in the way: the shell is dash, nc is the Go one.
SHADOWED_APPLETS = {"bin/sh", "bin/ash", "bin/nc", "usr/bin/nc"}

SHELL_PACKAGES = ("dash", "libc6", "gcc-12-base", "libgcc-s1")
# mariadb-server-core and mariadb-client-core's dependency closure (apt-cache depends --recurse
# --no-recommends ..., the alternative libelogind0 left out).
MARIADB_PACKAGES = (
    *SHELL_PACKAGES,
    *("mariadb-server-core", "mariadb-client-core", "mariadb-common", "mysql-common"),
    *("libmariadb3", "libaio1", "libbsd0", "libcap2", "libcrypt1", "libedit2", "libgcrypt20"),
    *("libgpg-error0", "liblz4-1", "liblzma5", "libmd0", "libncurses6", "libnuma1"),
    *("libpcre2-8-0", "libssl3", "libstdc++6", "libsystemd0", "libtinfo6", "liburing2"),
    *("libzstd1", "zlib1g"),
)
MARIADB_PROGRAMS = ("usr/sbin/mariadbd", "usr/bin/mariadb", "usr/bin/my_print_defaults")
# redis-tools has the programs, redis-server the names; adduser and the init helpers are only
# for maintainer scripts, which never run here.
REDIS_PACKAGES = (
    *SHELL_PACKAGES,
    *("redis-server", "redis-tools", "libatomic1", "libjemalloc2", "liblzf1", "libssl3"),
    *("libsystemd0", "libcap2", "libgcrypt20", "libgpg-error0", "liblz4-1", "liblzma5"),
    *("libzstd1", "libstdc++6"),
)
REDIS_PROGRAMS = ("usr/bin/redis-check-rdb", "usr/bin/redis-cli")
TRILLIAN_SCHEMA = "github.com/google/trillian@v1.7.3/storage/mysql/schema/storage.sql"


class StackImagesError(RuntimeError):
    pass


def images_cache() -> Path:
    default = Path.home() / ".cache" / "airgap" / "images"
    return Path(os.environ.get("AIRGAP_IMAGES_CACHE", default))


@dataclass(frozen=True)
class StackImage:
    name: str  # upstream name and tag, as the layout lists it
    layers: tuple[str, ...]  # layer names, bottom first
    config: ImageConfig
    description: str

    @property
    def repository(self) -> str:
        """The path under a registry: the upstream name without its host and tag."""
        path = self.name.rsplit(":", 1)[0].split("/", 1)[1]
        return path if "/" in path else f"library/{path}"

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def _static(name: str, program: str, description: str) -> StackImage:
    return StackImage(
        name,
        ("static", program),
        ImageConfig(entrypoint=(f"/ko-app/{program}",), user=NONROOT),
        description,
    )


MARIADB_ENTRYPOINT = ("/usr/local/bin/docker-entrypoint.sh",)
IMAGES = (
    StackImage(
        "gcr.io/trillian-opensource-ci/db_server:v1.5.3",
        ("mariadb", "trillian-schema"),
        ImageConfig(entrypoint=MARIADB_ENTRYPOINT),
        "MariaDB from Debian packages with Trillian v1.7.3's storage.sql and trillian.cnf, "
        "behind the MySQL image's entrypoint",
    ),
    StackImage(
        "ghcr.io/sigstore/scaffolding/createdb:v0.7.31",
        ("mariadb", "trillian-schema"),
        ImageConfig(entrypoint=("/usr/local/bin/createdb.sh",)),
        "stand-in: createdb.sh, Trillian's schema through the MariaDB client",
    ),
    _static(
        "ghcr.io/sigstore/scaffolding/trillian_log_server:v1.7.3",
        "trillian_log_server",
        "Trillian v1.7.3's log server",
    ),
    _static(
        "ghcr.io/sigstore/scaffolding/trillian_log_signer:v1.7.3",
        "trillian_log_signer",
        "Trillian v1.7.3's log signer",
    ),
    _static("ghcr.io/sigstore/rekor/rekor-server:v1.5.4", "rekor-server", "rekor-server v1.5.4"),
    _static("ghcr.io/sigstore/fulcio:v1.8.8", "fulcio", "fulcio v1.8.8"),
    _static(
        "ghcr.io/sigstore/scaffolding/ct_server:v0.7.31",
        "ct_server",
        "certificate-transparency-go v1.3.3's ct_server",
    ),
    _static(
        "ghcr.io/sigstore/policy-controller/policy-controller:v0.13.1",
        "webhook",
        "policy-controller v0.13.1's webhook",
    ),
    StackImage(
        "ghcr.io/sigstore/scaffolding/createtree:v0.7.31",
        ("static", "createtree"),
        ImageConfig(entrypoint=("/usr/local/bin/createtree",), user=NONROOT),
        "stand-in: tests/tools/scaffolding-createtree with Trillian v1.7.3's createtree",
    ),
    StackImage(
        "docker.io/library/redis:7.0.15",
        ("redis",),
        ImageConfig(
            entrypoint=("/usr/bin/redis-server", "--protected-mode", "no"), workdir="/data"
        ),
        "Redis from Debian packages",
    ),
    StackImage(
        "docker.io/subfuzion/netcat:latest",
        ("shell", "wait-tools"),
        ImageConfig(entrypoint=("/usr/local/bin/nc",)),
        "stand-in: dash with a Go nc -z (tests/tools/nc)",
    ),
    StackImage(
        "docker.io/curlimages/curl:8.17.0",
        ("shell", "wait-tools"),
        ImageConfig(entrypoint=("/usr/local/bin/curl",)),
        "stand-in: dash with a Go curl (tests/tools/curl)",
    ),
    StackImage(
        "cgr.dev/chainguard/kubectl:latest-dev",
        ("shell", "kubectl"),
        ImageConfig(entrypoint=("/usr/bin/kubectl",)),
        "kubectl v1.34.10 with dash",
    ),
)


@dataclass(frozen=True)
class StackImages:
    """The built layout and the digest of each image in it, by upstream name."""

    layout: Path
    digests: Mapping[str, str]

    def image(self, name: str) -> StackImage:
        for image in IMAGES:
            if image.name == name or image.name.rsplit(":", 1)[0] == name:
                return image
        raise KeyError(name)

    def reference(self, name: str, registry: str) -> str:
        """`name`'s image in `registry`, by digest (`name` with or without its tag)."""
        image = self.image(name)
        return f"{registry}/{image.repository}@{self.digests[image.name]}"

    def content_tag(self, image: StackImage) -> str:
        """The tag a push gives: upstream's, then the digest's start (a rebuilt image never
        takes an old tag, which containerd would keep under IfNotPresent)."""
        return f"{image.tag}-{self.digests[image.name].split(':', 1)[1][:12]}"


def _code_version() -> str:
    """What the layers are made by: this module, its helpers and the files they add."""
    digest = hashlib.sha256()
    sources = [HERE / "stack_images.py", HERE / "debian_rootfs.py", HERE / "oci_build.py"]
    for path in [*sources, *sorted(FILES.iterdir())]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class _Layers:
    """The layers the images are made of, each by name: its recipe and how it is made."""

    def __init__(self, builder: LayoutBuilder) -> None:
        self.builder = builder
        self.code = _code_version()
        self.made: dict[str, LayerBlob] = {}

    def get(self, name: str) -> LayerBlob:
        if name not in self.made:
            recipe, make = getattr(self, f"_{name.replace('-', '_')}")()
            self.made[name] = self.builder.layer(f"{name} {self.code} {recipe}", make)
        return self.made[name]

    # ---- the layers ---------------------------------------------------------------------

    def _static(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        layer = Layer()
        for directory in ("etc", "home/nonroot", "ko-app", "usr/local/bin"):
            layer.directory(directory)
        layer.directory("tmp", 0o1777)
        layer.file("etc/passwd", PASSWD.encode())
        layer.file("etc/group", GROUP.encode())
        layer.file("etc/nsswitch.conf", b"hosts: files dns\n")
        data = layer.tar()
        return hashlib.sha256(data).hexdigest(), _writer(data)

    def _program(self, path: str, binary: Path) -> tuple[str, Callable[[IO[bytes]], None]]:
        return file_identity(binary), lambda out: tar_files({path: (binary, 0o755)}, out)

    def _trillian_log_server(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program("ko-app/trillian_log_server", go_tool("trillian_log_server"))

    def _trillian_log_signer(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program("ko-app/trillian_log_signer", go_tool("trillian_log_signer"))

    def _rekor_server(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program("ko-app/rekor-server", go_tool("rekor-server"))

    def _fulcio(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program("ko-app/fulcio", go_tool("fulcio"))

    def _ct_server(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program("ko-app/ct_server", go_tool("ct_server"))

    def _webhook(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._program(
            "ko-app/webhook", cluster_tool("policy-controller", "policy-controller")
        )

    def _kubectl(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        kubectl = cluster_tool("kubernetes", "kubectl")
        return self._program("usr/bin/kubectl", kubectl)

    def _createtree(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        trillian = go_tool("createtree")
        standin = go_program_from_source(TOOLS / "scaffolding-createtree", "scaffolding-createtree")
        files = {
            "usr/local/bin/trillian-createtree": (trillian, 0o755),
            "usr/local/bin/createtree": (standin, 0o755),
        }
        recipe = f"{file_identity(trillian)} {standin}"
        return recipe, lambda out: tar_files(files, out)

    def _wait_tools(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        nc = go_program_from_source(TOOLS / "nc", "nc")
        curl = go_program_from_source(TOOLS / "curl", "curl")
        files = {"usr/local/bin/nc": (nc, 0o755), "usr/local/bin/curl": (curl, 0o755)}
        return f"{nc} {curl}", lambda out: tar_files(files, out)

    def _trillian_schema(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        schema = _trillian_schema()
        layer = Layer()
        layer.file("usr/share/trillian/storage.sql", schema)
        layer.file("docker-entrypoint-initdb.d/storage.sql", schema)
        data = layer.tar()
        return hashlib.sha256(data).hexdigest(), _writer(data)

    def _debian(
        self, packages: Sequence[str], programs: Sequence[str], finish: Callable[[Path], None]
    ) -> tuple[str, Callable[[IO[bytes]], None]]:
        debs = debian_rootfs.fetch(packages)
        recipe = " ".join(d.path.name for d in debs) + f" {file_identity(BUSYBOX)}"

        def make(out: IO[bytes]) -> None:
            with tempfile.TemporaryDirectory(dir=self.builder.directory) as scratch:
                root = Path(scratch, "root")
                debian_rootfs.unpack(debs, root)
                _shell_base(root)
                finish(root)
                debian_rootfs.check_libraries(root, ["bin/dash", *programs])
                tar_tree(root, out)

        return recipe, make

    def _shell(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._debian(SHELL_PACKAGES, (), lambda root: None)

    def _mariadb(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._debian(MARIADB_PACKAGES, MARIADB_PROGRAMS, _finish_mariadb)

    def _redis(self) -> tuple[str, Callable[[IO[bytes]], None]]:
        return self._debian(REDIS_PACKAGES, REDIS_PROGRAMS, _finish_redis)


def _writer(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(out: IO[bytes]) -> None:
        out.write(data)

    return write


def _shell_base(root: Path) -> None:
    """dash as /bin/sh, busybox's applets for the rest, the users, /tmp."""
    (root / "bin").mkdir(exist_ok=True)
    busybox = root / "bin" / "busybox"
    busybox.write_bytes(BUSYBOX.read_bytes())
    busybox.chmod(0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        target = root / applet
        if applet in SHADOWED_APPLETS or target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to("/bin/busybox")
    sh = root / "bin" / "sh"
    if sh.exists() or sh.is_symlink():
        sh.unlink()
    sh.symlink_to("dash")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)


def _install(source: Path, target: Path, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    target.chmod(mode)


def _finish_mariadb(root: Path) -> None:
    """What dpkg's maintainer scripts would do, and the db_server image's own files."""
    _install(FILES / "my.cnf", root / "etc/mysql/my.cnf")
    _install(FILES / "trillian.cnf", root / "etc/mysql/conf.d/trillian.cnf")
    _install(FILES / "mysql-status.sh", root / "etc/init.d/mysql", 0o755)
    _install(FILES / "docker-entrypoint.sh", root / "usr/local/bin/docker-entrypoint.sh", 0o755)
    _install(FILES / "createdb.sh", root / "usr/local/bin/createdb.sh", 0o755)
    for directory in ("run/mysqld", "var/lib/mysql", "docker-entrypoint-initdb.d"):
        (root / directory).mkdir(parents=True, exist_ok=True)


def _finish_redis(root: Path) -> None:
    for unneeded in ("etc/init.d", "etc/logrotate.d", "etc/default"):
        target = root / unneeded
        if target.is_dir():
            for child in sorted(target.rglob("*"), reverse=True):
                child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
            target.rmdir()
    (root / "data").mkdir(exist_ok=True)


def _trillian_schema() -> bytes:
    """Trillian v1.7.3's storage.sql from the module cache (downloaded if missing), its index
    statements made idempotent (MariaDB: CREATE INDEX IF NOT EXISTS), so createdb can rerun."""
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(modcache, TRILLIAN_SCHEMA)
    if not path.is_file():
        subprocess.run(
            ["go", "mod", "download", TRILLIAN_SCHEMA.split("/storage/")[0]],
            capture_output=True,
            check=True,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    lines = []
    for line in path.read_text().splitlines():
        for statement in ("CREATE UNIQUE INDEX ", "CREATE INDEX "):
            if line.startswith(statement):
                line = f"{statement}IF NOT EXISTS {line[len(statement) :]}"
                break
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def build_stack_images(directory: Path | None = None) -> StackImages:
    """Every image of the stack in one OCI layout under `directory` (default: the images
    cache), made once per content; seconds when nothing changed."""
    directory = directory or images_cache()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer of the layout at a time
        builder = LayoutBuilder(directory)
        layers = _Layers(builder)
        digests = {}
        for image in IMAGES:
            annotations = {
                "org.opencontainers.image.description": image.description,
                "org.opencontainers.image.ref.name": image.name,
            }
            blobs = [layers.get(layer) for layer in image.layers]
            digests[image.name] = builder.image(image.name, blobs, image.config, annotations)
    return StackImages(builder.layout.path, digests)


def push(
    images: StackImages,
    registry: str,
    run: Callable[[Sequence[str]], str],
    *,
    authfile: Path | None = None,
) -> dict[str, str]:
    """Copy every image of the layout into `registry` (host:port) under its upstream path and
    its content tag, digests unchanged, with skopeo run through `run` (for the internal
    registry: the cluster's guarded entry into its namespace). Returns name -> reference by
    digest; raises if the registry holds another digest than the layout's."""
    pushed = {}
    auth = [] if authfile is None else [str(authfile)]
    for image in IMAGES:
        tagged = f"docker://{registry}/{image.repository}:{images.content_tag(image)}"
        source = f"oci:{images.layout}:{image.name}"
        run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--preserve-digests",
                *_flag("--dest-authfile", auth),
                source,
                tagged,
            ]
        )
        manifest = run(["skopeo", "inspect", "--raw", *_flag("--authfile", auth), tagged])
        digest = f"sha256:{hashlib.sha256(manifest.encode()).hexdigest()}"
        if digest != images.digests[image.name]:
            raise StackImagesError(
                f"{tagged} holds {digest}, the layout has {images.digests[image.name]}"
            )
        pushed[image.name] = images.reference(image.name, registry)
    return pushed


def _flag(name: str, values: Sequence[str]) -> list[str]:
    return [part for value in values for part in (name, value)]
