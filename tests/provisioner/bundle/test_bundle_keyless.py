"""Keyless bundle signatures against the real private Sigstore stack (tests/stack).

A bundle and its archive are signed with a Fulcio certificate for the stack's Kubernetes-shaped
token, logged in Rekor v1, through sigstore-python (a client trust config built from the stack's
trusted root and signing config). Then every Sigstore service is stopped, and the bundle, the
archive and every refusal are checked with nothing to contact: only the trusted root carried in
advance and the expected identity and issuer. The stack stays stopped from the first offline test
to the end of the module, so the tests that need it running come first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from offline.errors import AirgapError, UsageError, VerificationFailure
from provisioner.archive.check import check_parts
from provisioner.archive.extract import extract_archive
from provisioner.archive.names import parts_list_path, signature_files, signature_path
from provisioner.archive.write import write_archive
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.detached import sign_detached, signature_name, verify_detached
from provisioner.bundle.keyless import KeylessSigner, KeylessTrust
from provisioner.bundle.manifest import MANIFEST_FILE
from provisioner.bundle.signing import PrivateKey, load_public_key
from provisioner.bundle.spec import load_spec
from provisioner.create.create import create_bundle
from tests.bundle_sites import operator_key, sha256_file, write_spec
from tests.conftest import REPO
from tests.stack import SigstoreStack, pki

pytestmark = pytest.mark.stack

SUBJECT = "system:serviceaccount:release:bundler"
OTHER_SUBJECT = "system:serviceaccount:release:someone-else"
CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
KEYLESS_NAME = f"{MANIFEST_FILE}.sigstore.json"
PUBLIC_GOOD_ROOT = REPO / "offline" / "examples" / "trusted_root.json"


def client_trust_config(stack: SigstoreStack, path: Path) -> Path:
    """What sigstore-python signs with for a private instance: the trusted root and the
    signing config (v0.2: Fulcio, Rekor v1, the OIDC issuer, no TSA), in one document."""
    document = {
        "mediaType": CLIENT_TRUST_CONFIG,
        "trustedRoot": json.loads(stack.trusted_root.read_text()),
        "signingConfig": json.loads(stack.signing_config.read_text()),
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, repr(message)
    return message


def refuses(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


@dataclass
class World:
    stack: SigstoreStack
    dir: Path
    trust_config: Path
    spec: Path
    keyless: Path  # a bundle signed keylessly by SUBJECT
    keyed: Path  # the same spec, signed with an operator key
    key: PrivateKey
    public: Path
    archive: Path  # the keyless bundle's parts list, written with SUBJECT's token too
    late_token: str  # taken while the stack ran, for a create once it is down

    def trust(
        self,
        identity: str | None = None,
        issuer: str | None = None,
        trusted_root: Path | None = None,
    ) -> KeylessTrust:
        return KeylessTrust(
            trusted_root or self.stack.trusted_root,
            identity or self.stack.identity(SUBJECT),
            issuer or self.stack.oidc_issuer,
        )

    def signer(self, subject: str = SUBJECT) -> KeylessSigner:
        return KeylessSigner(self.stack.token(subject), self.trust_config)


def _spec(directory: Path, stack: SigstoreStack) -> Path:
    tool = directory / "tool.sh"
    tool.write_bytes(b"#!/bin/sh\necho carried across the gap\n")
    tool.chmod(0o755)
    return write_spec(
        directory / "spec.yaml",
        files=[{"path": "bin/tool.sh", "source": "tool.sh", "sha256": sha256_file(tool)}],
        # The root that verifies this bundle travels in it too, for the next one.
        trust=[
            {
                "path": "private/trusted_root.json",
                "source": str(stack.trusted_root),
                "sha256": sha256_file(stack.trusted_root),
            }
        ],
    )


@pytest.fixture(scope="module")
def world(sigstore_stack: SigstoreStack, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Everything that needs the stack running: two bundles and an archive."""
    stack = sigstore_stack
    directory = tmp_path_factory.mktemp("keyless")
    trust_config = client_trust_config(stack, directory / "trust-config.json")
    spec = _spec(directory, stack)
    signer = KeylessSigner(stack.token(SUBJECT), trust_config)
    keyless = create_bundle(load_spec(spec), directory / "keyless", signing_key=signer).path
    public, key = operator_key(directory)
    keyed = create_bundle(load_spec(spec), directory / "keyed", signing_key=key).path
    out = directory / "usb" / "site"
    out.parent.mkdir()
    # Uncompressed and split small: the stream's parts can be read back as one tar.
    write_archive(keyless, out, compress="none", split_size=1024, signing_key=signer)

    return World(
        stack,
        directory,
        trust_config,
        spec,
        keyless,
        keyed,
        key,
        public,
        parts_list_path(out),
        stack.token(SUBJECT),
    )


@pytest.fixture(scope="module")
def offline(world: World) -> Iterator[World]:
    """Every Sigstore service down (and MariaDB), as inside the gap."""
    stack = world.stack
    with stack.stopped():
        for url in (stack.rekor_url, stack.fulcio_url, stack.ctlog_url, stack.oidc_issuer):
            assert refuses(url), f"{url} still answers"
        yield world


# -- online: what was written, and refusals that need the stack --------------------------------


def test_create_writes_a_sigstore_bundle_and_no_key_signature(world: World) -> None:
    names = {p.name for p in world.keyless.iterdir()}
    assert KEYLESS_NAME in names
    assert f"{MANIFEST_FILE}.sig" not in names
    assert not world.keyless.with_name("keyless.partial").exists()
    document = json.loads((world.keyless / KEYLESS_NAME).read_text())
    assert document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    manifest = (world.keyless / MANIFEST_FILE).read_bytes()
    digest = document["messageSignature"]["messageDigest"]
    assert base64.b64decode(digest["digest"]) == hashlib.sha256(manifest).digest()
    (entry,) = document["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert entry["inclusionProof"]["checkpoint"]["envelope"]  # what offline needs


def test_archive_is_signed_keylessly_and_carries_the_sigstore_bundle(world: World) -> None:
    assert signature_files(world.archive) == [signature_path(world.archive, world.trust())]
    assert signature_path(world.archive, world.trust()).name == "site.parts.json.sigstore.json"
    parts = sorted(world.archive.parent.glob("site.tar.part*"))
    joined = world.dir / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        assert tar.getnames()[:2] == [MANIFEST_FILE, KEYLESS_NAME]


def test_a_token_fulcio_refuses_fails_at_signing_and_leaves_no_bundle(
    world: World, tmp_path: Path
) -> None:
    # Well formed, for Sigstore, unexpired: only Fulcio can tell it is from an issuer it does
    # not trust. The create runs, then signing fails.
    token = world.stack.token(SUBJECT, issuer="http://127.0.0.1:9/not-the-issuer")
    signer = KeylessSigner(token, world.trust_config)
    out = tmp_path / "out"
    with pytest.raises(AirgapError) as exc:
        create_bundle(load_spec(world.spec), out, signing_key=signer)
    message = one_line(exc)
    # sigstore-python drops Fulcio's reason; the message carries it from the response.
    assert message.startswith(f"keyless signing failed: {world.stack.fulcio_url}/api/v2/")
    assert " answered 400 Bad Request: There was an error processing the identity token" in message
    assert message.endswith("; nothing was signed")
    assert not out.exists()
    partial = tmp_path / "out.partial"
    assert (partial / "files" / "bin" / "tool.sh").is_file()  # the work done is kept
    assert not (partial / MANIFEST_FILE).exists()
    assert not (partial / KEYLESS_NAME).exists()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 1_000_000_000}, "Signature has expired"),
        ({"audience": "not-sigstore"}, "Audience doesn't match"),
    ],
)
def test_a_token_that_cannot_sign_fails_before_anything_is_done(
    world: World, tmp_path: Path, claims: dict[str, object], reason: str
) -> None:
    signer = KeylessSigner(world.stack.token(SUBJECT, **claims), world.trust_config)
    out = tmp_path / "out"
    with pytest.raises(UsageError) as exc:
        create_bundle(load_spec(world.spec), out, signing_key=signer)
    assert one_line(exc) == f"the identity token is not usable: {reason}"
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_garbage_token_and_missing_trust_config(world: World, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        KeylessSigner("not.a.jwt", world.trust_config).preflight()
    assert one_line(exc).startswith("the identity token is not usable: ")
    with pytest.raises(UsageError) as exc:
        KeylessSigner(world.stack.token(), tmp_path / "none.json").preflight()
    assert one_line(exc) == f"no such Sigstore trust config {tmp_path / 'none.json'}"
    broken = tmp_path / "broken.json"
    broken.write_text('{"mediaType": "something else"}')
    with pytest.raises(UsageError) as exc:
        KeylessSigner(world.stack.token(), broken).preflight()
    assert one_line(exc) == (
        f"cannot load the Sigstore trust config {broken}: mediaType: Input should be "
        f"'{CLIENT_TRUST_CONFIG}'"
    )


def test_a_token_file_is_read_at_each_signature(world: World, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("expired, for now\n")
    signer = KeylessSigner(token, world.trust_config)
    token.write_text(world.stack.token(SUBJECT) + "\n")  # refreshed, as a kubelet does
    signature = sign_detached(b"data", signer)
    assert verify_detached(b"data", signature, world.trust(), "data") == (
        f"{world.stack.identity(SUBJECT)} ({world.stack.oidc_issuer})"
    )


def test_archive_by_another_identity_than_the_bundle_is_refused(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "other"
    with pytest.raises(VerificationFailure) as exc:
        write_archive(
            world.keyless,
            out,
            compress="zstd",
            split_size=None,
            signing_key=world.signer(OTHER_SUBJECT),
        )
    message = one_line(exc)
    assert f"is signed by {world.stack.identity(SUBJECT)} " in message
    assert f"this token signs as {world.stack.identity(OTHER_SUBJECT)} " in message
    assert message.endswith("; the archive was not created")
    assert list(tmp_path.iterdir()) == []


# -- offline: every Sigstore service down --------------------------------------------------------


def test_keyless_bundle_verifies_with_every_service_down(offline: World) -> None:
    report = verify_bundle_dir(offline.keyless, offline.trust())
    assert report.ok, report.problem
    assert report.signer == f"{offline.stack.identity(SUBJECT)} ({offline.stack.oidc_issuer})"
    assert report.files_checked == 2
    assert f"signed by {offline.stack.identity(SUBJECT)}" in report.summary()


def test_wrong_identity_is_refused(offline: World) -> None:
    wrong = offline.stack.identity(OTHER_SUBJECT)
    report = verify_bundle_dir(offline.keyless, offline.trust(identity=wrong))
    assert not report.ok and not report.signature_ok
    assert report.problem is not None and "\n" not in report.problem
    assert report.problem.startswith("keyless signature: ")
    assert "identity" in report.problem and wrong in report.problem


def test_wrong_issuer_is_refused(offline: World) -> None:
    report = verify_bundle_dir(offline.keyless, offline.trust(issuer="https://issuer.example"))
    assert report.problem is not None and "\n" not in report.problem
    assert report.problem.startswith("keyless signature: ")
    assert "issuer" in report.problem and "https://issuer.example" in report.problem


def _root_with_another_fulcio(stack: SigstoreStack, path: Path) -> Path:
    """The stack's trusted root with its Fulcio CA replaced by another, same name."""
    document = json.loads(stack.trusted_root.read_text())
    other = pki.fulcio_root(pki.ec_key())
    der = other.public_bytes(serialization.Encoding.DER)
    (authority,) = document["certificateAuthorities"]
    authority["certChain"]["certificates"] = [{"rawBytes": base64.b64encode(der).decode()}]
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("root", ["another Fulcio CA", "the public-good root"])
def test_another_trusted_root_is_refused(offline: World, tmp_path: Path, root: str) -> None:
    if root == "another Fulcio CA":
        path = _root_with_another_fulcio(offline.stack, tmp_path / "root.json")
    else:
        path = PUBLIC_GOOD_ROOT
    report = verify_bundle_dir(offline.keyless, offline.trust(trusted_root=path))
    assert not report.signature_ok
    assert report.problem is not None and "\n" not in report.problem
    assert report.problem.startswith("keyless signature: ")


def test_a_flipped_manifest_byte_is_refused(offline: World, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(offline.keyless, copy)
    manifest = copy / MANIFEST_FILE
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x01
    manifest.write_bytes(bytes(data))
    report = verify_bundle_dir(copy, offline.trust())
    assert not report.signature_ok and report.manifest is None  # never parsed
    assert report.problem is not None and "\n" not in report.problem
    assert report.problem.startswith("keyless signature: ")
    assert "digest differs" in report.problem


def test_keyed_and_keyless_bundles_checked_the_other_way_are_refused(offline: World) -> None:
    report = verify_bundle_dir(offline.keyed, offline.trust())
    assert report.problem == (
        f"{KEYLESS_NAME} is missing ({MANIFEST_FILE} is signed with a key: check it with the "
        "public key)"
    )
    report = verify_bundle_dir(offline.keyless, load_public_key(offline.public))
    assert report.problem is not None
    assert report.problem.startswith(f"{MANIFEST_FILE}.sig is missing ({MANIFEST_FILE} is signed")
    # Even with the file renamed, a Sigstore bundle is no key signature, nor the reverse.
    signature = (offline.keyed / f"{MANIFEST_FILE}.sig").read_bytes()
    manifest = (offline.keyed / MANIFEST_FILE).read_bytes()
    with pytest.raises(VerificationFailure) as exc:
        verify_detached(manifest, signature, offline.trust(), MANIFEST_FILE)
    assert one_line(exc).startswith("malformed keyless signature: ")


def test_keyless_archive_round_trip_offline(offline: World, tmp_path: Path) -> None:
    trust = offline.trust()
    report = check_parts(offline.archive, trust)
    assert report.ok, report.summary()
    assert len(report.parts_list.parts) > 1
    dest = extract_archive(offline.archive, trust, tmp_path / "copy")
    assert (dest / KEYLESS_NAME).read_bytes() == (offline.keyless / KEYLESS_NAME).read_bytes()
    assert verify_bundle_dir(dest, trust).ok


def test_keyless_archive_refusals_offline(offline: World, tmp_path: Path) -> None:
    wrong = offline.trust(identity=offline.stack.identity(OTHER_SUBJECT))
    with pytest.raises(VerificationFailure) as exc:
        check_parts(offline.archive, wrong)
    message = one_line(exc)
    assert message.startswith(f"parts list {offline.archive}: ")
    assert offline.stack.identity(OTHER_SUBJECT) in message
    with pytest.raises(UsageError) as missing:
        check_parts(offline.archive, load_public_key(offline.public))
    assert one_line(missing) == (
        f"the parts list signature {offline.archive}.sig is missing "
        f"(there is {offline.archive.name}.sigstore.json: signed the other way)"
    )
    with pytest.raises(VerificationFailure):
        extract_archive(offline.archive, wrong, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_creating_with_sigstore_unreachable_leaves_no_bundle(
    offline: World, tmp_path: Path
) -> None:
    signer = KeylessSigner(offline.late_token, offline.trust_config)
    out = tmp_path / "out"
    began = time.monotonic()
    with pytest.raises(AirgapError) as exc:
        create_bundle(load_spec(offline.spec), out, signing_key=signer)
    assert time.monotonic() - began < 30
    assert one_line(exc) == (
        f"keyless signing failed: cannot connect to {offline.stack.fulcio_url}/api/v2/signingCert "
        "(Connection refused); nothing was signed"
    )
    assert not out.exists()
    assert not (tmp_path / "out.partial" / MANIFEST_FILE).exists()
    assert not (tmp_path / "out.partial" / KEYLESS_NAME).exists()


def test_archiving_a_keyed_bundle_keylessly_is_refused_before_signing(
    offline: World, tmp_path: Path
) -> None:
    signer = KeylessSigner(offline.late_token, offline.trust_config)
    with pytest.raises(UsageError) as exc:
        write_archive(
            offline.keyed, tmp_path / "site", compress="none", split_size=None, signing_key=signer
        )
    assert one_line(exc) == (
        f"bundle {offline.keyed} has no {KEYLESS_NAME}: the archive is signed keylessly, so the "
        "bundle must be signed the same way"
    )
    assert list(tmp_path.iterdir()) == []


def test_signature_names_and_no_token_in_a_repr(offline: World) -> None:
    assert signature_name("x.json", offline.trust()) == "x.json.sigstore.json"
    assert signature_name("x.json", offline.key) == "x.json.sig"
    assert signature_name("x.json", load_public_key(offline.public)) == "x.json.sig"
    signer = KeylessSigner(offline.late_token, offline.trust_config)
    assert offline.late_token not in repr(signer)


def test_a_sigstore_that_never_answers_times_out(offline: World, tmp_path: Path) -> None:
    # Accepts connections (the kernel's backlog) and never answers.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        document = json.loads(offline.trust_config.read_text())
        document["signingConfig"]["caUrls"][0]["url"] = url
        config = tmp_path / "hung.json"
        config.write_text(json.dumps(document))
        signer = KeylessSigner(offline.late_token, config, timeout=1.0)
        began = time.monotonic()
        with pytest.raises(AirgapError) as exc:
            signer.sign(b"data")
        assert time.monotonic() - began < 5
    assert one_line(exc) == (
        "keyless signing failed: no answer from Sigstore within 1 s; nothing was signed"
    )
