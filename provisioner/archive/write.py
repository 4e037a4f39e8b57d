"""Writing a bundle archive: the bundle directory, checked against its signed manifest on the
way, as one deterministic tar stream (zstd-compressed or not), cut into parts that are hashed as
they are written, then the signed parts list. A failed or interrupted write leaves no parts list,
and a failed one removes every part it wrote."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

import zstandard

from offline.atomicfile import fsync_dir
from offline.errors import AirgapError, UsageError, VerificationFailure, and_more
from provisioner.archive.layout import (
    SIGNATURE_FILES,
    Expected,
    Layout,
    bundle_layout,
    file_mode,
)
from provisioner.archive.names import (
    COMPRESSIONS,
    PARTIAL_SUFFIX,
    Compression,
    part_name,
    parts_list_path,
    signature_path,
    stream_name,
)
from provisioner.archive.parts_list import PartEntry, PartsList, write_parts_list
from provisioner.archive.reading import CHUNK_SIZE, read_bounded
from provisioner.bundle.detached import (
    ManifestSigner,
    max_signature_size,
    preflight,
    sign_detached,
    signature_name,
    signature_names,
    verify_detached,
)
from provisioner.bundle.keyless import KeylessSigner, keyless_signer
from provisioner.bundle.manifest import MANIFEST_FILE, MAX_BUNDLE_MANIFEST_SIZE, BundleManifest

ZSTD_LEVEL = 3


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    size: int
    mode: int
    expected: Expected | None


def write_archive(
    bundle_dir: str | Path,
    out_prefix: str | Path,
    *,
    compress: Compression,
    split_size: int | None,
    signing_key: ManifestSigner,
) -> PartsList:
    """Write the bundle at `bundle_dir` as `P.tar[.zst]` or its parts, then `P.parts.json`
    and its signature, where `P` is `out_prefix`. The bundle's manifest must be signed by
    `signing_key` (keyless: by the same identity); every file is checked against the manifest
    on the way."""
    bundle = Path(bundle_dir)
    prefix = Path(out_prefix)
    if compress not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compress!r}: expected one of zstd, none")
    if split_size is not None and split_size < 1:
        raise UsageError(f"split size {split_size} is not a positive number of bytes")
    if not prefix.parent.is_dir():
        raise UsageError(f"cannot write the archive: {prefix.parent} is not a directory")
    if prefix.parent.resolve().is_relative_to(bundle.resolve()):
        raise UsageError(f"cannot write the archive of {bundle} inside the bundle itself")
    list_path = parts_list_path(prefix)
    for existing in (list_path, *(list_path.with_name(n) for n in signature_names(list_path.name))):
        if os.path.lexists(existing):
            raise UsageError(
                f"{existing} already exists: remove the old archive or choose another name"
            )
    preflight(signing_key)  # a bad token fails now, not after the whole stream is written
    manifest_bytes, signature_bytes, manifest = _read_bundle_head(bundle, signing_key)
    members = _collect(bundle, bundle_layout(manifest))
    _remove_leftovers(prefix)

    sink = _PartSink(prefix.parent, stream_name(prefix, compress), split_size)
    try:
        tar_size = _write_stream(
            sink,
            compress,
            bundle,
            members,
            manifest_bytes,
            (signature_name(MANIFEST_FILE, signing_key), signature_bytes),
        )
        parts = sink.finish()
        parts_list = PartsList(
            compression=compress,
            size=sink.total_size,
            sha256=sink.total_sha256,
            tar_size=tar_size,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            parts=tuple(parts),
        )
        parts_bytes = parts_list.to_bytes()
        parts_signature = sign_detached(parts_bytes, signing_key)
        _same_keyless_signer(
            signing_key, bundle, (manifest_bytes, signature_bytes), (parts_bytes, parts_signature)
        )
        write_parts_list(list_path, parts_list, signing_key, parts_signature)
    except BaseException as exc:
        sink.abort()
        with contextlib.suppress(OSError):
            signature_path(list_path, signing_key).unlink(missing_ok=True)
        if isinstance(exc, AirgapError):
            raise type(exc)(f"{exc}; the archive was not created") from None
        if isinstance(exc, OSError):
            raise UsageError(
                f"cannot write the archive {prefix}: {exc.strerror or exc}; "
                "the archive was not created"
            ) from None
        raise
    return parts_list


def _read_bundle_head(bundle: Path, signer: ManifestSigner) -> tuple[bytes, bytes, BundleManifest]:
    """The manifest and its signature, of the kind that signs the parts list: the extracting
    side checks both with one trust. A key's signature must verify with its public key. A
    keyless signer has no identity to verify against (Fulcio derives it from the token): the
    Sigstore bundle must parse and be about this manifest, and once the parts list is signed
    both must name the same identity (`_same_keyless_signer`)."""
    if not bundle.is_dir():
        raise UsageError(f"{bundle} is not a bundle directory")
    manifest_bytes = read_bounded(
        bundle / MANIFEST_FILE, MAX_BUNDLE_MANIFEST_SIZE, "bundle manifest"
    )
    name = signature_name(MANIFEST_FILE, signer)
    if not os.path.lexists(bundle / name):
        kind = "keylessly" if isinstance(signer, KeylessSigner) else "with a key"
        raise UsageError(
            f"bundle {bundle} has no {name}: the archive is signed {kind}, so the bundle must be "
            "signed the same way"
        )
    signature = read_bounded(bundle / name, max_signature_size(signer), "bundle signature")
    try:
        if isinstance(signer, KeylessSigner):
            keyless_signer(manifest_bytes, signature, MANIFEST_FILE)
        else:
            verify_detached(manifest_bytes, signature, signer.public_key(), MANIFEST_FILE)
    except VerificationFailure as exc:
        who = "its keyless signature" if isinstance(signer, KeylessSigner) else "the signing key"
        raise VerificationFailure(f"bundle {bundle} and {who}: {exc}") from None
    return manifest_bytes, signature, BundleManifest.from_bytes(manifest_bytes)


def _same_keyless_signer(
    signer: ManifestSigner,
    bundle: Path,
    manifest: tuple[bytes, bytes],
    parts: tuple[bytes, bytes],
) -> None:
    """Keyless: the parts list is signed by whom the manifest is, or extraction would refuse
    one of them. `manifest` and `parts`: each file's bytes and its Sigstore bundle."""
    if not isinstance(signer, KeylessSigner):
        return  # a key: _read_bundle_head verified the manifest with it already
    bundle_signer = keyless_signer(*manifest, MANIFEST_FILE)
    archive_signer = keyless_signer(*parts, "the parts list")
    if bundle_signer != archive_signer:
        raise VerificationFailure(
            f"bundle {bundle} is signed by {bundle_signer}, but this token signs as "
            f"{archive_signer}: the extracting side checks both against one identity"
        )


def _collect(bundle: Path, layout: Layout) -> list[_Member]:
    """Every directory and file of the bundle, in archive order; anything the layout does not
    hold is refused (the extracting side would refuse it too)."""
    found: list[_Member] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as scan:
            entries = list(scan)
        for entry in entries:
            name = prefix + entry.name
            if name in (MANIFEST_FILE, *SIGNATURE_FILES):
                continue  # the head of the stream; a signature of the other kind stays behind
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if name not in layout.dirs:
                    raise VerificationFailure(
                        f"bundle {bundle}: directory {name!r} is not part of the bundle layout"
                    )
                found.append(_Member(name, True, 0, 0o755, None))
                walk(Path(entry.path), name + "/")
                continue
            if not stat.S_ISREG(info.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                raise VerificationFailure(f"bundle {bundle}: {name!r} is {kind}")
            expected = layout.files.get(name)
            if expected is None:
                raise VerificationFailure(
                    f"bundle {bundle}: {name!r} is not listed in {MANIFEST_FILE} "
                    "(remove it, or create the bundle again)"
                )
            if expected.size is not None and info.st_size != expected.size:
                raise VerificationFailure(
                    f"bundle {bundle}: {expected.what} is {info.st_size} bytes, "
                    f"{MANIFEST_FILE} says {expected.size}"
                )
            if info.st_size > expected.limit:
                raise UsageError(
                    f"bundle {bundle}: {expected.what} is larger than the {expected.limit} "
                    "bytes a bundle archive accepts for it"
                )
            executable = bool(info.st_mode & 0o111)
            found.append(_Member(name, False, info.st_size, file_mode(executable), expected))

    try:
        walk(bundle, "")
    except OSError as exc:
        raise UsageError(f"cannot read bundle {bundle}: {exc.strerror} ({exc.filename})") from None
    missing = sorted(layout.files.keys() - {m.name for m in found})
    if missing:
        more = and_more(len(missing))
        raise VerificationFailure(f"bundle {bundle}: {missing[0]}{more} is missing")
    # Sorted by path components, so a directory comes right before what it holds.
    found.sort(key=lambda m: m.name.split("/"))
    return found


def _remove_leftovers(prefix: Path) -> None:
    """Parts of an interrupted create (never a parts list: its presence was refused before)."""
    pattern = re.compile(re.escape(prefix.name) + r"\.tar(\.zst)?(\.part\d{4,})?(\.partial)?")
    with os.scandir(prefix.parent) as scan:
        for entry in scan:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _tarinfo(name: str, size: int, mode: int, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_stream(
    sink: _PartSink,
    compress: Compression,
    bundle: Path,
    members: list[_Member],
    manifest_bytes: bytes,
    signature: tuple[str, bytes],
) -> int:
    """Tar (and compress) the bundle into `sink`; returns the size of the tar."""
    compressor: zstandard.ZstdCompressionWriter | None = None
    target: _Writable = sink
    if compress == "zstd":
        # threads=-1: one worker per CPU; each holds a bounded job buffer, not the whole input.
        context = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1, write_checksum=True)
        compressor = context.stream_writer(cast(IO[bytes], sink), closefd=False)
        target = compressor
    counter = _CountingWriter(target)
    # Mode "w" over a write-only sink streams (TarFile only asks tell() at the start) and
    # copies member data straight through, without "w|"'s extra buffer.
    with tarfile.TarFile(
        fileobj=counter,
        mode="w",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        copybufsize=CHUNK_SIZE,
    ) as tar:
        tar.addfile(_tarinfo(MANIFEST_FILE, len(manifest_bytes), 0o644), io.BytesIO(manifest_bytes))
        name, data = signature
        tar.addfile(_tarinfo(name, len(data), 0o644), io.BytesIO(data))
        for member in members:
            if member.is_dir:
                tar.addfile(_tarinfo(member.name, 0, member.mode, is_dir=True))
            else:
                _add_file(tar, bundle, member)
    if compressor is not None:
        compressor.flush(zstandard.FLUSH_FRAME)  # ends the zstd frame; the sink stays open
    return counter.count


def _add_file(tar: tarfile.TarFile, bundle: Path, member: _Member) -> None:
    assert member.expected is not None
    expected = member.expected
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(bundle / member.name, flags)
    except OSError as exc:
        raise UsageError(f"cannot read {member.name} in bundle {bundle}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != member.size:
            raise VerificationFailure(f"bundle {bundle}: {member.name} changed while archived")
        reader = _HashingReader(f)
        tar.addfile(_tarinfo(member.name, member.size, member.mode), reader)
    actual = reader.hasher.hexdigest()
    if expected.sha256 is not None and actual != expected.sha256:
        raise VerificationFailure(
            f"bundle {bundle}: {expected.what} has content with digest sha256:{actual[:12]}…, "
            f"not the listed sha256:{expected.sha256[:12]}… (corrupted)"
        )


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingReader:
    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.hasher.update(data)
        return data


class _CountingWriter(io.RawIOBase):
    """Counts the tar's bytes on their way to the compressor (the parts list records it)."""

    def __init__(self, target: _Writable) -> None:
        super().__init__()
        self._target = target
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._target.write(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count


def _open_part(path: Path) -> IO[bytes]:
    """A new part file (its own function, so that tests can fill the disk)."""
    return open(path, "xb", buffering=CHUNK_SIZE)


class _PartSink(io.RawIOBase):
    """The stream's bytes, cut into parts of at most `split_size` bytes, each hashed as it is
    written, written as `.partial` and renamed when complete."""

    def __init__(self, directory: Path, stream: str, split_size: int | None) -> None:
        super().__init__()
        self._directory = directory
        self._stream = stream
        self._split = split_size
        self._file: IO[bytes] | None = None
        self._partial: Path | None = None
        self._hasher = hashlib.sha256()
        self._size = 0
        self._total = hashlib.sha256()
        self.total_size = 0
        self.parts: list[PartEntry] = []
        self._made: list[Path] = []  # every file made, removed again on failure

    @property
    def total_sha256(self) -> str:
        return self._total.hexdigest()

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        view = memoryview(data).cast("B")
        length = len(view)
        while view:
            if self._file is None:
                self._open_next()
            assert self._file is not None
            room = len(view) if self._split is None else self._split - self._size
            chunk = view[:room]
            self._guarded(self._file.write, chunk)
            self._hasher.update(chunk)
            self._total.update(chunk)
            self._size += len(chunk)
            self.total_size += len(chunk)
            view = view[len(chunk) :]
            if self._split is not None and self._size == self._split:
                self._close_part()
        return length

    def _open_next(self) -> None:
        index = len(self.parts) + 1 if self._split is not None else None
        final = self._directory / part_name(self._stream, index)
        self._partial = final.with_name(final.name + PARTIAL_SUFFIX)
        self._made.append(self._partial)
        self._file = self._guarded(_open_part, self._partial)
        self._hasher = hashlib.sha256()
        self._size = 0

    def _close_part(self) -> None:
        assert self._file is not None and self._partial is not None
        f, partial = self._file, self._partial
        self._file = None
        final = partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
        try:
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
            f.close()
            self._made.append(final)
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                f.close()
            raise UsageError(f"cannot write {partial}: {exc.strerror or exc}") from None
        self.parts.append(PartEntry(final.name, self._size, self._hasher.hexdigest()))

    def _guarded(self, action: Any, argument: Any) -> Any:
        try:
            return action(argument)
        except OSError as exc:
            raise UsageError(f"cannot write {self._partial}: {exc.strerror or exc}") from None

    def finish(self) -> list[PartEntry]:
        if self._file is not None:
            self._close_part()
        fsync_dir(self._directory)
        return self.parts

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        for path in self._made:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
