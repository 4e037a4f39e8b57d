"""The layers the stack's images are made of (stack_images.py puts them together), each with its
recipe: what names everything it is made of, so that the same recipe finds the layer already
made (oci_build.py). A change to this module, its helpers or stack_files/ changes every recipe.

- `static`: the small base of the Go servers: passwd (root, nonroot 65532, nobody), group,
  nsswitch.conf, /tmp; no shell, as upstream's distroless (ko) images;
- one layer per pinned Go program, in /ko-app as ko puts it (`PROGRAMS`);
- `shell`: dash as /bin/sh with busybox's applets for the rest (not its sh, ash or nc: Debian's
  static busybox sh runs its own applets before $PATH, and its nc has no -z);
- `mariadb`, `redis`: a shell base with the packages' dependency closure from Debian, checked
  complete (debian_rootfs.check_libraries), plus what dpkg's maintainer scripts would have done
  and the files the upstream images add (stack_files/);
- `trillian-schema`, `wait-tools` (Go nc and curl), `createtree` (the scaffolding stand-in and
  Trillian's createtree), `kubectl`;
- `static-site`: on the shell base, the nginx-unprivileged stand-in's script (busybox's httpd
  serving /usr/share/nginx/html on 8080), its httpd.conf and the empty document root.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import IO

from tests.cluster import debian_rootfs
from tests.cluster.binaries import cluster_tool
from tests.cluster.images import BUSYBOX, Layer
from tests.cluster.oci_build import LayerBlob, LayoutBuilder, file_identity, tar_files, tar_tree
from tests.tools import go_program_from_source, go_tool

# A layer's recipe, and what writes the layer's tar.
Recipe = tuple[str, Callable[[IO[bytes]], None]]

HERE = Path(__file__).parent
FILES = HERE / "stack_files"
TOOLS = HERE.parent / "tools"
NONROOT = "65532"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nginx:x:101:101:nginx:/nonexistent:/bin/false\n"
    "mysql:x:999:999:MariaDB:/nonexistent:/bin/false\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nnginx:x:101:\nmysql:x:999:\nnonroot:x:65532:\nnobody:x:65534:\n"
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
# What nginx's mime.types gives the files a TUF repository serves (busybox's httpd knows no .json).
HTTPD_CONF = b".json:application/json\n"
TRILLIAN_SCHEMA = "github.com/google/trillian@v1.7.3/storage/mysql/schema/storage.sql"

# Program layers: name -> (path in the image, where the pinned build is).
PROGRAMS: dict[str, tuple[str, Callable[[], Path]]] = {
    "trillian_log_server": ("ko-app/trillian_log_server", partial(go_tool, "trillian_log_server")),
    "trillian_log_signer": ("ko-app/trillian_log_signer", partial(go_tool, "trillian_log_signer")),
    "rekor-server": ("ko-app/rekor-server", partial(go_tool, "rekor-server")),
    "fulcio": ("ko-app/fulcio", partial(go_tool, "fulcio")),
    "ct_server": ("ko-app/ct_server", partial(go_tool, "ct_server")),
    "timestamp-server": ("ko-app/timestamp-server", partial(go_tool, "timestamp-server")),
    "webhook": ("ko-app/webhook", partial(cluster_tool, "policy-controller", "policy-controller")),
    "kubectl": ("usr/bin/kubectl", partial(cluster_tool, "kubernetes", "kubectl")),
}


def _code_version() -> str:
    """What the layers are made by: this module, its helpers and the files they add."""
    digest = hashlib.sha256()
    sources = [HERE / "stack_layers.py", HERE / "debian_rootfs.py", HERE / "oci_build.py"]
    for path in [*sources, *sorted(FILES.iterdir())]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class StackLayers:
    """The layers the images are made of, each by name: its recipe and how it is made."""

    def __init__(self, builder: LayoutBuilder) -> None:
        self.builder = builder
        self.code = _code_version()
        self.made: dict[str, LayerBlob] = {}

    def get(self, name: str) -> LayerBlob:
        """Layer `name`, made unless made before (by this run or with the same recipe)."""
        if name not in self.made:
            recipe, make = self.recipes()[name]()
            self.made[name] = self.builder.layer(f"{name} {self.code} {recipe}", make)
        return self.made[name]

    def recipes(self) -> dict[str, Callable[[], Recipe]]:
        programs = {
            name: partial(self._program, path, find) for name, (path, find) in PROGRAMS.items()
        }
        return {
            **programs,
            "static": self._static,
            "createtree": self._createtree,
            "wait-tools": self._wait_tools,
            "trillian-schema": self._trillian_schema,
            "shell": self._shell,
            "mariadb": self._mariadb,
            "redis": self._redis,
            "static-site": self._static_site,
        }

    # ---- the layers ---------------------------------------------------------------------

    def _static(self) -> Recipe:
        layer = Layer()
        for directory in ("etc", "home/nonroot", "ko-app", "usr/local/bin"):
            layer.directory(directory)
        layer.directory("tmp", 0o1777)
        layer.file("etc/passwd", PASSWD.encode())
        layer.file("etc/group", GROUP.encode())
        layer.file("etc/nsswitch.conf", b"hosts: files dns\n")
        data = layer.tar()
        return hashlib.sha256(data).hexdigest(), _writer(data)

    def _program(self, path: str, find: Callable[[], Path]) -> Recipe:
        binary = find()
        return file_identity(binary), lambda out: tar_files({path: (binary, 0o755)}, out)

    def _createtree(self) -> Recipe:
        trillian = go_tool("createtree")
        standin = go_program_from_source(TOOLS / "scaffolding-createtree", "scaffolding-createtree")
        files = {
            "usr/local/bin/trillian-createtree": (trillian, 0o755),
            "usr/local/bin/createtree": (standin, 0o755),
        }
        recipe = f"{file_identity(trillian)} {standin}"
        return recipe, lambda out: tar_files(files, out)

    def _wait_tools(self) -> Recipe:
        nc = go_program_from_source(TOOLS / "nc", "nc")
        curl = go_program_from_source(TOOLS / "curl", "curl")
        files = {"usr/local/bin/nc": (nc, 0o755), "usr/local/bin/curl": (curl, 0o755)}
        return f"{nc} {curl}", lambda out: tar_files(files, out)

    def _static_site(self) -> Recipe:
        layer = Layer()
        layer.file("etc/httpd.conf", HTTPD_CONF)
        layer.file("usr/local/bin/static-site", (FILES / "static-site.sh").read_bytes(), 0o755)
        for directory in ("usr/share/nginx", "usr/share/nginx/html"):
            layer.directory(directory)
        data = layer.tar()
        return hashlib.sha256(data).hexdigest(), _writer(data)

    def _trillian_schema(self) -> Recipe:
        schema = _trillian_schema()
        layer = Layer()
        layer.file("usr/share/trillian/storage.sql", schema)
        layer.file("docker-entrypoint-initdb.d/storage.sql", schema)
        data = layer.tar()
        return hashlib.sha256(data).hexdigest(), _writer(data)

    def _debian(
        self, packages: Sequence[str], programs: Sequence[str], finish: Callable[[Path], None]
    ) -> Recipe:
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

    def _shell(self) -> Recipe:
        return self._debian(SHELL_PACKAGES, (), lambda root: None)

    def _mariadb(self) -> Recipe:
        return self._debian(MARIADB_PACKAGES, MARIADB_PROGRAMS, _finish_mariadb)

    def _redis(self) -> Recipe:
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
