"""A bundle directory as one signed archive stream, split into parts to carry across the gap.

    parts = write_archive(Path("bundle"), Path("/media/usb/site"), compress="zstd",
                          split_size=4 * 1024**3, signing_key=load_private_key("operator.key"))
    report = check_parts(Path("/media/usb/site.parts.json"), load_public_key("operator.pub"))
    extract_archive(Path("/media/usb/site.parts.json"), load_public_key("operator.pub"), dest)

On disk, for an output prefix `P`:

    P.tar.zst                  the whole stream when it is not split (`P.tar` without compression)
    P.tar.zst.part0001, ...    or the stream cut into parts of at most `split_size` bytes
    P.parts.json               the parts list (format `airgap-parts/v1`), canonical JSON
    P.parts.json.sig           its detached signature: the format of `airgap-bundle.json.sig`,
                               made with the same operator key
    P.parts.json.sigstore.json or, signed keylessly, a Sigstore bundle (bundle_keyless.py) by
                               the identity that signed the bundle

The signer (`signing_key`) is a ManifestSigner and the trust a ManifestTrust
(provisioner/bundle/detached.py): an operator key pair, or a KeylessSigner and a KeylessTrust. One
trust checks both the parts list and the bundle's manifest, so both must be signed alike.

The stream is one POSIX (pax) tar of the bundle directory, zstd-compressed or not:
`airgap-bundle.json` and its signature (`airgap-bundle.json.sig`, or for a keyless signer
`airgap-bundle.json.sigstore.json`; a signature of the other kind is not carried) first, then
every directory and file in sorted path order; mtime 0, uid/gid 0, no user or group names,
mode 0755 for directories and executables and 0644 otherwise. It holds nothing but the bundle
layout: the blobs, charts and files the manifest lists, the OCI layout's `oci-layout` and
`index.json` (at the SHA-256 the manifest records for them), and their directories.

The parts list:

    {"compression": "zstd" | "none",
     "format": "airgap-parts/v1",
     "manifestSha256": "<hex SHA-256 of the airgap-bundle.json inside>",
     "parts": [{"name": "P.tar.zst.part0001", "sha256": "<hex>", "size": <bytes>}, ...],
     "sha256": "<hex SHA-256 of the whole stream: all parts in order>",
     "size": <bytes of the whole stream>,
     "tarSize": <bytes of the tar once decompressed>}

Writing streams: each file is read once and checked against the manifest on the way, each part
is hashed as it is written, and memory stays flat whatever the blob sizes. Parts are written as
`.partial` files and renamed when complete; the signature and then the parts list come last,
atomically, so a failed or interrupted create never leaves a parts list behind, and a failed
one removes every part it wrote.

Checking verifies the parts list's signature before anything else is read, then every part's
size and SHA-256, and names every missing or damaged part (only those need sending again).
Extracting checks the parts, then streams them through zstd and a tar reader into a temporary
directory next to the destination, renamed into place at the end. With a one-line error and
nothing left behind it refuses: links, devices, FIFOs, sparse files; absolute names, `..`,
NUL, backslashes or control characters in names; duplicates; anything outside the bundle
layout; sizes that differ from the manifest's or exceed a bound; a truncated stream; data after
the end of the tar; and a stream that unpacks to more than its parts list records.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, Protocol, cast

import zstandard

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import AirgapError, UsageError, VerificationFailure
from provisioner.bundle.check import short
from provisioner.bundle.detached import (
    KEY_SUFFIX,
    MAX_KEY_SIGNATURE_SIZE,
    ManifestSigner,
    ManifestTrust,
    max_signature_size,
    preflight,
    sign_detached,
    signature_name,
    signature_names,
    verify_detached,
)
from provisioner.bundle.keyless import KeylessSigner, keyless_signer
from provisioner.bundle.manifest import (
    INDEX_FILE,
    LAYOUT_FILE,
    MANIFEST_FILE,
    OCI_DIR,
    BundleManifest,
    canonical_json,
    check_unicode,
    json_object,
    json_size,
    no_duplicate_keys,
)

FORMAT = "airgap-parts/v1"
PARTS_SUFFIX = ".parts.json"
SIGNATURE_SUFFIX = KEY_SUFFIX  # a key signature; keyless ones end in `.sigstore.json`
PARTIAL_SUFFIX = ".partial"

Compression = Literal["zstd", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "none")

CHUNK_SIZE = 1024 * 1024
ZSTD_LEVEL = 3

# Bounds for what the manifest records no size for; an archive claiming more is refused.
MAX_MANIFEST_SIZE = 256 * 1024 * 1024  # as bundle_check
MAX_SIGNATURE_SIZE = MAX_KEY_SIGNATURE_SIZE  # a keyless one may be larger: max_signature_size
MAX_PARTS_LIST_SIZE = 16 * 1024 * 1024
MAX_LAYOUT_FILE_SIZE = 64 * 1024  # oci/oci-layout is {"imageLayoutVersion":"1.0.0"}
MAX_INDEX_SIZE = 64 * 1024 * 1024  # oci/index.json
# Helm refuses a chart that decompresses to more than 100 MiB (its default), so no chart
# archive in a bundle is larger.
MAX_CHART_SIZE = 100 * 1024 * 1024

BLOB_DIR = f"{OCI_DIR}/blobs/sha256"
# Directories a bundle may hold even when empty.
_KNOWN_DIRS = ("charts", "files", "trust", OCI_DIR, f"{OCI_DIR}/blobs", BLOB_DIR)
# A tar ends with two zero blocks (then zero padding to a whole record).
_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE
_HEX64 = re.compile(r"[0-9a-f]{64}")
# The manifest's signature, of either kind: reserved names, never a listed file.
_SIGNATURE_FILES = signature_names(MANIFEST_FILE)


# ----------------------------------------------------------------------------- names
def parts_list_path(out_prefix: str | Path) -> Path:
    """`P.parts.json` for the output prefix `P`."""
    prefix = Path(out_prefix)
    return prefix.with_name(prefix.name + PARTS_SUFFIX)


def signature_path(
    parts_list: str | Path, signer_or_trust: ManifestSigner | ManifestTrust | None = None
) -> Path:
    """`P.parts.json.sig` (a key; also without `signer_or_trust`), `P.parts.json.sigstore.json`
    (keyless)."""
    path = Path(parts_list)
    if signer_or_trust is None:
        return path.with_name(path.name + SIGNATURE_SUFFIX)
    return path.with_name(signature_name(path.name, signer_or_trust))


def signature_files(parts_list: str | Path) -> list[Path]:
    """The parts list's signature files that exist, of either kind (what to carry with it)."""
    path = Path(parts_list)
    return [path.with_name(n) for n in signature_names(path.name) if (path.with_name(n)).exists()]


def stream_name(out_prefix: str | Path, compress: Compression) -> str:
    """`P.tar.zst` (or `P.tar`): the name of the stream, and of its one part when not split."""
    return Path(out_prefix).name + (".tar.zst" if compress == "zstd" else ".tar")


def part_name(stream: str, index: int | None) -> str:
    """`P.tar.zst.part0001` for part 1 of a split stream; the stream's name when not split."""
    return stream if index is None else f"{stream}.part{index:04d}"


# ------------------------------------------------------------------------ the parts list
@dataclass(frozen=True)
class PartEntry:
    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class PartsList:
    compression: Compression
    size: int
    sha256: str
    tar_size: int
    manifest_sha256: str
    parts: tuple[PartEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "compression": self.compression,
            "size": self.size,
            "sha256": self.sha256,
            "tarSize": self.tar_size,
            "manifestSha256": self.manifest_sha256,
            "parts": [p.to_json() for p in self.parts],
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes written to `P.parts.json` and signed."""
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> PartsList:
        """Strict: exact fields and types, unique plain part names, sizes that add up."""
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
        except UnicodeDecodeError:
            raise UsageError(f"{where} is not UTF-8") from None
        except ValueError as exc:  # JSONDecodeError too
            raise UsageError(f"{where} is not valid JSON ({exc})") from None
        except RecursionError:
            raise UsageError(f"{where} is not valid JSON (nested too deeply)") from None
        check_unicode(document, where)
        keys = ("format", "compression", "size", "sha256", "tarSize", "manifestSha256", "parts")
        top = json_object(document, where, keys)
        if top["format"] != FORMAT:
            raise UsageError(f"{where}: format is {top['format']!r}, expected {FORMAT!r}")
        compression = top["compression"]
        if compression not in COMPRESSIONS:
            raise UsageError(f"{where}: unknown compression {compression!r}")
        raw_parts = top["parts"]
        if not isinstance(raw_parts, list) or not raw_parts:
            raise UsageError(f"{where}: parts is not a non-empty list")
        parts: list[PartEntry] = []
        for i, raw in enumerate(raw_parts):
            here = f"{where}: parts[{i}]"
            entry = json_object(raw, here, ("name", "size", "sha256"))
            parts.append(
                PartEntry(
                    _part_file_name(entry["name"], f"{here}.name"),
                    json_size(entry["size"], f"{here}.size"),
                    _hex(entry["sha256"], f"{here}.sha256"),
                )
            )
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise UsageError(f"{where}: a part is listed twice")
        parts_list = cls(
            compression=cast(Compression, compression),
            size=json_size(top["size"], f"{where}: size"),
            sha256=_hex(top["sha256"], f"{where}: sha256"),
            tar_size=json_size(top["tarSize"], f"{where}: tarSize"),
            manifest_sha256=_hex(top["manifestSha256"], f"{where}: manifestSha256"),
            parts=tuple(parts),
        )
        if sum(p.size for p in parts) != parts_list.size:
            raise UsageError(f"{where}: the part sizes do not add up to size {parts_list.size}")
        if compression == "none" and parts_list.tar_size != parts_list.size:
            raise UsageError(f"{where}: an uncompressed stream whose tarSize is not its size")
        return parts_list


def _hex(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise UsageError(f"{where} is not 64 lowercase hex digits")
    return value


def _part_file_name(value: object, where: str) -> str:
    """A plain file name next to the parts list: nothing that could lead elsewhere."""
    if (
        not isinstance(value, str)
        or not value
        or value.startswith(".")
        or any(c in value for c in "/\\\x00")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        raise UsageError(f"{where} {value!r} is not a plain file name")
    return value


def write_parts_list(
    path: Path, parts_list: PartsList, signing_key: ManifestSigner, signature: bytes | None = None
) -> None:
    """The signature first, the parts list last: a parts list on disk is always signed.
    `signature`: already made over `parts_list.to_bytes()` (else it is made here)."""
    data = parts_list.to_bytes()
    if signature is None:
        signature = sign_detached(data, signing_key)
    atomic_write(signature_path(path, signing_key), signature)
    atomic_write(path, data)


def load_parts_list(path: str | Path, trust: ManifestTrust) -> PartsList:
    """The parts list, parsed only after its signature verifies with `trust`."""
    path = Path(path)
    data = _read_bounded(path, MAX_PARTS_LIST_SIZE, "parts list")
    signature_file = signature_path(path, trust)
    if not os.path.lexists(signature_file):
        other = [p.name for p in signature_files(path)]
        hint = f" (there is {other[0]}: signed the other way)" if other else ""
        raise UsageError(f"the parts list signature {signature_file} is missing{hint}")
    signature = _read_bounded(signature_file, max_signature_size(trust), "parts list signature")
    try:
        verify_detached(data, signature, trust, path.name)
    except VerificationFailure as exc:
        raise VerificationFailure(f"parts list {path}: {exc}") from None
    return PartsList.from_bytes(data, f"parts list {path}")


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {path} is not a regular file")
        if info.st_size > limit:
            raise UsageError(f"{what} {path} is larger than {limit} bytes; it is not a {what}")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


# ----------------------------------------------------------------------- bundle layout
@dataclass(frozen=True)
class _Expected:
    """A file the bundle layout holds: what to call it, its exact size when the manifest
    records one, the most bytes accepted, and its SHA-256 when the manifest records one."""

    what: str
    size: int | None
    limit: int
    sha256: str | None


@dataclass(frozen=True)
class _Layout:
    files: dict[str, _Expected]
    dirs: frozenset[str]


def _layout(manifest: BundleManifest) -> _Layout:
    """Every path a bundle with this manifest holds (besides the manifest and signature)."""
    # The layout's own files, at the size and SHA-256 the manifest signs (index.json names tags).
    limits = {LAYOUT_FILE: MAX_LAYOUT_FILE_SIZE, INDEX_FILE: MAX_INDEX_SIZE}
    files = {f.path: _Expected(f.path, f.size, limits[f.path], f.sha256) for f in manifest.layout}
    for blob in manifest.blobs:
        what = f"blob {short(blob.digest)}"
        files[f"{BLOB_DIR}/{blob.hex}"] = _Expected(what, blob.size, blob.size, blob.hex)
    listed: list[tuple[str, _Expected]] = []
    for c in manifest.charts:
        what = f"chart {c.name} {c.version} ({c.file})"
        listed.append((c.file, _Expected(what, None, MAX_CHART_SIZE, c.digest.split(":", 1)[1])))
    for f in manifest.files:
        listed.append((f.path, _Expected(f"file {f.path}", f.size, f.size, f.sha256)))
    for path, expected in listed:
        # The manifest parser refused `..`, absolute paths and duplicates already.
        if path in (MANIFEST_FILE, *_SIGNATURE_FILES) or path.split("/")[0] == OCI_DIR:
            raise UsageError(f"{MANIFEST_FILE} lists {path}, a path reserved for the bundle itself")
        files[path] = expected
    dirs = set(_KNOWN_DIRS)
    for path in files:
        dirs.update(str(p) for p in PurePosixPath(path).parents if str(p) != ".")
    clash = sorted(dirs & files.keys())
    if clash:
        raise UsageError(f"{MANIFEST_FILE} lists {clash[0]} both as a file and as a directory")
    return _Layout(files, frozenset(dirs))


def _mode(executable: bool) -> int:
    return 0o755 if executable else 0o644


# -------------------------------------------------------------------------------- write
@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    size: int
    mode: int
    expected: _Expected | None


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
    members = _collect(bundle, _layout(manifest))
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
    manifest_bytes = _read_bounded(bundle / MANIFEST_FILE, MAX_MANIFEST_SIZE, "bundle manifest")
    name = signature_name(MANIFEST_FILE, signer)
    if not os.path.lexists(bundle / name):
        kind = "keylessly" if isinstance(signer, KeylessSigner) else "with a key"
        raise UsageError(
            f"bundle {bundle} has no {name}: the archive is signed {kind}, so the bundle must be "
            "signed the same way"
        )
    signature = _read_bounded(bundle / name, max_signature_size(signer), "bundle signature")
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


def _collect(bundle: Path, layout: _Layout) -> list[_Member]:
    """Every directory and file of the bundle, in archive order; anything the layout does not
    hold is refused (the extracting side would refuse it too)."""
    found: list[_Member] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as scan:
            entries = list(scan)
        for entry in entries:
            name = prefix + entry.name
            if name in (MANIFEST_FILE, *_SIGNATURE_FILES):
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
            found.append(_Member(name, False, info.st_size, _mode(executable), expected))

    try:
        walk(bundle, "")
    except OSError as exc:
        raise UsageError(f"cannot read bundle {bundle}: {exc.strerror} ({exc.filename})") from None
    missing = sorted(layout.files.keys() - {m.name for m in found})
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
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


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


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


# -------------------------------------------------------------------------------- check
@dataclass(frozen=True)
class PartProblem:
    name: str
    reason: str


@dataclass
class PartsReport:
    """Every part that is missing or damaged (`problems`: send those again) and the SHA-256
    of the whole stream (None unless every part was read whole)."""

    path: Path
    parts_list: PartsList
    problems: list[PartProblem] = field(default_factory=list)
    total_sha256: str | None = None
    bytes_checked: int = 0

    @property
    def resend(self) -> list[str]:
        return [p.name for p in self.problems]

    @property
    def ok(self) -> bool:
        return not self.problems and self.total_sha256 == self.parts_list.sha256

    def summary(self) -> str:
        count = len(self.parts_list.parts)
        if self.ok:
            return f"{self.path}: {count} parts verified ({self.parts_list.size} bytes)"
        if not self.problems:
            return f"{self.path}: the parts together do not have the recorded sha256"
        listed = ", ".join(f"{p.name} ({p.reason})" for p in self.problems)
        return f"{self.path}: {len(self.problems)} of {count} parts must be sent again: {listed}"

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise VerificationFailure(self.summary())


def check_parts(parts_list_path: str | Path, trust: ManifestTrust) -> PartsReport:
    """The parts list's signature first (nothing else is read if it fails), then every part:
    all missing or damaged parts are reported, by name."""
    path = Path(parts_list_path)
    parts_list = load_parts_list(path, trust)
    report = PartsReport(path, parts_list)
    total: hashlib._Hash | None = hashlib.sha256()
    for part in parts_list.parts:
        reason = _check_part(path.parent / part.name, part, total, report)
        if reason is not None:
            report.problems.append(PartProblem(part.name, reason))
            total = None  # the stream has a gap from here on
    if total is not None:
        report.total_sha256 = total.hexdigest()
    return report


def _open_for_reading(path: Path) -> IO[bytes]:
    """A part, to check or to extract (its own function, so that tests can watch it)."""
    # O_NONBLOCK: a FIFO in place of a part is refused as not a regular file, not waited on.
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")


def _check_part(
    path: Path, part: PartEntry, total: hashlib._Hash | None, report: PartsReport
) -> str | None:
    try:
        f = _open_for_reading(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    with f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size != part.size:
            return f"{info.st_size} bytes, expected {part.size}"
        hasher = hashlib.sha256()
        read = 0
        try:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
                if total is not None:
                    total.update(chunk)
                read += len(chunk)
        except OSError as exc:
            return f"cannot be read: {exc.strerror}"
    report.bytes_checked += read
    if read != part.size:
        return f"{read} bytes, expected {part.size}"
    if hasher.hexdigest() != part.sha256:
        return "damaged: sha256 differs"
    return None


# ------------------------------------------------------------------------------ extract
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
            _read_bounded(unpacked / MANIFEST_FILE, MAX_MANIFEST_SIZE, "bundle manifest")
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
        self._layout: _Layout | None = None
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
        limit = MAX_MANIFEST_SIZE if wanted == MANIFEST_FILE else max_signature_size(self._trust)
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
        self._layout = _layout(BundleManifest.from_bytes(self._manifest_bytes))

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
            os.fchmod(out.fileno(), _mode(bool(member.mode & 0o111)))
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
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
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
            self._file = _open_for_reading(path)
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
