"""Bundle archives: one signed tar stream of a bundle, split into parts, checked part by part
and extracted only when every member is what the signed manifest says."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import random
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError, VerificationFailure
from offline.oci.digests import sha256_digest
from offline.oci.layout import OCILayout
from provisioner.archive import extract as archive_extract
from provisioner.archive import layout as archive_layout
from provisioner.archive import parts_list as archive_parts_list
from provisioner.archive import reading as archive_reading
from provisioner.archive import write as archive_write
from provisioner.archive.check import PartsReport, check_parts
from provisioner.archive.extract import extract_archive, unpacked_bundle
from provisioner.archive.names import Compression, parts_list_path, signature_path
from provisioner.archive.parts_list import PartEntry, PartsList, write_parts_list
from provisioner.archive.write import write_archive
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.manifest import (
    MANIFEST_FILE,
    BlobEntry,
    BundleManifest,
    ChartEntry,
    FileEntry,
    layout_files,
)
from provisioner.bundle.signing import (
    SIGNATURE_FILE,
    PrivateKey,
    PublicKey,
    sign_manifest,
    verify_signature,
)

MIB = 1024 * 1024
TOOL = b"#!/bin/sh\necho tool\n"
CHART = b"the bytes of a chart archive"
TRUST = b'{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'
END = b"\0" * 1024  # a tar's end-of-archive marker: two zero blocks


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------ test bundles
@dataclass
class Bundle:
    path: Path
    key: PrivateKey
    manifest: BundleManifest

    @property
    def public(self) -> PublicKey:
        return self.key.public_key()

    @property
    def manifest_bytes(self) -> bytes:
        return (self.path / MANIFEST_FILE).read_bytes()

    def blob_name(self, index: int = 0) -> str:
        return f"oci/blobs/sha256/{self.manifest.blobs[index].hex}"


def make_bundle(
    root: Path, blob_sizes: tuple[int, ...] = (100, 3000, 20000), key: PrivateKey | None = None
) -> Bundle:
    """A small bundle: blobs in a real OCI layout, a chart, an executable tool, trust material."""
    path = root / "bundle"
    layout = OCILayout.create(path / "oci")
    rng = random.Random(7)
    blobs = []
    for size in blob_sizes:
        data = rng.randbytes(size)
        layout.push_blob(data, sha256_digest(data), size)
        blobs.append(BlobEntry(sha256_digest(data), size))
    for directory in ("files", "charts", "trust"):
        (path / directory).mkdir()
    (path / "files" / "tool").write_bytes(TOOL)
    (path / "files" / "tool").chmod(0o755)
    (path / "charts" / "demo-1.0.0.tgz").write_bytes(CHART)
    (path / "trust" / "trusted_root.json").write_bytes(TRUST)
    manifest = BundleManifest(
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        name="test",
        sequence=1,
        layout=layout_files(path),
        blobs=tuple(sorted(blobs, key=lambda b: b.digest)),
        charts=(ChartEntry("demo", "1.0.0", sha256_digest(CHART), "charts/demo-1.0.0.tgz"),),
        files=(
            FileEntry("files/tool", sha256(TOOL), len(TOOL)),
            FileEntry("trust/trusted_root.json", sha256(TRUST), len(TRUST)),
        ),
    )
    key = key or ed25519.Ed25519PrivateKey.generate()
    data = manifest.to_bytes()
    (path / MANIFEST_FILE).write_bytes(data)
    (path / SIGNATURE_FILE).write_bytes(sign_manifest(data, key))
    return Bundle(path, key, manifest)


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path below `root`: its permission bits and, for files, its content."""
    return {
        str(p.relative_to(root)): (p.stat().st_mode & 0o777, None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def flip(path: Path, offset: int) -> bytes:
    """Flip one bit of the byte at `offset`; returns the original content."""
    original = path.read_bytes()
    changed = bytearray(original)
    changed[offset] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return make_bundle(tmp_path)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def archive(bundle: Bundle, out: Path, compress: Compression, split: int | None) -> PartsList:
    return write_archive(
        bundle.path, out / "site", compress=compress, split_size=split, signing_key=bundle.key
    )


def no_leftovers(dest: Path) -> None:
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]


# --------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("split", [None, 4096])
@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_round_trip_gives_the_bundle_back(
    bundle: Bundle, out: Path, tmp_path: Path, compress: Compression, split: int | None
) -> None:
    parts = archive(bundle, out, compress, split)

    stream = "site.tar.zst" if compress == "zstd" else "site.tar"
    names = [p.name for p in parts.parts]
    if split is None:
        assert names == [stream]
    else:
        assert names == [f"{stream}.part{i:04d}" for i in range(1, len(names) + 1)]
        assert len(names) >= 3
        assert all(p.size == split for p in parts.parts[:-1])
        assert 0 < parts.parts[-1].size <= split
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*names, "site.parts.json", "site.parts.json.sig"]
    )
    whole = b"".join((out / name).read_bytes() for name in names)
    report = check_parts(parts_list_path(out / "site"), bundle.public)
    assert report.ok, report.summary()
    assert report.resend == []
    assert report.total_sha256 == sha256(whole) == parts.sha256

    dest = extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    assert dest == tmp_path / "copy"
    assert tree(dest) == tree(bundle.path)
    assert (dest / "files" / "tool").stat().st_mode & 0o777 == 0o755
    assert verify_bundle_dir(dest, bundle.public).ok


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_a_five_mib_blob_in_one_mib_parts_comes_back_exactly(
    tmp_path: Path, out: Path, compress: Compression
) -> None:
    bundle = make_bundle(tmp_path, blob_sizes=(5 * MIB,))
    parts = archive(bundle, out, compress, MIB)

    assert len(parts.parts) == 6  # random data does not compress: 5 MiB and the tar around it
    assert all(p.size == MIB for p in parts.parts[:-1])
    dest = extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    blob = bundle.blob_name()
    assert (dest / blob).read_bytes() == (bundle.path / blob).read_bytes()


def test_an_empty_destination_directory_is_filled(
    bundle: Bundle, out: Path, tmp_path: Path
) -> None:
    archive(bundle, out, "zstd", None)
    (tmp_path / "copy").mkdir()
    extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    assert tree(tmp_path / "copy") == tree(bundle.path)


def test_the_tar_is_deterministic_pax_in_bundle_order(bundle: Bundle, tmp_path: Path) -> None:
    first, second, compressed = (tmp_path / name for name in ("first", "second", "compressed"))
    for directory in (first, second, compressed):
        directory.mkdir()
    archive(bundle, first, "none", None)
    archive(bundle, second, "none", None)
    archive(bundle, compressed, "zstd", None)

    tar_bytes = (first / "site.tar").read_bytes()
    assert (second / "site.tar").read_bytes() == tar_bytes
    with zstandard.ZstdDecompressor().stream_reader(
        (compressed / "site.tar.zst").read_bytes(), read_across_frames=True
    ) as reader:
        assert reader.read() == tar_bytes  # the compressed stream is the same tar

    with tarfile.open(first / "site.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:2] == [MANIFEST_FILE, SIGNATURE_FILE]
    assert names[2:] == sorted(names[2:], key=lambda n: n.split("/"))
    assert set(names) == set(tree(bundle.path))
    for member in members:
        assert (member.mtime, member.uid, member.gid) == (0, 0, 0)
        assert (member.uname, member.gname) == ("", "")
        assert member.isdir() or member.isfile()
        executable = member.isdir() or member.name == "files/tool"
        assert member.mode == (0o755 if executable else 0o644), member.name


def test_the_parts_list_is_signed_canonical_json(bundle: Bundle, out: Path) -> None:
    parts = archive(bundle, out, "zstd", 4096)

    data = parts_list_path(out / "site").read_bytes()
    document = json.loads(data)
    assert canonical_json(document, ascii_only=False) == data
    verify_signature(
        data, signature_path(parts_list_path(out / "site")).read_bytes(), bundle.public
    )
    whole = b"".join((out / p.name).read_bytes() for p in parts.parts)
    with zstandard.ZstdDecompressor().stream_reader(whole, read_across_frames=True) as reader:
        tar_size = len(reader.read())
    assert document == {
        "format": "airgap-parts/v1",
        "compression": "zstd",
        "size": len(whole),
        "sha256": sha256(whole),
        "tarSize": tar_size,
        "manifestSha256": sha256(bundle.manifest_bytes),
        "parts": [
            {"name": p.name, "size": p.size, "sha256": sha256((out / p.name).read_bytes())}
            for p in parts.parts
        ],
    }
    assert PartsList.from_bytes(data, "parts list") == parts


def test_an_ecdsa_p256_operator_key_works_too(tmp_path: Path, out: Path) -> None:
    bundle = make_bundle(tmp_path, key=ec.generate_private_key(ec.SECP256R1()))
    archive(bundle, out, "zstd", 8192)
    dest = extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    assert tree(dest) == tree(bundle.path)


# --------------------------------------------------------------------------- checking
def test_a_flipped_byte_in_any_one_part_names_exactly_that_part(bundle: Bundle, out: Path) -> None:
    parts = archive(bundle, out, "zstd", 4096)
    list_path = parts_list_path(out / "site")
    for part in parts.parts:
        original = flip(out / part.name, part.size // 2)
        report = check_parts(list_path, bundle.public)
        assert not report.ok
        assert report.resend == [part.name]
        assert report.problems[0].reason == "damaged: sha256 differs"
        with pytest.raises(VerificationFailure, match=f"1 of {len(parts.parts)} parts") as failure:
            report.raise_for_failure()
        assert part.name in str(failure.value)
        assert "\n" not in str(failure.value)
        (out / part.name).write_bytes(original)
    assert check_parts(list_path, bundle.public).ok


def test_missing_and_truncated_parts_are_all_named(
    bundle: Bundle, out: Path, tmp_path: Path
) -> None:
    parts = archive(bundle, out, "none", 4096)
    second, third, last = parts.parts[1], parts.parts[2], parts.parts[-1]
    (out / second.name).unlink()
    (out / last.name).unlink()
    (out / third.name).write_bytes((out / third.name).read_bytes()[:-1])

    report = check_parts(parts_list_path(out / "site"), bundle.public)
    assert report.resend == [second.name, third.name, last.name]
    assert [p.reason for p in report.problems] == [
        "missing",
        f"{third.size - 1} bytes, expected {third.size}",
        "missing",
    ]
    assert report.total_sha256 is None
    with pytest.raises(VerificationFailure, match=f"{second.name} \\(missing\\)"):
        extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    no_leftovers(tmp_path / "copy")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every part opened for reading."""
    names: list[str] = []
    real_open = archive_reading.open_for_reading

    def spy(path: Path) -> IO[bytes]:
        names.append(path.name)
        return real_open(path)

    monkeypatch.setattr(archive_reading, "open_for_reading", spy)
    return names


@pytest.mark.parametrize("which", ["parts list", "signature"])
def test_a_flipped_byte_in_the_parts_list_or_its_signature_is_refused_before_any_part_is_read(
    bundle: Bundle, out: Path, tmp_path: Path, opened: list[str], which: str
) -> None:
    parts = archive(bundle, out, "zstd", 4096)
    list_path = parts_list_path(out / "site")
    target = list_path if which == "parts list" else signature_path(list_path)
    size = target.stat().st_size
    for offset in (0, 1, size // 3, size // 2, size - 2, size - 1):
        original = flip(target, offset)
        with pytest.raises(VerificationFailure, match=f"^parts list {list_path}: "):
            check_parts(list_path, bundle.public)
        with pytest.raises(VerificationFailure, match=f"^parts list {list_path}: "):
            extract_archive(list_path, bundle.public, tmp_path / "copy")
        no_leftovers(tmp_path / "copy")
        target.write_bytes(original)
    assert opened == []
    check_parts(list_path, bundle.public)
    assert opened == [p.name for p in parts.parts]  # the spy does see parts being read


def test_a_parts_list_signed_by_another_key_is_refused(bundle: Bundle, out: Path) -> None:
    archive(bundle, out, "none", None)
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(VerificationFailure, match="not by the given key"):
        check_parts(parts_list_path(out / "site"), other)


# -------------------------------------------------------------------- hostile archives
def header(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if "\x00" in name:
        info.pax_headers = {"path": name}  # a ustar name field would end at the NUL
    return info


def member(info: tarfile.TarInfo, data: bytes = b"", *, claimed: int | None = None) -> bytes:
    """A raw tar member: the header (claiming `claimed` bytes, default all), data, padding."""
    info.size = len(data) if claimed is None else claimed
    padding = b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + padding


def bundle_members(bundle: Bundle, skip: frozenset[str] = frozenset()) -> list[bytes]:
    """The bundle's members as the archive writer orders them, without `skip`."""
    head = [MANIFEST_FILE, SIGNATURE_FILE]
    rest = sorted((n for n in tree(bundle.path) if n not in head), key=lambda n: n.split("/"))
    members = []
    for name in [*head, *rest]:
        if name in skip:
            continue
        path = bundle.path / name
        if path.is_dir():
            members.append(member(header(name, tarfile.DIRTYPE)))
        else:
            info = header(name)
            info.mode = path.stat().st_mode & 0o777
            members.append(member(info, path.read_bytes()))
    return members


def signed_archive(
    bundle: Bundle,
    tar: bytes,
    compress: Compression = "none",
    tar_size: int | None = None,
    manifest_sha256: str | None = None,
) -> Path:
    """`tar` as one part with a parts list signed by the bundle's own key: only what is
    inside the stream can be wrong."""
    directory = bundle.path.parent / "hostile"
    directory.mkdir(exist_ok=True)
    stream = zstandard.ZstdCompressor().compress(tar) if compress == "zstd" else tar
    name = "hostile.tar.zst" if compress == "zstd" else "hostile.tar"
    (directory / name).write_bytes(stream)
    parts_list = PartsList(
        compression=compress,
        size=len(stream),
        sha256=sha256(stream),
        tar_size=len(tar) if tar_size is None else tar_size,
        manifest_sha256=manifest_sha256 or sha256(bundle.manifest_bytes),
        parts=(PartEntry(name, len(stream), sha256(stream)),),
    )
    path = directory / "hostile.parts.json"
    write_parts_list(path, parts_list, bundle.key)
    assert check_parts(path, bundle.public).ok
    return path


def refused(bundle: Bundle, parts_list: Path) -> str:
    """Extracting is refused with one line, and leaves nothing behind."""
    dest = bundle.path.parent / "copy"
    with pytest.raises(VerificationFailure) as failure:
        extract_archive(parts_list, bundle.public, dest)
    message = str(failure.value)
    assert "\n" not in message
    assert message.endswith("; nothing was extracted")
    no_leftovers(dest)
    return message


def test_a_hand_made_archive_of_the_bundle_extracts(bundle: Bundle) -> None:
    """The baseline every hostile archive below departs from."""
    parts_list = signed_archive(bundle, b"".join(bundle_members(bundle)) + END)
    dest = extract_archive(parts_list, bundle.public, bundle.path.parent / "copy")
    assert tree(dest) == tree(bundle.path)


HOSTILE_MEMBERS: dict[str, tuple[Callable[[], bytes], str]] = {
    "dot-dot": (lambda: member(header("files/../../evil"), b"x"), r"has a '\.\.' component"),
    "absolute": (lambda: member(header("/etc/evil"), b"x"), r"'/etc/evil' is an absolute path"),
    "symlink": (
        lambda: member(header("files/link", tarfile.SYMTYPE, "/etc/passwd")),
        r"'files/link' is a symbolic link",
    ),
    "hardlink": (
        lambda: member(header("files/hard", tarfile.LNKTYPE, "files/tool")),
        r"'files/hard' is a hard link",
    ),
    "character device": (
        lambda: member(header("files/tty", tarfile.CHRTYPE)),
        r"'files/tty' is a device",
    ),
    "block device": (
        lambda: member(header("files/sda", tarfile.BLKTYPE)),
        r"'files/sda' is a device",
    ),
    "fifo": (lambda: member(header("files/pipe", tarfile.FIFOTYPE)), r"'files/pipe' is a FIFO"),
    "sparse file": (
        lambda: member(header("files/holes", tarfile.GNUTYPE_SPARSE), b"x"),
        r"'files/holes' is a sparse file",
    ),
    "NUL in a name": (
        lambda: member(header("files/tool\x00.txt"), TOOL),
        r"has a NUL in its name",
    ),
    "backslash in a name": (
        lambda: member(header("files\\tool"), TOOL),
        r"has a backslash in its name",
    ),
    "control character in a name": (
        lambda: member(header("files/to\x1bol"), TOOL),
        r"has a control character in its name",
    ),
    "not normalized": (
        lambda: member(header("./files/tool"), TOOL),
        r"'\./files/tool' is not a normalized relative path",
    ),
    "duplicate": (lambda: member(header("files/tool"), TOOL), r"'files/tool' appears twice"),
    "unlisted file": (
        lambda: member(header("files/extra"), b"x"),
        r"'files/extra' is outside the bundle layout \(not listed in airgap-bundle\.json\)",
    ),
    "unlisted directory": (
        lambda: member(header("elsewhere", tarfile.DIRTYPE)),
        r"'elsewhere' is a directory outside the bundle layout",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE_MEMBERS)
def test_a_hostile_member_is_refused(bundle: Bundle, kind: str) -> None:
    make, expected = HOSTILE_MEMBERS[kind]
    tar = b"".join(bundle_members(bundle)) + make() + END
    assert re.search(expected, refused(bundle, signed_archive(bundle, tar)))


def test_an_archive_that_does_not_start_with_the_manifest_is_refused(bundle: Bundle) -> None:
    members = bundle_members(bundle)
    tar = b"".join([members[1], members[0], *members[2:]]) + END
    message = refused(bundle, signed_archive(bundle, tar))
    assert "'airgap-bundle.json.sig' where airgap-bundle.json belongs" in message


def test_a_manifest_other_than_the_recorded_one_is_refused(bundle: Bundle) -> None:
    tar = b"".join(bundle_members(bundle)) + END
    message = refused(bundle, signed_archive(bundle, tar, manifest_sha256="0" * 64))
    assert "airgap-bundle.json in the archive is not the one the parts list records" in message


def test_a_manifest_signature_by_another_key_is_refused(bundle: Bundle) -> None:
    other = sign_manifest(bundle.manifest_bytes, ed25519.Ed25519PrivateKey.generate())
    members = bundle_members(bundle)
    members[1] = member(header(SIGNATURE_FILE), other)
    message = refused(bundle, signed_archive(bundle, b"".join(members) + END))
    assert message.startswith("airgap-bundle.json.sig in the archive: the manifest was signed by")


def test_a_missing_file_is_refused(bundle: Bundle) -> None:
    tar = b"".join(bundle_members(bundle, skip=frozenset({"files/tool"}))) + END
    assert "the archive has no files/tool" in refused(bundle, signed_archive(bundle, tar))


def test_a_blob_whose_size_differs_from_the_manifest_is_refused(bundle: Bundle) -> None:
    blob = bundle.blob_name()
    data = (bundle.path / blob).read_bytes()
    members = bundle_members(bundle, skip=frozenset({blob}))
    tar = b"".join([*members, member(header(blob), data + b"more")]) + END
    message = refused(bundle, signed_archive(bundle, tar))
    size = bundle.manifest.blobs[0].size
    assert f"is {size + 4} bytes in the archive, {size} in airgap-bundle.json" in message


def test_a_blob_with_other_content_is_refused(bundle: Bundle) -> None:
    blob = bundle.blob_name()
    data = bytearray((bundle.path / blob).read_bytes())
    data[0] ^= 1
    members = bundle_members(bundle, skip=frozenset({blob}))
    tar = b"".join([*members, member(header(blob), bytes(data))]) + END
    assert "(corrupted)" in refused(bundle, signed_archive(bundle, tar))


def test_an_index_json_other_than_the_signed_one_is_refused(bundle: Bundle) -> None:
    """index.json names the tags OCI tools read: an archive carrying another one (an extra,
    unsigned tag) is refused like a changed blob."""
    name = "oci/index.json"
    index = json.loads((bundle.path / name).read_bytes())
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": bundle.manifest.blobs[0].digest,
            "size": bundle.manifest.blobs[0].size,
            "annotations": {"org.opencontainers.image.ref.name": "evil:latest"},
        }
    )
    edited = json.dumps(index).encode()
    members = bundle_members(bundle, skip=frozenset({name}))
    tar = b"".join([*members, member(header(name), edited)]) + END
    message = refused(bundle, signed_archive(bundle, tar))
    assert f"{name} is {len(edited)} bytes in the archive" in message


def test_a_directory_left_beside_the_parts_is_used_only_if_it_is_the_named_bundle(
    bundle: Bundle, out: Path, tmp_path: Path
) -> None:
    """`P.bundle` from an earlier import is reused only when it holds the manifest the signed
    parts list records; another bundle (an older one signed by the same key) is refused."""
    archive(bundle, out, "zstd", None)
    parts = parts_list_path(out / "site")
    unpacked, manifest_sha256 = unpacked_bundle(parts, bundle.public)
    assert unpacked == out / "site.bundle"
    assert manifest_sha256 == sha256(bundle.manifest_bytes)
    assert tree(unpacked) == tree(bundle.path)
    assert unpacked_bundle(parts, bundle.public) == (unpacked, manifest_sha256)

    older = make_bundle(tmp_path / "older", (100, 3000), key=bundle.key)
    shutil.rmtree(unpacked)
    shutil.copytree(older.path, unpacked)
    with pytest.raises(VerificationFailure, match=r"does not hold the bundle .* names"):
        unpacked_bundle(parts, bundle.public)
    (unpacked / MANIFEST_FILE).unlink()
    with pytest.raises(VerificationFailure, match=r"does not hold the bundle .* names"):
        unpacked_bundle(parts, bundle.public)


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_a_header_claiming_more_than_the_stream_holds_is_refused(
    bundle: Bundle, compress: Compression
) -> None:
    members = bundle_members(bundle, skip=frozenset({"files/tool"}))
    cut = member(header("files/tool"), TOOL)[: -tarfile.BLOCKSIZE + len(TOOL) // 2]
    message = refused(bundle, signed_archive(bundle, b"".join(members) + cut, compress))
    assert f"the archive ends inside 'files/tool', whose header claims {len(TOOL)} bytes" in message


def test_a_header_claiming_less_than_its_data_is_refused(bundle: Bundle) -> None:
    """The rest of the data would be read as the next header; the tar reader stops there
    without a word, and the check for data after the end catches it."""
    members = bundle_members(bundle, skip=frozenset({"files/tool"}))
    lying = member(header("files/tool"), TOOL + b"A" * 600, claimed=len(TOOL))
    message = refused(bundle, signed_archive(bundle, b"".join([*members, lying]) + END))
    assert "the tar stream has data after byte" in message


def test_a_stream_without_an_end_of_archive_marker_is_refused(bundle: Bundle) -> None:
    tar = b"".join(bundle_members(bundle))
    message = refused(bundle, signed_archive(bundle, tar))
    assert "the tar stream has no end-of-archive marker (truncated)" in message


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_a_stream_that_continues_after_the_end_is_refused(
    bundle: Bundle, compress: Compression
) -> None:
    tar = b"".join(bundle_members(bundle)) + END + member(header("files/later"), b"surprise")
    message = refused(bundle, signed_archive(bundle, tar, compress))
    assert "the tar stream has data after byte" in message


def test_a_stream_that_unpacks_to_more_than_recorded_is_refused(bundle: Bundle) -> None:
    """64 MiB of zeros compress to almost nothing; reading stops at the recorded size."""
    tar = b"".join(bundle_members(bundle)) + END
    bomb = tar + b"\0" * (64 * MIB)
    message = refused(bundle, signed_archive(bundle, bomb, "zstd", tar_size=len(tar)))
    assert f"unpacks to more than the {len(tar)} bytes its parts list records" in message


def test_a_chart_larger_than_the_bound_is_refused_before_it_is_read(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_layout, "MAX_CHART_SIZE", 1024)
    chart = "charts/demo-1.0.0.tgz"
    members = bundle_members(bundle, skip=frozenset({chart}))
    tar = b"".join([*members, member(header(chart), b"\0" * 4096)]) + END
    message = refused(bundle, signed_archive(bundle, tar, "zstd"))
    assert "chart demo 1.0.0 (charts/demo-1.0.0.tgz) claims 4096 bytes, more than the 1024" in (
        message
    )


def test_a_part_changed_after_the_check_is_refused(
    bundle: Bundle, out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = archive(bundle, out, "none", 4096)
    real_check = check_parts

    def check_then_change(path: Path, key: PublicKey) -> PartsReport:
        report = real_check(path, key)
        flip(out / parts.parts[-1].name, 0)  # the part changes on its way to the reader
        return report

    monkeypatch.setattr(archive_extract, "check_parts", check_then_change)
    with pytest.raises(VerificationFailure, match="changed after it was checked"):
        extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    no_leftovers(tmp_path / "copy")


def test_a_destination_with_something_in_it_is_refused(
    bundle: Bundle, out: Path, tmp_path: Path
) -> None:
    archive(bundle, out, "none", None)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "keep").write_bytes(b"mine")
    with pytest.raises(UsageError, match="is not empty"):
        extract_archive(parts_list_path(out / "site"), bundle.public, tmp_path / "copy")
    assert [p.name for p in (tmp_path / "copy").iterdir()] == ["keep"]


# ----------------------------------------------------------------------- failed creates
class FullDisk(io.RawIOBase):
    """A part file on a disk that fills up after `room` bytes."""

    def __init__(self, path: Path, room: list[int]) -> None:
        super().__init__()
        self._file = path.open("xb")
        self._room = room

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        if len(data) > self._room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room[0] -= len(data)
        return self._file.write(data)

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()
        super().close()


@pytest.mark.parametrize("split", [None, 4096])
@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_a_full_disk_leaves_no_parts_list_and_no_parts(
    bundle: Bundle,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    compress: Compression,
    split: int | None,
) -> None:
    room = [10_000]  # shared by all parts: the disk, not one file
    monkeypatch.setattr(archive_write, "_open_part", lambda path: FullDisk(path, room))
    with pytest.raises(UsageError) as failure:
        archive(bundle, out, compress, split)
    message = str(failure.value)
    assert "No space left on device" in message
    assert message.endswith("the archive was not created")
    assert list(out.iterdir()) == []


def test_a_full_disk_at_the_parts_list_leaves_nothing(
    bundle: Bundle, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name.endswith(".parts.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        atomic_write(path, data, mode)

    monkeypatch.setattr(archive_parts_list, "atomic_write", write)
    with pytest.raises(UsageError, match="No space left on device"):
        archive(bundle, out, "zstd", 4096)
    assert list(out.iterdir()) == []


def test_a_corrupted_blob_is_found_on_the_way_and_nothing_is_kept(
    bundle: Bundle, out: Path
) -> None:
    flip(bundle.path / bundle.blob_name(2), 100)
    with pytest.raises(VerificationFailure, match=r"\(corrupted\); the archive was not created"):
        archive(bundle, out, "zstd", 4096)
    assert list(out.iterdir()) == []


def test_a_bundle_signed_by_another_key_is_not_archived(bundle: Bundle, out: Path) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VerificationFailure, match="not by the given key"):
        write_archive(
            bundle.path, out / "site", compress="zstd", split_size=None, signing_key=other
        )
    assert list(out.iterdir()) == []


def test_a_file_the_manifest_does_not_list_is_not_archived(bundle: Bundle, out: Path) -> None:
    (bundle.path / "files" / "notes.txt").write_bytes(b"left over")
    with pytest.raises(VerificationFailure, match=r"'files/notes\.txt' is not listed"):
        archive(bundle, out, "zstd", None)
    assert list(out.iterdir()) == []


def test_a_symbolic_link_in_the_bundle_is_not_archived(bundle: Bundle, out: Path) -> None:
    (bundle.path / "files" / "link").symlink_to("tool")
    with pytest.raises(VerificationFailure, match="'files/link' is a symbolic link"):
        archive(bundle, out, "zstd", None)


def test_an_existing_archive_is_never_overwritten(bundle: Bundle, out: Path) -> None:
    archive(bundle, out, "zstd", None)
    before = tree(out)
    with pytest.raises(UsageError, match=r"site\.parts\.json already exists"):
        archive(bundle, out, "zstd", None)
    assert tree(out) == before


def test_leftovers_of_an_interrupted_create_are_replaced(bundle: Bundle, out: Path) -> None:
    """Without a parts list, parts on disk are nothing: a new create clears them."""
    for name in ("site.tar.zst.part0001", "site.tar.zst.part0009", "site.tar.zst.part0002.partial"):
        (out / name).write_bytes(b"from a create that was killed")
    parts = archive(bundle, out, "zstd", 8192)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(p.name for p in parts.parts), "site.parts.json", "site.parts.json.sig"]
    )
    assert check_parts(parts_list_path(out / "site"), bundle.public).ok


def test_a_part_file_is_only_renamed_into_place_when_complete(
    bundle: Bundle, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_open = archive_write._open_part

    def open_part(path: Path) -> IO[bytes]:
        seen.append(path.name)
        return real_open(path)

    monkeypatch.setattr(archive_write, "_open_part", open_part)
    parts = archive(bundle, out, "none", 8192)
    assert seen == [f"{p.name}.partial" for p in parts.parts]
