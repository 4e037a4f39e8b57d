"""A private MariaDB (Debian's mariadb-server) for Trillian: its own data directory, loopback TCP
on a free port and a private unix socket; the system service and /etc/mysql are never used."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.stack.procs import LOOPBACK, ProcessManager, StackError
from tests.tools import ToolMissing, pinned_versions


def _program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise ToolMissing(f"{name} is not installed: install the Debian package mariadb-server")
    return found


def trillian_schema() -> Path:
    """storage.sql of the pinned Trillian, from the Go module cache (downloaded if absent)."""
    version = pinned_versions()["trillian_log_server"]
    module = f"github.com/google/trillian@{version}"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    try:
        modcache = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ToolMissing(
            f"cannot run `go env GOMODCACHE` to find the Trillian schema: {exc}"
        ) from exc
    schema = Path(modcache) / module / "storage" / "mysql" / "schema" / "storage.sql"
    if not schema.exists():
        result = subprocess.run(
            ["go", "mod", "download", module], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode != 0 or not schema.exists():
            raise ToolMissing(
                f"Trillian schema {schema} is missing and `go mod download {module}` failed: "
                f"{result.stderr.strip()}"
            )
    return schema


@dataclass
class MariaDB:
    procs: ProcessManager
    root: Path
    port: int
    name: str = "mariadb"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    def _base_args(self) -> list[str]:
        # --no-defaults first: never read /etc/mysql (the system service's socket and datadir).
        return ["--no-defaults", f"--datadir={self.datadir}", "--user=root"]

    def initialise(self) -> None:
        """Create the data directory with a root account that logs in over the private socket."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.procs.run(
            f"{self.name}-install-db",
            [
                _program("mariadb-install-db"),
                *self._base_args(),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
        )

    def start(self) -> None:
        self.procs.start(
            self.name,
            [
                _program("mariadbd"),
                *self._base_args(),
                f"--bind-address={LOOPBACK}",
                f"--port={self.port}",
                f"--socket={self.socket}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
            ],
            ready=self._answers,
            timeout=60,
            stop_grace=60,  # a clean InnoDB shutdown; SIGKILL only if it hangs
        )

    def _answers(self) -> bool:
        result = subprocess.run(
            [
                _program("mariadb-admin"),
                "--no-defaults",
                f"--socket={self.socket}",
                "-uroot",
                "ping",
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        self.procs.stop(self.name)

    def sql(
        self, statements: str, database: str | None = None, secrets: tuple[str, ...] = ()
    ) -> str:
        """Run SQL as root over the private socket (statements on stdin, not in argv)."""
        args = [
            _program("mariadb"),
            "--no-defaults",
            f"--socket={self.socket}",
            "-uroot",
            "--batch",
        ]
        if database:
            args.append(f"--database={database}")
        try:
            return self.procs.run(f"{self.name}-sql", args, input=statements.encode())
        except StackError as exc:
            message = str(exc)
            for secret in secrets:
                message = message.replace(secret, "***")
            raise StackError(message) from None

    def create_database(self, database: str, user: str, password: str, schema: Path) -> None:
        """Database, user and grants as Trillian's scripts/resetdb.sh makes them, then the schema
        (applied once: storage.sql is not idempotent)."""
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS {database};\n"
            f"CREATE USER IF NOT EXISTS '{user}'@'{LOOPBACK}' IDENTIFIED BY '{quoted}';\n"
            f"GRANT ALL ON {database}.* TO '{user}'@'{LOOPBACK}';\n"
            "FLUSH PRIVILEGES;\n",
            secrets=(password,),
        )
        tables = self.sql("SHOW TABLES LIKE 'Trees';", database=database)
        if "Trees" not in tables:
            self.sql(schema.read_text(), database=database)

    def dsn(self, database: str, user: str, password: str) -> str:
        """Go MySQL driver DSN over loopback TCP, as rekor's docker-compose writes it."""
        return (
            f"{user}:{password}@tcp({LOOPBACK}:{self.port})/{database}"
            "?parseTime=true&interpolateParams=true"
        )
