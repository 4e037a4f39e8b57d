"""A server alone in a network namespace of its own, and a thread of the test inside it.

For servers that bind a hard-coded port on every interface and exit when it is taken (the
timestamp-server's metrics on :2112): alone in their namespace they meet no other test's server,
and no other test meets them. The namespace has only loopback (a server there must listen on
0.0.0.0: loopback comes up after it starts); the test reaches the server from one thread that
joined the namespace (a network namespace is per thread), so the rest of the test
process stays where it was.

    process = procs.start("timestamp-server", isolated([binary, "serve", ...]))
    with NamespaceThread(process.pid) as inside:
        inside.call(lambda: urllib.request.urlopen("http://127.0.0.1:5555/ping").read())
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
# unshare(1) makes the namespace and execs the server, the same pid all along (no shell in
# between: a shell drops environment variables whose names it cannot hold, like the
# timestamp-server's DISABLE-NTP-MONITORING). NamespaceThread brings loopback up.
ISOLATE = ("unshare", "--net", "--")


def isolated(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    return [*ISOLATE, *(os.fspath(a) for a in argv)]


class NamespaceThread:
    """Runs calls in one thread that has joined the network namespace of process `pid`."""

    def __init__(self, pid: int, timeout: float = 10.0) -> None:
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + timeout
        while os.readlink(f"/proc/{pid}/ns/net") == ours:  # unshare(1) has not run yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {pid} did not enter a network namespace of its own")
            time.sleep(0.02)
        namespace = f"/proc/{pid}/ns/net"
        subprocess.run(
            ["nsenter", f"--net={namespace}", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
            timeout=10,
        )
        self._fd = os.open(namespace, os.O_RDONLY)
        self._pool = ThreadPoolExecutor(max_workers=1, initializer=_join, initargs=(self._fd,))

    def call(self, function: Callable[[], T]) -> T:
        return self._pool.submit(function).result()

    def close(self) -> None:
        self._pool.shutdown()
        os.close(self._fd)

    def __enter__(self) -> NamespaceThread:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _join(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")
