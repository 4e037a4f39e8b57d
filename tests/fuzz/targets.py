"""What the fuzz tests feed and what must hold.

Seeds are real inputs: the Sigstore client conformance cases (bundles and trusted roots made by
the public-good instance), the quick-start examples, and bundles and checkpoints made by the
test log (tests/tlog_fixture.py). Each target runs the verifier's own entry point on a mutated
input and reports whether it passed; anything raised that is not one of the project's errors
(offline.errors) escapes, and so does an error message of more than one line.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline.errors import AirgapError
from offline.sigstore.model import parse_bundle
from offline.sigstore.verify import Artifact, IdentityPolicy, KeyPolicy, SignerPolicy, verify_bundle
from offline.trust.keys import load_public_key_file
from offline.trust.root import parse_trusted_root
from tests.bundle_factory import KeySigner, legacy_bundle
from tests.conftest import REPO, TESTDATA
from tests.fuzz.mutations import MISSING, as_number, get, leniently_decoded
from tests.offline.policy.test_policy import GOOD
from tests.tlog_fixture import TestLog, trusted_root_document

CONFORMANCE = TESTDATA / "conformance"
EXAMPLES = REPO / "offline" / "examples"
# Bundles cosign made against the private stack (tests/fuzz/seeds/README.md), laid out like
# the conformance cases; $AIRGAP_FUZZ_SEEDS names more such directories (os.pathsep-separated).
COSIGN_SEEDS = Path(__file__).parent / "seeds"
EXTRA_SEEDS_ENV = "AIRGAP_FUZZ_SEEDS"
DEFAULT_IDENTITY = IdentityPolicy(
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    "https://token.actions.githubusercontent.com",
)


def outcome(run: Callable[[], object]) -> bool:
    """True when `run` passes, False on one of the project's errors (which must be one line);
    any other exception propagates and fails the test."""
    try:
        run()
    except AirgapError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), f"a multi-line error: {message!r}"
        return False
    return True


# --------------------------------------------------------------------------- bundle cases
@dataclass(frozen=True)
class BundleCase:
    name: str
    bundle: dict[str, Any]
    root: dict[str, Any]
    artifact: Artifact
    policy: SignerPolicy

    @property
    def should_pass(self) -> bool:
        return not self.name.endswith("_fail")

    def verify(self, bundle: Any = None, root: Any = None) -> None:
        """What `airgap verify-bundle` does with these documents (without a checkpoint store)."""
        trusted_root = parse_trusted_root(json.dumps(self.root if root is None else root))
        parsed = parse_bundle(json.dumps(self.bundle if bundle is None else bundle).encode())
        verify_bundle(parsed, self.artifact, trusted_root, self.policy)

    def __repr__(self) -> str:  # Hypothesis prints the case by name, not its documents
        return f"BundleCase({self.name!r})"


def _seed_directories() -> list[Path]:
    roots = [CONFORMANCE, COSIGN_SEEDS]
    roots += [Path(p) for p in os.environ.get(EXTRA_SEEDS_ENV, "").split(os.pathsep) if p]
    return [d for root in roots if root.is_dir() for d in sorted(root.iterdir()) if d.is_dir()]


def _conformance_case(directory: Path) -> BundleCase | None:
    try:
        bundle = json.loads((directory / "bundle.sigstore.json").read_bytes())
    except ValueError:
        return None  # bundle-malformed-json_fail: nothing to mutate as JSON
    root_file = directory / "trusted_root.json"
    if not root_file.exists():
        root_file = CONFORMANCE / "trusted_root.production.json"
    artifact_file = directory / "artifact"
    if not artifact_file.exists():
        artifact_file = CONFORMANCE / "a.txt"
    policy: SignerPolicy
    if (directory / "key.pub").exists():
        policy = KeyPolicy(load_public_key_file(directory / "key.pub"))
    elif (directory / "identity").exists():
        policy = IdentityPolicy(
            (directory / "identity").read_text().strip(),
            (directory / "issuer").read_text().strip(),
        )
    else:
        policy = DEFAULT_IDENTITY
    name = directory.name if directory.parent == CONFORMANCE else f"seeds/{directory.name}"
    return BundleCase(
        name,
        bundle,
        json.loads(root_file.read_bytes()),
        Artifact.from_bytes(artifact_file.read_bytes(), artifact_file.name),
        policy,
    )


def _test_log_cases() -> Iterator[BundleCase]:
    log = TestLog()
    signer = KeySigner()
    logged = signer.log_artifact(log, b"hello")
    log.extend(6)
    root = trusted_root_document(log)
    policy = KeyPolicy(signer.key.public_key())
    artifact = Artifact.from_bytes(b"hello", "hello")
    yield BundleCase("test-log-key-v0.3", logged.bundle(log), root, artifact, policy)
    yield BundleCase("test-log-legacy-v0.1", legacy_bundle(logged, log), root, artifact, policy)


@functools.cache
def bundle_cases() -> tuple[BundleCase, ...]:
    cases = [_conformance_case(d) for d in _seed_directories()]
    examples = json.loads((EXAMPLES / "trusted_root.json").read_bytes())
    artifact = Artifact.from_bytes((EXAMPLES / "a.txt").read_bytes(), "a.txt")
    for name in ("a.txt.sigstore.json", "a.txt.older.sigstore.json"):
        bundle = json.loads((EXAMPLES / name).read_bytes())
        cases.append(BundleCase(f"examples/{name}", bundle, examples, artifact, DEFAULT_IDENTITY))
    cases.extend(_test_log_cases())
    return tuple(c for c in cases if c is not None)


def bundle_case(name: str) -> BundleCase:
    return next(c for c in bundle_cases() if c.name == name)


@functools.cache
def passing_cases() -> tuple[BundleCase, ...]:
    return tuple(c for c in bundle_cases() if c.should_pass)


# ------------------------------------------------------------- security-relevant fields
# Fields whose change must make verification fail: the signature and what it covers, the
# signing certificate, and everything that proves the log entry. Deleting an optional field
# is not a change here (a v0.1 bundle with a SET needs no proof), a different value is.
_B64 = "b64"
_NUMBER = "number"
_TEXT = "text"
_NOTE_TEXT = "note-text"
_TOP_FIELDS: tuple[tuple[tuple[str | int, ...], str], ...] = (
    (("messageSignature", "signature"), _B64),
    (("messageSignature", "messageDigest", "digest"), _B64),
    (("dsseEnvelope", "payload"), _B64),
    (("dsseEnvelope", "payloadType"), _TEXT),
    (("dsseEnvelope", "signatures", 0, "sig"), _B64),
    (("verificationMaterial", "certificate", "rawBytes"), _B64),
    (("verificationMaterial", "x509CertificateChain", "certificates", 0, "rawBytes"), _B64),
)
_ENTRY_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("canonicalizedBody",), _B64),
    (("logId", "keyId"), _B64),
    (("inclusionPromise", "signedEntryTimestamp"), _B64),
    (("inclusionProof", "rootHash"), _B64),
    (("inclusionProof", "treeSize"), _NUMBER),
    (("inclusionProof", "logIndex"), _NUMBER),
    (("inclusionProof", "hashes"), _B64),
    (("inclusionProof", "checkpoint", "envelope"), _NOTE_TEXT),
)
# Covered by the signed entry timestamp, so relevant while the SET is there and unchanged.
_SET_FIELDS: tuple[tuple[str, ...], ...] = (("integratedTime",), ("logIndex",))


def _normal(value: Any, kind: str) -> Any:
    if kind == _B64:
        if isinstance(value, list):
            return tuple(leniently_decoded(v) for v in value)
        return leniently_decoded(value)
    if kind == _NUMBER:
        return as_number(value)
    if kind == _NOTE_TEXT and isinstance(value, str):
        return value.split("\n\n")[0]  # the signed text; unknown signature lines may vary
    return value


def _changed(seed: Any, final: Any, path: tuple[str | int, ...], kind: str) -> bool:
    value = get(final, path)
    if value is MISSING:
        return False
    return bool(_normal(get(seed, path), kind) != _normal(value, kind))


def _entry_changed(seed_entry: Any, entry: Any) -> bool:
    if any(_changed(seed_entry, entry, path, kind) for path, kind in _ENTRY_FIELDS):
        return True
    promise = get(entry, ("inclusionPromise",))
    if promise is not MISSING and promise == get(seed_entry, ("inclusionPromise",)):
        return any(_changed(seed_entry, entry, p, _NUMBER) for p in _SET_FIELDS)
    return False


def as_verified(document: Any) -> Any:
    """`document` without what proves nothing: an inclusion proof with no checkpoint (a v0.1
    entry stands on its SET, the proof need only lead to the unsigned root it names; from v0.2
    on such a proof is refused), so changing it is not a change of a security field."""
    result = copy.deepcopy(document)
    entries = get(result, ("verificationMaterial", "tlogEntries"))
    for entry in entries if isinstance(entries, list) else []:
        proof = entry.get("inclusionProof") if isinstance(entry, dict) else None
        if isinstance(proof, dict) and not isinstance(proof.get("checkpoint"), dict):
            del entry["inclusionProof"]
    return result


def security_fields_changed(seed: dict[str, Any], final: Any) -> bool:
    """Whether `final` differs from `seed` in a field that verification must depend on."""
    if any(_changed(seed, final, path, kind) for path, kind in _TOP_FIELDS):
        return True
    seed_entries = get(seed, ("verificationMaterial", "tlogEntries"))
    entries = get(final, ("verificationMaterial", "tlogEntries"))
    if not isinstance(entries, list) or not isinstance(seed_entries, list):
        return False
    # An entry counts as changed when it matches no seed entry (entries may be reordered).
    return any(all(_entry_changed(s, e) for s in seed_entries) for e in entries)


# ---------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class CheckpointSeed:
    name: str
    note: str
    root: dict[str, Any]
    valid: bool  # whether a log of `root` signed it (a `_fail` case's checkpoint may not be)
    witness_policy: str | None = None  # a policy its cosignatures satisfy

    def __repr__(self) -> str:
        return f"CheckpointSeed({self.name!r})"


_FAIL_CASES_WITH_INVALID_CHECKPOINTS = frozenset(
    {
        "bundle-from-wrong-instance_fail",  # signed by a log the trusted root does not list
        "invalid-checkpoint-signature_fail",
        "rekor2-checkpoint-missing-log-signature_fail",
        "rekor2-checkpoint-missing-origin_fail",
        "rekor2-checkpoint-missing-size_fail",
    }
)


@functools.cache
def checkpoint_seeds() -> tuple[CheckpointSeed, ...]:
    from tests.tlog_fixture import Witness

    seeds = []
    for case in bundle_cases():
        for i, entry in enumerate(get(case.bundle, ("verificationMaterial", "tlogEntries")) or []):
            envelope = get(entry, ("inclusionProof", "checkpoint", "envelope"))
            if isinstance(envelope, str):
                valid = case.name not in _FAIL_CASES_WITH_INVALID_CHECKPOINTS
                seeds.append(CheckpointSeed(f"{case.name}[{i}]", envelope, case.root, valid))
    examples = json.loads((EXAMPLES / "trusted_root.json").read_bytes())
    seeds.append(
        CheckpointSeed("examples", (EXAMPLES / "rekor-checkpoint.txt").read_text(), examples, True)
    )
    for v2 in (False, True):
        log = TestLog(v2=v2)
        log.extend(5)
        witnesses = [Witness("w.example"), Witness("w2.example")]
        note = log.checkpoint(extensions=["ext one"], cosigners=witnesses)
        name = f"test-log-v{2 if v2 else 1}"
        root = trusted_root_document(log)
        seeds.append(CheckpointSeed(name, note, root, True, witness_policy(witnesses)))
    return tuple(seeds)


def witness_policy(witnesses: list[Any]) -> str:
    """A witness policy (offline/tlog/witness.py) that `witnesses` all satisfy together."""
    lines = [f"witness {w.name} {w.vkey} https://{w.name}/" for w in witnesses]
    members = " ".join(w.name for w in witnesses)
    return "\n".join(["# fuzz seed", *lines, f"group g all {members}", "quorum g", ""])


def checkpoint_seed(name: str) -> CheckpointSeed:
    return next(s for s in checkpoint_seeds() if s.name == name)


# ------------------------------------------------------------------ operator-side documents
# A policy file using every feature (tests/offline/policy/test_policy.py); it names
# keys/release.pub.
POLICY_SEED = GOOD


def write_policy_keys(site: Path) -> None:
    """The key file the policy seed names, under `site`."""
    if (site / "keys" / "release.pub").exists():
        return
    (site / "keys").mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (site / "keys" / "release.pub").write_bytes(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


def bundle_manifest_seed() -> dict[str, Any]:
    from tests.provisioner.bundle.test_bundle_manifest import document

    seed = document()
    seed["onTarget"] = [{"digest": "sha256:" + "4" * 64, "size": 5}]  # a delta bundle
    return seed


def parts_list_seed() -> dict[str, Any]:
    part = hashlib.sha256(b"part").hexdigest()
    return {
        "format": "airgap-parts/v1",
        "compression": "zstd",
        "size": 30,
        "sha256": hashlib.sha256(b"stream").hexdigest(),
        "tarSize": 10240,
        "manifestSha256": hashlib.sha256(b"manifest").hexdigest(),
        "parts": [
            {"name": "b.tar.zst.part0001", "size": 20, "sha256": part},
            {"name": "b.tar.zst.part0002", "size": 10, "sha256": part},
        ],
    }


def oci_seeds() -> tuple[dict[str, Any], ...]:
    """An image manifest, an index with platforms and an attestation child, a cosign signature
    manifest, and a referrer with a subject."""
    d = ["sha256:" + c * 64 for c in "123456"]
    return (
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": d[0],
                "size": 7,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": d[1],
                    "size": 42,
                }
            ],
        },
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": d[2],
                    "size": 500,
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": d[3],
                    "size": 400,
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": d[2],
                    },
                },
            ],
        },
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": d[0],
                "size": 233,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": d[4],
                    "size": 250,
                    "annotations": {
                        "dev.cosignproject.cosign/signature": "MEUCIQ==",
                        "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"AA=="}',
                    },
                }
            ],
        },
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d[5], "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                    "digest": d[1],
                    "size": 9,
                }
            ],
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d[2],
                "size": 500,
            },
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        },
    )
