"""Push bundle files to a host over SSH/SFTP, resumably, verified on the far side.

    items = push_order([TransferItem(path, path.name, size, sha256), ...])
    report = push_files(items, "ops@bastion:/srv/airgap", port=22, identity_file=key)

Each file goes to `<remote_name>.partial` in the destination directory. An existing partial is
continued from its size (append mode), so an interrupted push resumes file by file and byte
by byte. When a partial is complete its SHA-256 is computed on the remote side, by running
`sha256sum` over an exec channel or, where the account has no shell (an SFTP-only drop box),
by reading the file back over SFTP and hashing it here; only a match is renamed into place
with the atomic `posix-rename@openssh.com`. A final file that is already there with the right
size and hash is skipped; a wrong one is replaced. A partial whose hash comes out wrong is
deleted (so the next run starts it afresh) and reported as a `VerificationFailure`.

Order matters: a receiver that watches the directory must never see a parts list (or a
bundle manifest) naming parts that have not arrived. Files are sent in the order given and
the push stops at the first failure; `push_order` moves the lists and their signatures to the
end (signature first, list last, so the list's arrival means everything is there).

Connecting (the destination, the host key checked against known_hosts, the login) is ssh.py's.

Memory stays fixed: files are streamed in chunks both ways and read-back hashing uses a
bounded window of pipelined SFTP reads. Expected failures are one-line `AirgapError`s.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import re
import shlex
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paramiko

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.oci.digests import SHA256_HEX
from provisioner.transfer.ssh import (
    Destination,
    PushError,
    connect,
    one_line,
    parse_destination,
)

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
# The manifests that must arrive after the files they list (see push_order).
BUNDLE_MANIFEST = "airgap-bundle.json"
PARTS_LIST_SUFFIX = ".parts.json"

_CHUNK = 256 * 1024  # local read size; paramiko splits writes into 32 KiB SFTP requests
_READ_REQUEST = 32 * 1024  # the SFTP read size every server accepts
_READ_WINDOW = 64  # pipelined read requests in flight when hashing over SFTP (2 MiB)
_SHA256SUM_LINE = re.compile(rb"\\?([0-9a-f]{64}) ")
Progress = Callable[[int, int], None]
Status = Literal["sent", "resumed", "replaced", "present"]


@dataclass(frozen=True)
class TransferItem:
    """A local file and what it must be on the far side."""

    local_path: Path
    remote_name: str  # relative POSIX path under the destination directory
    size: int
    sha256: str  # lowercase hex


@dataclass
class ItemResult:
    remote_name: str
    status: Status  # present: already there with the right hash, nothing sent
    size: int
    bytes_sent: int = 0
    resumed_from: int = 0
    verified_by: Literal["sha256sum", "sftp"] | None = None


@dataclass
class PushReport:
    destination: str
    host_key: str  # "ssh-ed25519 SHA256:..."
    host_key_added: bool
    items: list[ItemResult] = field(default_factory=list)

    @property
    def bytes_sent(self) -> int:
        return sum(item.bytes_sent for item in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "hostKey": self.host_key,
            "hostKeyAdded": self.host_key_added,
            "bytesSent": self.bytes_sent,
            "items": [
                {
                    "name": r.remote_name,
                    "status": r.status,
                    "size": r.size,
                    "bytesSent": r.bytes_sent,
                    "resumedFrom": r.resumed_from,
                    "verifiedBy": r.verified_by,
                }
                for r in self.items
            ],
        }


def is_list_name(remote_name: str) -> bool:
    """A parts list or bundle manifest: it names other files, so it goes last."""
    base = posixpath.basename(remote_name)
    return base == BUNDLE_MANIFEST or base.endswith(PARTS_LIST_SUFFIX)


def push_order(items: Iterable[TransferItem]) -> list[TransferItem]:
    """Parts first, then each list's `.sig`, then the lists; otherwise the given order."""

    def rank(item: TransferItem) -> int:
        if is_list_name(item.remote_name):
            return 2
        stem = item.remote_name.removesuffix(".sig")
        return 1 if stem != item.remote_name and is_list_name(stem) else 0

    return sorted(items, key=rank)  # stable


def push_files(
    items: Sequence[TransferItem],
    destination: str | Destination,
    *,
    port: int = 22,
    known_hosts: Path | None = None,
    accept_new_host_key: bool = False,
    identity_file: Path | None = None,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float = 20.0,
) -> PushReport:
    """Send `items`, in order, into the destination directory, which must exist.

    `progress(done, total)` counts bytes of all items, those already there included; an
    exception it raises stops the push and leaves the current `.partial` to be resumed.
    """
    if isinstance(destination, Destination):
        dest = destination
    else:
        dest = parse_destination(destination, port)
    _check_items(items)
    env = os.environ if environ is None else environ
    connection = connect(
        dest,
        known_hosts=known_hosts or Path.home() / ".ssh" / "known_hosts",
        accept_new_host_key=accept_new_host_key,
        identity_file=identity_file,
        env=env,
        timeout=connect_timeout,
    )
    client = connection.client
    try:
        report = PushReport(
            destination=str(dest),
            host_key=connection.host_key,
            host_key_added=connection.host_key_added,
        )
        with _remote_errors(dest, "open an SFTP session on"):
            sftp = client.open_sftp()
        try:
            session = _Session(client, sftp, dest, progress, sum(i.size for i in items))
            for item in items:
                report.items.append(session.push(item))
        finally:
            sftp.close()
        return report
    finally:
        client.close()


def _check_items(items: Sequence[TransferItem]) -> None:
    seen: set[str] = set()
    for item in items:
        name = item.remote_name
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise UsageError(f"remote name {name!r} must be a relative path inside the destination")
        if name in seen:
            raise UsageError(f"remote name {name!r} appears twice in the push list")
        seen.add(name)
        if not SHA256_HEX.fullmatch(item.sha256) or item.size < 0:
            raise UsageError(f"{name}: expected sha256 must be 64 lowercase hex digits, size >= 0")
        try:
            actual = item.local_path.stat()
        except OSError as exc:
            raise UsageError(f"cannot read {item.local_path}: {exc.strerror}") from None
        if not stat.S_ISREG(actual.st_mode):
            raise UsageError(f"{item.local_path} is not a regular file")
        if actual.st_size != item.size:
            raise UsageError(
                f"{item.local_path} is {actual.st_size} bytes, the list says {item.size}: "
                "rebuild or re-verify the bundle"
            )


@contextmanager
def _remote_errors(dest: Destination, doing: str, path: str = "") -> Iterator[None]:
    """Turn SFTP/SSH failures into one-line errors that name the remote path."""
    target = f"{dest.host}:{path}" if path else dest.host
    try:
        yield
    except AirgapError:
        raise
    except (EOFError, paramiko.SSHException, ConnectionError) as exc:
        raise PushError(
            f"connection to {dest.host} lost while trying to {doing} {target} "
            f"({one_line(exc)}); run the push again to resume"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UsageError(f"cannot {doing} {target}: no such file or directory") from None
        if exc.errno == errno.EACCES:
            raise PushError(f"cannot {doing} {target}: permission denied for {dest.user}") from None
        # SFTP v3 reports ENOSPC, EROFS, EDQUOT... all as a bare "Failure".
        raise PushError(
            f"cannot {doing} {target}: {one_line(exc)} (is the remote disk full or read-only?)"
        ) from None


class _Session:
    """One SFTP session into the destination directory."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        sftp: paramiko.SFTPClient,
        dest: Destination,
        progress: Progress | None,
        total: int,
    ) -> None:
        self.client = client
        self.sftp = sftp
        self.dest = dest
        self.progress = progress
        self.total = total
        self.done = 0
        self.exec_works: bool | None = None  # unknown until the first try
        self.made_dirs: set[str] = set()
        with _remote_errors(dest, "open the remote directory", dest.path):
            try:
                mode = sftp.stat(dest.path).st_mode
            except FileNotFoundError:
                raise UsageError(
                    f"remote directory {dest.host}:{dest.path} does not exist: create it first "
                    "(the push does not guess where a bundle belongs)"
                ) from None
            if mode is None or not stat.S_ISDIR(mode):
                raise UsageError(f"remote path {dest.host}:{dest.path} is not a directory")
            # Absolute, so that exec channels (which start in the home directory) agree.
            self.base = sftp.normalize(dest.path)

    def push(self, item: TransferItem) -> ItemResult:
        final = posixpath.join(self.base, item.remote_name)
        partial = final + PARTIAL_SUFFIX
        result = ItemResult(item.remote_name, "sent", item.size)
        final_stat = self._stat(final)
        if final_stat is not None:
            if not stat.S_ISREG(final_stat.st_mode or 0):
                raise UsageError(f"remote {self.dest.host}:{final} exists and is not a file")
            if final_stat.st_size == item.size:
                digest, result.verified_by = self._remote_sha256(final, item.size)
                if digest == item.sha256:
                    result.status = "present"
                    self._discard(partial)  # a leftover from an earlier, interrupted run
                    self._advance(item.size)
                    log.info("%s is already there", item.remote_name)
                    return result
            result.status = "replaced"
        self._make_parents(item.remote_name)
        partial_stat = self._stat(partial)
        offset = (partial_stat.st_size or 0) if partial_stat is not None else 0
        if offset > item.size:
            # Longer than the file can be: not a prefix of it.
            with _remote_errors(self.dest, "remove", partial):
                self.sftp.remove(partial)
            offset = 0
        if offset and result.status == "sent":
            result.status = "resumed"
        result.resumed_from = offset
        self._advance(offset)
        local_digest = self._upload(item, partial, offset, result)
        if local_digest != item.sha256:
            self._discard(partial)
            raise VerificationFailure(
                f"local file {item.local_path} no longer has the expected sha256 (it changed "
                "after the list was made): rebuild or re-verify the bundle"
            )
        self._verify_and_rename(item, partial, final, result)
        log.info("%s: %s, %d bytes sent", item.remote_name, result.status, result.bytes_sent)
        return result

    def _upload(self, item: TransferItem, partial: str, offset: int, result: ItemResult) -> str:
        """Append the rest of the file to the partial; return the local file's sha256."""
        hasher = hashlib.sha256()
        with item.local_path.open("rb") as local:
            left = offset
            while left:  # the part already on the far side, hashed but not sent
                chunk = local.read(min(_CHUNK, left))
                if not chunk:
                    break
                hasher.update(chunk)
                left -= len(chunk)
            left = item.size - offset
            mode = "ab" if offset else "wb"
            with (
                _remote_errors(self.dest, "write", partial),
                self.sftp.open(partial, mode) as remote,
            ):
                remote.set_pipelined(True)  # acks are checked on close, not per write
                while left > 0:
                    chunk = local.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    hasher.update(chunk)
                    remote.write(chunk)
                    left -= len(chunk)
                    result.bytes_sent += len(chunk)
                    self._advance(len(chunk))
            hasher.update(local.read(1))  # a file that grew no longer matches
        return hasher.hexdigest()

    def _verify_and_rename(
        self, item: TransferItem, partial: str, final: str, result: ItemResult
    ) -> None:
        size = self._stat(partial)
        if size is None or size.st_size != item.size:
            self._discard(partial)
            raise VerificationFailure(
                f"remote {self.dest.host}:{partial} is {size.st_size if size else 'no'} bytes "
                f"after the upload, expected {item.size}; it was removed, run the push again"
            )
        digest, result.verified_by = self._remote_sha256(partial, item.size)
        if digest != item.sha256:
            self._discard(partial)
            raise VerificationFailure(
                f"remote copy of {item.remote_name} has sha256 {digest}, expected "
                f"{item.sha256} (corrupted on the far side or in transit); the partial file "
                "was removed, run the push again"
            )
        with _remote_errors(self.dest, "rename into place", final):
            try:
                self.sftp.posix_rename(partial, final)  # atomic, replaces an existing file
            except OSError as exc:
                if exc.errno is not None or "unsupported" not in str(exc).lower():
                    raise
                # A server without the OpenSSH extension: plain RENAME will not overwrite.
                if self._stat(final) is not None:
                    self.sftp.remove(final)
                self.sftp.rename(partial, final)

    def _remote_sha256(self, path: str, size: int) -> tuple[str, Literal["sha256sum", "sftp"]]:
        if self.exec_works is not False:
            digest = self._sha256_exec(path, size)
            if digest is not None:
                self.exec_works = True
                return digest, "sha256sum"
            if self.exec_works is None:
                log.info("no sha256sum on %s: hashing over SFTP instead", self.dest.host)
                self.exec_works = False
        return self._sha256_sftp(path, size), "sftp"

    def _sha256_exec(self, path: str, size: int) -> str | None:
        """`sha256sum` on the far side; None when the account cannot run it."""
        transport = self.client.get_transport()
        assert transport is not None
        with _remote_errors(self.dest, "hash", path):
            try:
                channel = transport.open_session(timeout=30)
            except paramiko.ChannelException:
                return None  # the server refuses exec/session channels
            try:
                # Generous: the far side reads the whole file (~100 MB/s and more).
                channel.settimeout(120 + size / 20e6)
                channel.exec_command(f"sha256sum -- {shlex.quote(path)}")
                channel.shutdown_write()  # an SFTP-only ForceCommand sees EOF and exits
                out = b""
                while len(out) < 4096:  # one line is expected; never hold more
                    data = channel.recv(4096)
                    if not data:
                        break
                    out += data
                status = channel.recv_exit_status()
            except TimeoutError:
                raise PushError(
                    f"sha256sum of {self.dest.host}:{path} did not finish in time"
                ) from None
            finally:
                channel.close()
        match = _SHA256SUM_LINE.match(out)
        if status != 0 or match is None:
            return None
        return match.group(1).decode()

    def _sha256_sftp(self, path: str, size: int) -> str:
        hasher = hashlib.sha256()
        with _remote_errors(self.dest, "read back", path), self.sftp.open(path, "rb") as remote:
            offset = 0
            while offset < size:
                # A bounded window of pipelined reads: fast, and memory stays fixed.
                end = min(size, offset + _READ_WINDOW * _READ_REQUEST)
                window = [
                    (o, min(_READ_REQUEST, end - o)) for o in range(offset, end, _READ_REQUEST)
                ]
                for data in remote.readv(window):
                    hasher.update(data)
                offset = end
        return hasher.hexdigest()

    def _stat(self, path: str) -> paramiko.SFTPAttributes | None:
        with _remote_errors(self.dest, "inspect", path):
            try:
                return self.sftp.stat(path)
            except FileNotFoundError:
                return None

    def _make_parents(self, remote_name: str) -> None:
        parts = remote_name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = posixpath.join(self.base, *parts[:depth])
            if directory in self.made_dirs:
                continue
            if self._stat(directory) is None:
                with _remote_errors(self.dest, "create directory", directory):
                    self.sftp.mkdir(directory)
            self.made_dirs.add(directory)

    def _discard(self, partial: str) -> None:
        with _remote_errors(self.dest, "remove", partial), suppress(FileNotFoundError):
            self.sftp.remove(partial)

    def _advance(self, amount: int) -> None:
        self.done += amount
        if self.progress is not None and amount:
            self.progress(self.done, self.total)
