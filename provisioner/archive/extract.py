"""Extracting a bundle archive safely: the parts are checked, then streamed (hashed again on the
way) through zstd and a tar reader into a temporary directory beside the destination, renamed
into place at the end. Each member is checked as it arrives: the manifest the parts list names
and its signature first, then only what that manifest's layout holds, at the recorded sizes.
Links, devices, FIFOs, sparse files, unsafe names, duplicates, a truncated stream, data after
the end and a stream larger than recorded are refused with one line, leaving nothing behind."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Protocol, cast

import zstandard

from offline.atomicfile import fsync_dir
from offline.errors import AirgapError, UsageError, VerificationFailure, and_more
from provisioner.archive import reading
from provisioner.archive.check import PartsReport, check_parts
from provisioner.archive.layout import Layout, bundle_layout, file_mode
from provisioner.archive.names import PARTS_SUFFIX
from provisioner.archive.parts_list import PartEntry, load_parts_list
from provisioner.archive.reading import CHUNK_SIZE, read_bounded
from provisioner.bundle.detached import (
    ManifestTrust,
    max_signature_size,
    signature_name,
    verify_detached,
)
from provisioner.bundle.manifest import MANIFEST_FILE, MAX_BUNDLE_MANIFEST_SIZE, BundleManifest

# A tar ends with two zero blocks (then zero padding to a whole record).
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def extract_archive(
    parts_list_path: str | Path,
    trust: ManifestTrust,
    dest_dir: str | Path,
    *,
    checked: PartsReport | None = None,
) -> Path:
    """Check the parts (unless `checked` is this list's report, just made), then unpack the
    stream into `dest_dir` (missing or empty): into a temporary directory beside it, renamed
    at the end, so a refusal leaves nothing. The parts are hashed again while they stream,
    so a part changed since the check is still refused."""
    dest = Path(dest_dir)
    _check_destination(dest)
    report = checked if checked is not None else check_parts(parts_list_path, trust)
    report.raise_for_failure()
    temporary = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extracting-"))
    try:
        _unpack(report, trust, temporary)
        os.chmod(temporary, 0o755)
        try:
            os.rename(temporary, dest)
        except OSError as exc:
            raise UsageError(f"cannot move the bundle into {dest}: {exc.strerror}") from None
    except BaseException as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, AirgapError):
            raise type(exc)(f"{exc}; nothing was extracted") from None
        if isinstance(exc, OSError):
            raise UsageError(
                f"cannot extract into {dest}: {exc.strerror or exc}; nothing was extracted"
            ) from None
        raise
    fsync_dir(dest.parent)
    return dest


def unpacked_bundle(parts_list_path: str | Path, trust: ManifestTrust) -> tuple[Path, str]:
    """`P.bundle` beside `P.parts.json`, holding the bundle the signed parts list names, and the
    manifest SHA-256 that list records: unpacked now (every part checked) unless an earlier run
    left it there. One left there must hold that very manifest (else it is refused); the caller
    must still check it whole against its signed manifest (bundle_check), which covers every
    file in it."""
    path = Path(parts_list_path)
    parts_list = load_parts_list(path, trust)
    unpacked = path.with_name(path.name.removesuffix(PARTS_SUFFIX) + ".bundle")
    if not os.path.lexists(unpacked):
        extract_archive(path, trust, unpacked)
        return unpacked, parts_list.manifest_sha256
    if unpacked.is_symlink() or not unpacked.is_dir():
        raise UsageError(f"{unpacked} is in the way of unpacking {path}: remove it")
    try:
        actual = hashlib.sha256(
            read_bounded(unpacked / MANIFEST_FILE, MAX_BUNDLE_MANIFEST_SIZE, "bundle manifest")
        ).hexdigest()
    except UsageError:
        actual = None
    if actual != parts_list.manifest_sha256:
        raise VerificationFailure(
            f"{unpacked} does not hold the bundle {path} names (another or a damaged "
            f"{MANIFEST_FILE}): remove it, and the parts are unpacked again"
        )
    return unpacked, parts_list.manifest_sha256


def _check_destination(dest: Path) -> None:
    if dest.is_symlink():
        raise UsageError(f"{dest} is a symbolic link; extract into a new or empty directory")
    if dest.exists():
        if not dest.is_dir():
            raise UsageError(f"{dest} exists and is not a directory")
        if any(dest.iterdir()):
            raise UsageError(f"{dest} is not empty; extract into a new or empty directory")
    if not dest.parent.is_dir():
        raise UsageError(f"cannot extract into {dest}: {dest.parent} is not a directory")


def _unpack(report: PartsReport, trust: ManifestTrust, root: Path) -> None:
    parts_list = report.parts_list
    raw = _PartsReader(report.path.parent, parts_list.parts)
    unpacker = _Unpacker(root, trust, parts_list.manifest_sha256)
    with raw:
        source: _Readable = raw
        if parts_list.compression == "zstd":
            source = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], raw), read_size=CHUNK_SIZE, read_across_frames=True
            )
        stream = _TarSource(source, parts_list.tar_size)
        try:
            with tarfile.open(
                fileobj=stream, mode="r|", bufsize=CHUNK_SIZE, encoding="utf-8"
            ) as tar:
                for member in tar:
                    unpacker.add(tar, member)
                end = tar.offset
            stream.drain()
            raw.finish()
        except zstandard.ZstdError as exc:
            raise VerificationFailure(f"the compressed stream is damaged ({exc})") from None
        except tarfile.TarError as exc:
            raise VerificationFailure(f"the archive is not a valid tar stream ({exc})") from None
    stream.check_end(end)
    unpacker.finish()


def _name_problem(name: str) -> str | None:
    if not name:
        return "has an empty name"
    if "\x00" in name:
        return "has a NUL in its name"
    if "\\" in name:
        return "has a backslash in its name"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "has a control character in its name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "has a name that is not UTF-8"
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' component"
    if "" in parts or "." in parts:
        return "is not a normalized relative path"
    return None


def _type_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return "is a symbolic link"
    if member.islnk():
        return "is a hard link"
    if member.ischr() or member.isblk():
        return "is a device"
    if member.isfifo():
        return "is a FIFO"
    if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
        return "is a sparse file"
    if member.type not in (tarfile.REGTYPE, tarfile.DIRTYPE):
        return f"has the unsupported type {member.type!r}"
    return None


class _Unpacker:
    """Checks each member as it arrives and writes it below `root`: the manifest and its
    signature first, then only what the manifest's layout holds, at the recorded sizes."""

    def __init__(self, root: Path, trust: ManifestTrust, manifest_sha256: str) -> None:
        self._root = root
        self._trust = trust
        self._signature_name = signature_name(MANIFEST_FILE, trust)
        self._manifest_sha256 = manifest_sha256
        self._manifest_bytes: bytes | None = None
        self._layout: Layout | None = None
        self._seen: set[str] = set()
        self._dirs: set[Path] = {root}

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        problem = _name_problem(name) or _type_problem(member)
        if problem is not None:
            raise VerificationFailure(f"archive member {name!r} {problem}")
        if name in self._seen:
            raise VerificationFailure(f"archive member {name!r} appears twice")
        self._seen.add(name)
        if self._layout is None:
            self._add_head(tar, member)
            return
        if member.isdir():
            if name not in self._layout.dirs:
                raise VerificationFailure(
                    f"archive member {name!r} is a directory outside the bundle layout"
                )
            if member.size:
                raise VerificationFailure(f"directory {name!r} claims {member.size} bytes")
            self._mkdir(self._root / name)
            return
        expected = self._layout.files.get(name)
        if expected is None:
            raise VerificationFailure(
                f"archive member {name!r} is outside the bundle layout "
                f"(not listed in {MANIFEST_FILE})"
            )
        if expected.size is not None and member.size != expected.size:
            raise VerificationFailure(
                f"{expected.what} is {member.size} bytes in the archive, "
                f"{expected.size} in {MANIFEST_FILE}"
            )
        if member.size > expected.limit:
            raise VerificationFailure(
                f"{expected.what} claims {member.size} bytes, more than the {expected.limit} "
                "a bundle archive accepts for it"
            )
        digest = self._write(tar, member)
        if expected.sha256 is not None and digest != expected.sha256:
            raise VerificationFailure(
                f"{expected.what} has content with digest sha256:{digest[:12]}…, "
                f"not the listed sha256:{expected.sha256[:12]}… (corrupted)"
            )

    def _add_head(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """The first two members: the manifest (the one the parts list records), then its
        signature; together they say what else the archive may hold."""
        wanted = self._signature_name if self._manifest_bytes is not None else MANIFEST_FILE
        if member.name != wanted or not member.isfile():
            raise VerificationFailure(
                f"the archive has {member.name!r} where {wanted} belongs (not a bundle archive)"
            )
        limit = (
            MAX_BUNDLE_MANIFEST_SIZE if wanted == MANIFEST_FILE else max_signature_size(self._trust)
        )
        if member.size > limit:
            raise VerificationFailure(f"{wanted} in the archive claims {member.size} bytes")
        buffer = io.BytesIO()
        digest = self._write(tar, member, buffer)
        if self._manifest_bytes is None:
            if digest != self._manifest_sha256:
                raise VerificationFailure(
                    f"{MANIFEST_FILE} in the archive is not the one the parts list records"
                )
            self._manifest_bytes = buffer.getvalue()
            return
        try:
            verify_detached(self._manifest_bytes, buffer.getvalue(), self._trust, MANIFEST_FILE)
        except VerificationFailure as exc:
            raise VerificationFailure(f"{wanted} in the archive: {exc}") from None
        self._layout = bundle_layout(BundleManifest.from_bytes(self._manifest_bytes))

    def _mkdir(self, path: Path) -> None:
        # Names were checked and nothing but directories and regular files is ever made
        # below the root, so no path can lead out of it.
        if path in self._dirs:
            return
        self._mkdir(path.parent)
        path.mkdir(mode=0o755, exist_ok=True)
        self._dirs.add(path)

    def _write(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, copy: io.BytesIO | None = None
    ) -> str:
        """Stream the member's data into its file (and `copy`); returns its SHA-256 hex."""
        target = self._root / member.name
        self._mkdir(target.parent)
        source = tar.extractfile(member)
        assert source is not None  # a regular file
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        hasher = hashlib.sha256()
        written = 0
        with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
            try:
                while chunk := source.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                    if copy is not None:
                        copy.write(chunk)
                    written += len(chunk)
            except tarfile.ReadError:
                written = -1
            if written != member.size:
                raise VerificationFailure(
                    f"the archive ends inside {member.name!r}, whose header claims "
                    f"{member.size} bytes (truncated)"
                )
            os.fchmod(out.fileno(), file_mode(bool(member.mode & 0o111)))
            out.flush()
            os.fsync(out.fileno())
        return hasher.hexdigest()

    def finish(self) -> None:
        if self._layout is None:
            raise VerificationFailure(
                f"the archive holds no {MANIFEST_FILE} and signature (not a bundle archive)"
            )
        missing = sorted(self._layout.files.keys() - self._seen)
        if missing:
            more = and_more(len(missing))
            raise VerificationFailure(f"the archive has no {missing[0]}{more}")
        for directory in self._dirs:
            fsync_dir(directory)


class _TarSource(io.RawIOBase):
    """The decompressed tar stream: refused as soon as it runs past the size the signed parts
    list records (a decompression bomb), and watched for data after the tar's end."""

    def __init__(self, source: _Readable, limit: int) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self.count = 0
        self._nonzero_end = 0  # just past the last non-zero byte seen

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size if size >= 0 else CHUNK_SIZE)
        self.count += len(data)
        if self.count > self._limit:
            raise VerificationFailure(
                f"the archive unpacks to more than the {self._limit} bytes its parts list "
                "records (a decompression bomb?)"
            )
        if data:
            if data[-1]:
                self._nonzero_end = self.count
            else:
                kept = len(data.rstrip(b"\0"))
                if kept:
                    self._nonzero_end = self.count - len(data) + kept
        return data

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass

    def check_end(self, end: int) -> None:
        """`end`: where the tar reader stopped (its end-of-archive marker, or a damaged header
        it stopped at silently)."""
        if self._nonzero_end > end:
            raise VerificationFailure(
                f"the tar stream has data after byte {end}, where it should end "
                "(appended data or a damaged header)"
            )
        if self.count - end < _END_OF_ARCHIVE:
            raise VerificationFailure("the tar stream has no end-of-archive marker (truncated)")
        if self.count != self._limit:
            raise VerificationFailure(
                f"the archive unpacks to {self.count} bytes, not the {self._limit} its parts "
                "list records"
            )


class _PartsReader(io.RawIOBase):
    """The parts in order as one stream, each hashed again on the way: a part changed since
    it was checked is refused before the extracted bundle is moved into place."""

    def __init__(self, directory: Path, parts: tuple[PartEntry, ...]) -> None:
        super().__init__()
        self._directory = directory
        self._parts = parts
        self._index = 0
        self._file: IO[bytes] | None = None
        self._remaining = 0
        self._hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        size = size if size > 0 else CHUNK_SIZE
        while self._index < len(self._parts):
            part = self._parts[self._index]
            if self._file is None:
                self._open(part)
            assert self._file is not None
            data = self._file.read(min(size, self._remaining)) if self._remaining else b""
            if data:
                self._hasher.update(data)
                self._remaining -= len(data)
                return data
            self._file.close()
            self._file = None
            if self._remaining or self._hasher.hexdigest() != part.sha256:
                raise VerificationFailure(
                    f"part {part.name} changed after it was checked; check the parts again"
                )
            self._index += 1
        return b""

    def _open(self, part: PartEntry) -> None:
        path = self._directory / part.name
        try:
            self._file = reading.open_for_reading(path)
        except OSError as exc:
            raise VerificationFailure(
                f"part {part.name} cannot be read any more ({exc.strerror})"
            ) from None
        info = os.fstat(self._file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != part.size:
            raise VerificationFailure(
                f"part {part.name} changed after it was checked; check the parts again"
            )
        self._remaining = part.size
        self._hasher = hashlib.sha256()

    def finish(self) -> None:
        """Every part read to its end: nothing follows the compressed stream."""
        if self.read(CHUNK_SIZE):
            raise VerificationFailure("the archive has data after the end of its stream")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()
