"""A real private Sigstore stack on loopback: MariaDB, Trillian (log server and signer), Rekor v1
with a file signer, the CT log (ct_server), Fulcio with a file CA, and the tests' own OIDC issuer
whose tokens look like Kubernetes service-account tokens.

    stack = SigstoreStack(tmp_dir)
    stack.start()                         # first start creates keys, database, trees, configs
    token = stack.token("system:serviceaccount:ci:builder")
    stack.trusted_root                    # assembled by provisioner.stack.trusted_root
    stack.stop(); stack.start()           # same ports, keys, trees: nothing rotates

Every key is created once, before the first start, so restarts never rotate trust. Passwords are
kept out of command lines and logs: Trillian reads its DSN from a flag file, Fulcio its CA key
password from a serve config file, ct_server from its log config (all mode 0600).

Ports are picked free on 127.0.0.1 at construction and kept for the stack's life. Listeners the
servers cannot bind to loopback:
  * rekor-server binds its metrics on a hard-coded ":2112" (all interfaces) and ignores a bind
    failure, so a second Rekor would just run without metrics; still, only one stack runs at a
    time in one test session (`SigstoreStack.start` refuses a second).
  * fulcio binds `--metrics-port` on all interfaces (no host flag); we give it a free port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from provisioner.stack.trusted_root import (
    CertificateAuthority,
    TransparencyLog,
    TrustedRootSpec,
    write_trusted_root,
)
from tests.stack import pki
from tests.stack.mariadb import MariaDB, trillian_schema
from tests.stack.oidc import OIDCIssuer, kubernetes_identity
from tests.stack.procs import LOOPBACK, ProcessManager, StackError, free_port, http_ok, tcp_open
from tests.tools import go_tool

CT_PREFIX = "sigstore"
DEFAULT_SUBJECT = "system:serviceaccount:default:builder"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
REKOR_API_ENDPOINTS = (
    "getLogInfo,getPublicKey,getLogProof,createLogEntry,getLogEntryByIndex,getLogEntryByUUID,"
    "searchLogQuery"
)
# Start order; stop goes the other way. The OIDC issuer (a thread, not a process) starts before
# fulcio; the CT log must serve before fulcio starts.
SERVICES = ("mariadb", "trillian_log_server", "trillian_log_signer", "rekor", "ctlog", "fulcio")
# Trillian's servers wait 5-10 s on SIGTERM before they exit; their state is all in MariaDB
# (stopped cleanly, after them), so they get SIGKILL after a short grace.
TRILLIAN_STOP_GRACE = 1.0
GO_TOOLS = ("trillian_log_server", "trillian_log_signer", "createtree", "rekor-server", "ct_server")


class SigstoreStack:
    _running_lock = threading.Lock()
    _running: ClassVar[SigstoreStack | None] = None

    def __init__(self, workdir: Path, rekor_hostname: str = LOOPBACK) -> None:
        self.dir = workdir
        self.keys = workdir / "keys"
        self.config = workdir / "config"
        for d in (self.keys, self.config, workdir / "home"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keys, 0o700)
        os.chmod(self.config, 0o700)
        # Fails with ToolMissing before anything starts if a program is not built.
        self.tools = {name: go_tool(name) for name in (*GO_TOOLS, "fulcio")}
        self.procs = ProcessManager(
            workdir / "logs",
            # Servers read $HOME/.<name>.yaml and the like: point them at an empty directory.
            base_env={"HOME": str(workdir / "home"), "TZ": "UTC"},
        )
        self.ports = {
            name: free_port()
            for name in (
                "mariadb",
                "trillian_rpc",
                "trillian_http",
                "signer_rpc",
                "signer_http",
                "rekor",
                "ctlog",
                "fulcio_http",
                "fulcio_grpc",
                "fulcio_metrics",
                "oidc",
            )
        }
        self.rekor_hostname = rekor_hostname
        self.db = MariaDB(self.procs, workdir / "mariadb", self.ports["mariadb"])
        self.oidc = OIDCIssuer()
        self.rekor_tree_id: int | None = None
        self.ctlog_tree_id: int | None = None
        self.db_password = pki.password()
        self.fulcio_key_password = pki.password()
        self.ctlog_key_password = pki.password()
        self._prepared = False
        self.start_seconds: list[float] = []  # wall time of each start()
        self._schema_loaded = False
        self._create_keys()
        self._write_trillian_flags()

    # -- addresses and files ----------------------------------------------------------------

    @property
    def rekor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['rekor']}"

    @property
    def fulcio_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['fulcio_http']}"

    @property
    def ctlog_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['ctlog']}/{CT_PREFIX}"

    @property
    def oidc_issuer(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['oidc']}"

    @property
    def rekor_key(self) -> Path:
        return self.keys / "rekor-key.pem"

    @property
    def rekor_public_key(self) -> Path:
        return self.keys / "rekor-pub.pem"

    @property
    def fulcio_key(self) -> Path:
        return self.keys / "fulcio-key.pem"

    @property
    def fulcio_root(self) -> Path:
        """The Fulcio CA chain file (here a single self-signed root)."""
        return self.keys / "fulcio-root.pem"

    @property
    def ctlog_key(self) -> Path:
        return self.keys / "ctlog-key.pem"

    @property
    def ctlog_public_key(self) -> Path:
        return self.keys / "ctlog-pub.pem"

    @property
    def trusted_root(self) -> Path:
        return self.dir / "trusted_root.json"

    @property
    def signing_config(self) -> Path:
        return self.dir / "signing_config.json"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.db_password, self.fulcio_key_password, self.ctlog_key_password)

    def token(self, subject: str = DEFAULT_SUBJECT, **kwargs: Any) -> str:
        """An ID token from the stack's issuer that Fulcio accepts (see OIDCIssuer.token)."""
        return self.oidc.token(subject, **kwargs)

    @staticmethod
    def identity(subject: str = DEFAULT_SUBJECT) -> str:
        """The certificate identity (SAN URI) Fulcio issues for `subject`."""
        return kubernetes_identity(subject)

    # -- keys, once --------------------------------------------------------------------------

    def _create_keys(self) -> None:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        # Logs' keys come into use now; a minute of slack for clocks that tick in seconds.
        self.keys_created = now - dt.timedelta(minutes=1)

        rekor = pki.ec_key()
        pki.write_private(self.rekor_key, pki.pkcs8_pem(rekor))
        pki.write_public(self.rekor_public_key, pki.public_pem(rekor))

        fulcio = pki.ec_key()
        root = pki.fulcio_root(fulcio, not_before=now - dt.timedelta(minutes=5))
        pki.write_private(self.fulcio_key, pki.pkcs8_pem(fulcio, self.fulcio_key_password))
        pki.write_public(self.fulcio_root, pki.cert_pem(root))

        ctlog = pki.ec_key()
        pki.write_private(self.ctlog_key, pki.legacy_encrypted_pem(ctlog, self.ctlog_key_password))
        pki.write_public(self.ctlog_public_key, pki.public_pem(ctlog))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every service (first time: also database, trees, configs, trusted root)."""
        began = time.monotonic()
        with SigstoreStack._running_lock:
            if SigstoreStack._running not in (None, self):
                raise StackError(
                    "another Sigstore stack is running in this session; rekor-server's metrics "
                    "port :2112 is hard-coded, so run one stack at a time"
                )
            SigstoreStack._running = self
        try:
            self._start_database()
            self.start_service("trillian_log_server")
            self.start_service("trillian_log_signer")
            if self.rekor_tree_id is None:
                self.rekor_tree_id = self._create_tree("rekor")
            if self.ctlog_tree_id is None:
                self.ctlog_tree_id = self._create_tree("ctlog")
            if not self._prepared:
                self._write_configs()
            self.start_service("rekor")
            self.start_service("ctlog")
            self.oidc.start(self.ports["oidc"])
            self.start_service("fulcio")
            if not self._prepared:
                self._write_trusted_root()
                self._write_signing_config()
                self._prepared = True
        except BaseException:
            self.stop()
            raise
        self.start_seconds.append(time.monotonic() - began)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Everything down inside (servers, database, OIDC issuer); started again afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def stop(self) -> None:
        """Stop every service, the OIDC issuer and the database (nothing answers afterwards)."""
        try:
            for name in reversed(SERVICES):
                if name == "fulcio":
                    self.procs.stop(name)
                    self.oidc.stop()
                else:
                    self.procs.stop(name)
        finally:
            with SigstoreStack._running_lock:
                if SigstoreStack._running is self:
                    SigstoreStack._running = None

    def close(self) -> None:
        self.stop()

    def running(self, name: str) -> bool:
        process = self.procs.processes.get(name)
        return process is not None and process.running()

    def restart_service(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)

    def stop_service(self, name: str) -> None:
        if name == "mariadb":
            self.db.stop()
        else:
            self.procs.stop(name)

    def start_service(self, name: str) -> None:
        starters = {
            "mariadb": self._start_database,
            "trillian_log_server": self._start_log_server,
            "trillian_log_signer": self._start_log_signer,
            "rekor": self._start_rekor,
            "ctlog": self._start_ctlog,
            "fulcio": self._start_fulcio,
        }
        if name not in starters:
            raise ValueError(f"unknown service {name!r}; one of {', '.join(starters)}")
        if not self.running(name):
            starters[name]()

    def log_tails(self) -> str:
        return self.procs.log_tails()

    # -- services ----------------------------------------------------------------------------

    def _start_database(self) -> None:
        if self.running("mariadb"):
            return
        if not self.db.datadir.exists():
            self.db.initialise()
        self.db.start()
        if not self._schema_loaded:
            self.db.create_database("trillian", "trillian", self.db_password, trillian_schema())
            self._schema_loaded = True

    @property
    def _trillian_flags(self) -> Path:
        return self.config / "trillian.flags"

    def _start_log_server(self) -> None:
        self.procs.start(
            "trillian_log_server",
            [
                self.tools["trillian_log_server"],
                f"--config={self._trillian_flags}",
                "--storage_system=mysql",
                "--quota_system=noop",
                f"--rpc_endpoint={LOOPBACK}:{self.ports['trillian_rpc']}",
                f"--http_endpoint={LOOPBACK}:{self.ports['trillian_http']}",
                "--alsologtostderr",
            ],
            ready=lambda: (
                tcp_open(LOOPBACK, self.ports["trillian_rpc"])()
                and http_ok(f"http://{LOOPBACK}:{self.ports['trillian_http']}/healthz")()
            ),
            stop_grace=TRILLIAN_STOP_GRACE,
        )

    def _start_log_signer(self) -> None:
        self.procs.start(
            "trillian_log_signer",
            [
                self.tools["trillian_log_signer"],
                f"--config={self._trillian_flags}",
                "--storage_system=mysql",
                "--quota_system=noop",
                "--force_master",
                "--sequencer_interval=50ms",
                f"--rpc_endpoint={LOOPBACK}:{self.ports['signer_rpc']}",
                f"--http_endpoint={LOOPBACK}:{self.ports['signer_http']}",
                "--alsologtostderr",
            ],
            ready=http_ok(f"http://{LOOPBACK}:{self.ports['signer_http']}/healthz"),
            stop_grace=TRILLIAN_STOP_GRACE,
        )

    def _create_tree(self, name: str) -> int:
        out = self.procs.run(
            f"createtree-{name}",
            [
                self.tools["createtree"],
                f"--admin_server={LOOPBACK}:{self.ports['trillian_rpc']}",
                f"--display_name={name}",
                "--alsologtostderr",
            ],
            timeout=60,
        )
        try:
            return int(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise self.procs.error(f"createtree {name} printed no tree id: {out!r}") from None

    def _start_rekor(self) -> None:
        # Metrics: hard-coded ":2112" on all interfaces (see the module docstring).
        assert self.rekor_tree_id is not None
        self.procs.start(
            "rekor",
            [
                self.tools["rekor-server"],
                "serve",
                f"--trillian_log_server.address={LOOPBACK}",
                f"--trillian_log_server.port={self.ports['trillian_rpc']}",
                f"--trillian_log_server.tlog_id={self.rekor_tree_id}",
                f"--rekor_server.address={LOOPBACK}",
                f"--port={self.ports['rekor']}",
                f"--rekor_server.hostname={self.rekor_hostname}",
                f"--rekor_server.signer={self.rekor_key}",
                "--enable_retrieve_api=false",
                f"--enabled_api_endpoints={REKOR_API_ENDPOINTS}",
                "--log_type=dev",
            ],
            ready=http_ok(f"{self.rekor_url}/api/v1/log"),
        )

    def _start_ctlog(self) -> None:
        self.procs.start(
            "ctlog",
            [
                self.tools["ct_server"],
                f"--log_config={self.config / 'ct_server.cfg'}",
                f"--log_rpc_server={LOOPBACK}:{self.ports['trillian_rpc']}",
                f"--http_endpoint={LOOPBACK}:{self.ports['ctlog']}",
                f"--metrics_endpoint={LOOPBACK}:{self.ports['ctlog']}",
                "--alsologtostderr",
            ],
            ready=http_ok(f"{self.ctlog_url}/ct/v1/get-sth"),
        )

    def _start_fulcio(self) -> None:
        # The CA key password comes from the serve config file (-c), never the command line.
        # --metrics-port binds on all interfaces (there is no host flag for it).
        self.procs.start(
            "fulcio",
            [
                self.tools["fulcio"],
                "serve",
                f"--config={self.config / 'fulcio-serve.yaml'}",
                f"--config-path={self.config / 'fulcio-config.json'}",
                f"--host={LOOPBACK}",
                f"--port={self.ports['fulcio_http']}",
                f"--grpc-host={LOOPBACK}",
                f"--grpc-port={self.ports['fulcio_grpc']}",
                f"--metrics-port={self.ports['fulcio_metrics']}",
                f"--legacy-unix-domain-socket=@fulcio-legacy-{os.getpid()}-{id(self):x}",
                "--ca=fileca",
                f"--fileca-cert={self.fulcio_root}",
                f"--fileca-key={self.fulcio_key}",
                "--fileca-watch=false",
                f"--ct-log-url={self.ctlog_url}",
                f"--ct-log-public-key-path={self.ctlog_public_key}",
                "--log_type=dev",
            ],
            ready=lambda: (
                http_ok(f"{self.fulcio_url}/healthz")()
                and http_ok(f"{self.fulcio_url}/api/v1/rootCert")()
            ),
        )

    # -- configuration files, once -------------------------------------------------------------

    def _write_trillian_flags(self) -> None:
        dsn = self.db.dsn("trillian", "trillian", self.db_password)
        pki.write_private(self._trillian_flags, f"--mysql_uri='{dsn}'\n".encode())

    def _write_configs(self) -> None:
        ct_config = (
            "config {\n"
            f"  log_id: {self.ctlog_tree_id}\n"
            f'  prefix: "{CT_PREFIX}"\n'
            f'  roots_pem_file: "{self.fulcio_root}"\n'
            "  private_key {\n"
            "    [type.googleapis.com/keyspb.PEMKeyFile] {\n"
            f'      path: "{self.ctlog_key}"\n'
            f'      password: "{self.ctlog_key_password}"\n'
            "    }\n"
            "  }\n"
            '  ext_key_usages: "CodeSigning"\n'
            "  max_merge_delay_sec: 86400\n"
            "  expected_merge_delay_sec: 120\n"
            "}\n"
        )
        pki.write_private(self.config / "ct_server.cfg", ct_config.encode())
        pki.write_private(
            self.config / "fulcio-serve.yaml",
            f"fileca-key-passwd: {json.dumps(self.fulcio_key_password)}\n".encode(),
        )
        # One issuer, ours, and nothing else: fulcio's defaults would reach public hosts.
        fulcio_config = {
            "OIDCIssuers": {
                self.oidc_issuer: {
                    "IssuerURL": self.oidc_issuer,
                    "ClientID": "sigstore",
                    "Type": "kubernetes",
                }
            },
            "MetaIssuers": {},
        }
        (self.config / "fulcio-config.json").write_text(json.dumps(fulcio_config, indent=2))

    def _write_trusted_root(self) -> None:
        # The public key the running Rekor serves must be the one we gave it.
        with urllib.request.urlopen(f"{self.rekor_url}/api/v1/log/publicKey", timeout=10) as r:
            served = r.read()
        if served.strip() != self.rekor_public_key.read_bytes().strip():
            raise self.procs.error("rekor serves a public key other than the one it was given")
        spec = TrustedRootSpec(
            tlogs=[
                TransparencyLog.from_pem(
                    self.rekor_url, self.rekor_public_key.read_bytes(), start=self.keys_created
                )
            ],
            certificate_authorities=[
                CertificateAuthority.from_pem(self.fulcio_url, self.fulcio_root.read_bytes())
            ],
            ctlogs=[
                TransparencyLog.from_pem(
                    self.ctlog_url, self.ctlog_public_key.read_bytes(), start=self.keys_created
                )
            ],
        )
        write_trusted_root(spec, self.trusted_root)

    def _write_signing_config(self) -> None:
        start = self.keys_created.strftime("%Y-%m-%dT%H:%M:%SZ")

        def service(url: str) -> dict[str, Any]:
            return {
                "url": url,
                "majorApiVersion": 1,
                "validFor": {"start": start},
                "operator": "airgap-tests",
            }

        document = {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [service(self.fulcio_url)],
            "oidcUrls": [service(self.oidc_issuer)],
            "rekorTlogUrls": [service(self.rekor_url)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }
        self.signing_config.write_text(json.dumps(document, indent=2) + "\n")
