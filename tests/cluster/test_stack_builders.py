"""The pieces the stack's images are built from, checked on the host: the library check sees a
library missing from a Debian rootfs, layers do not depend on file times or owners, and the init
containers' nc and curl stand-ins answer as the charts' scripts expect (exit codes included)."""

from __future__ import annotations

import http.server
import io
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import debian_rootfs
from tests.cluster.oci_build import tar_tree
from tests.cluster.stack_layers import REDIS_PACKAGES, REDIS_PROGRAMS, TOOLS
from tests.tools import go_program_from_source


def test_the_library_check_finds_a_library_missing_from_the_rootfs(tmp_path: Path) -> None:
    debs = debian_rootfs.fetch(REDIS_PACKAGES)
    root = tmp_path / "root"
    debian_rootfs.unpack(debs, root)
    debian_rootfs.check_libraries(root, REDIS_PROGRAMS)  # complete: no error
    debian_rootfs.unpack([d for d in debs if d.package != "libstdc++6"], root)
    # The loader still looks in its default directories: the host's copy is found, and refused.
    with pytest.raises(debian_rootfs.DebianError, match=r"redis-cli: libstdc\+\+\.so\.6 => "):
        debian_rootfs.check_libraries(root, REDIS_PROGRAMS)


def test_a_layer_does_not_depend_on_file_times_or_owners(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "f").write_text("content")
    (tmp_path / "link").symlink_to("etc/f")

    def layer() -> bytes:
        out = io.BytesIO()
        tar_tree(tmp_path, out)
        return out.getvalue()

    first = layer()
    os.utime(tmp_path / "etc" / "f", (1, 1))
    os.utime(tmp_path / "etc", (2, 2))
    os.chown(tmp_path / "etc" / "f", 1234, 1234)  # as a user's dpkg-deb -x leaves them
    assert layer() == first


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    """An HTTP server on loopback: 200 with the Authorization header it got on /echo, 404
    elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/echo":
                self.send_error(404)
                return
            body = f"auth={self.headers.get('Authorization')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = go_program_from_source(TOOLS / program, program)
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


def test_nc_z_says_whether_a_port_accepts_connections(web: str) -> None:
    host, port = web.split(":")
    assert _run("nc", "-z", "-w", "2", host, port).returncode == 0
    assert _run("nc", "-z", "-w", "2", host, str(_closed_port())).returncode == 1
    assert _run("nc", host, port).returncode == 2  # only -z is implemented, and says so


def test_curl_prints_the_body_and_sends_the_header(web: str) -> None:
    result = _run("curl", "--fail", "--header", "Authorization: Bearer t0k", f"http://{web}/echo")
    assert (result.returncode, result.stdout) == (0, "auth=Bearer t0k")


def test_curl_exit_codes_are_curls(web: str) -> None:
    assert _run("curl", "--max-time", "5", f"http://{web}/absent").returncode == 0
    assert _run("curl", "-fsS", f"http://{web}/absent").returncode == 22
    assert _run("curl", "-s", f"http://127.0.0.1:{_closed_port()}/").returncode == 7
    assert _run("curl", "--unknown", f"http://{web}/").returncode == 2
