"""The root of trust: root keys made on the operator's machine, and every signed root.

`init_repository` makes k-of-n root keys and one key per online role (kept in another
directory), and writes roots/1.root.json signed by every root key. `load_root_chain` reads
roots/1..N back and checks each against its predecessor, as a client that pinned 1.root.json
would; `rotate_root` writes N+1 signed by a threshold of the old root's keys and of the new's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from securesystemslib.signer import CryptoSigner, Key
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from offline.atomicfile import atomic_write, fsync_dir
from offline.errors import UsageError, VerificationFailure
from provisioner.trust.files import read_metadata
from provisioner.trust.keys import load_signer, make_key, signers_for
from provisioner.trust.layout import ONLINE_ROLES, RepoLayout
from provisioner.trust.policy import ExpiryPolicy, load_policy, save_policy

MAX_ROOT_KEYS = 16
PRETTY = JSONSerializer(compact=False)


@dataclass(frozen=True)
class RootKeys:
    """Where the root keys are, and the password they are encrypted with."""

    directory: Path
    password: bytes | None = field(default=None, repr=False)


def init_repository(
    path: Path,
    *,
    threshold: int = 1,
    keys: int = 1,
    policy: ExpiryPolicy | None = None,
    root_keys: RootKeys | None = None,
    online_password: bytes | None = None,
    now: datetime | None = None,
) -> Metadata[Root]:
    """A new repository at `path`: keys, policy.json and roots/1.root.json (not yet published:
    `build` publishes). Refuses a directory that already holds a repository."""
    if not 1 <= keys <= MAX_ROOT_KEYS:
        raise UsageError(f"--keys {keys}: a root has 1 to {MAX_ROOT_KEYS} keys")
    if not 1 <= threshold <= keys:
        raise UsageError(f"--threshold {threshold}: must be 1 to the number of keys ({keys})")
    layout = RepoLayout(path)
    if layout.roots.exists() or layout.policy.exists():
        raise UsageError(f"{path} already holds a TUF repository; not making new keys over it")
    policy = policy or ExpiryPolicy()
    root_keys = root_keys or RootKeys(layout.default_root_keys)
    path.mkdir(parents=True, exist_ok=True)
    online = {role: make_key(layout.online_key(role), online_password) for role in ONLINE_ROLES}
    root_public = [
        make_key(root_keys.directory / f"root-{i}.key", root_keys.password)
        for i in range(1, keys + 1)
    ]
    root = Root(expires=policy.expires("root", now or datetime.now(UTC)), consistent_snapshot=True)
    for key in root_public:
        root.add_key(key, "root")
    root.roles["root"].threshold = threshold
    for role, key in online.items():
        root.add_key(key, role)
    metadata = Metadata(root)
    found = signers_for(
        root_keys.directory, "root", _keyids(root, "root"), threshold, root_keys.password
    )
    _sign_root(metadata, found.signers, previous=None)
    save_policy(policy, layout.policy)
    layout.roots.mkdir(mode=0o755)
    atomic_write(layout.root_file(1), metadata.to_bytes(PRETTY), mode=0o644)
    return metadata


def load_root_chain(layout: RepoLayout, now: datetime | None = None) -> Metadata[Root]:
    """The newest root, once every root from 1 has been checked against its predecessor and
    itself. An expired newest root is refused: nothing signed under it would be accepted."""
    previous: Root | None = None
    metadata: Metadata[Root] | None = None
    for version in layout.root_versions():
        path = layout.root_file(version)
        metadata, _ = read_metadata(path, Root)
        if metadata.signed.version != version:
            raise VerificationFailure(f"{path} holds root version {metadata.signed.version}")
        if not _root_verified(metadata, previous):
            raise VerificationFailure(
                f"{path} is not signed by a threshold of its own root keys and of version "
                f"{version - 1}'s: it was changed or signed with the wrong keys"
            )
        previous = metadata.signed
    assert metadata is not None  # root_versions() is never empty
    if metadata.signed.is_expired(now or datetime.now(UTC)):
        raise VerificationFailure(
            f"root version {metadata.signed.version} expired on "
            f"{metadata.signed.expires:%Y-%m-%d}: sign a new one with airgap trust rotate-root "
            f"(the root keys are needed)"
        )
    return metadata


def rotate_root(
    path: Path,
    root_keys: RootKeys,
    *,
    new_root_keys: RootKeys | None = None,
    new_keys: int | None = None,
    threshold: int | None = None,
    new_online_keys: bool = False,
    online_password: bytes | None = None,
    now: datetime | None = None,
) -> Metadata[Root]:
    """roots/N+1.root.json with a fresh expiry: the same root keys, or (with `new_keys`) new
    ones made in `new_root_keys`, at `threshold`. It is signed by a threshold of the current
    root's keys and of its own, so a client pinned to any earlier root follows it.

    `new_online_keys` also replaces the targets, snapshot and timestamp keys (after a loss or
    a leak): the old ones move to keys/online/retired-N/, and the next build signs every role
    again with the new ones."""
    layout = RepoLayout(path)
    # Checked whatever its expiry: signing the next root is the cure for an expired one.
    current = load_root_chain(layout, now=datetime.min.replace(tzinfo=UTC))
    policy = load_policy(layout.policy)
    if new_keys is not None:
        if new_root_keys is None or new_root_keys.directory == root_keys.directory:
            raise UsageError("new root keys need a directory of their own (--new-root-keys DIR)")
        if not 1 <= new_keys <= MAX_ROOT_KEYS:
            raise UsageError(f"--new-keys {new_keys}: a root has 1 to {MAX_ROOT_KEYS} keys")
    count = new_keys if new_keys is not None else len(current.signed.roles["root"].keyids)
    threshold = threshold or min(current.signed.roles["root"].threshold, count)
    if not 1 <= threshold <= count:
        raise UsageError(f"--threshold {threshold}: must be 1 to the number of root keys ({count})")
    with layout.writing():
        old = signers_for(
            root_keys.directory,
            "root",
            _keyids(current.signed, "root"),
            current.signed.roles["root"].threshold,
            root_keys.password,
        )
        old.require_threshold(f"root keys in {root_keys.directory}")
        # A copy read from bytes: to_dict() shares its lists with the current root.
        root = Metadata[Root].from_bytes(current.to_bytes()).signed
        root.version += 1
        root.expires = policy.expires("root", now or datetime.now(UTC))
        root.roles["root"].threshold = threshold
        signers = list(old.signers)
        if new_keys is not None and new_root_keys is not None:
            for keyid in _keyids(root, "root"):
                root.revoke_key(keyid, "root")
            for i in range(1, new_keys + 1):
                key_file = new_root_keys.directory / f"root-{i}.key"
                root.add_key(make_key(key_file, new_root_keys.password), "root")
                signers.append(load_signer(key_file, new_root_keys.password))
        staging = layout.online_keys / f".new-{root.version}"
        if new_online_keys:
            shutil.rmtree(staging, ignore_errors=True)
            for role in ONLINE_ROLES:
                for keyid in _keyids(root, role):
                    root.revoke_key(keyid, role)
                root.add_key(make_key(staging / f"{role}.key", online_password), role)
        metadata = Metadata(root)
        _sign_root(metadata, signers, previous=current.signed)
        atomic_write(layout.root_file(root.version), metadata.to_bytes(PRETTY), mode=0o644)
        if new_online_keys:
            _swap_online_keys(layout, staging, layout.online_keys / f"retired-{root.version - 1}")
    return metadata


def _swap_online_keys(layout: RepoLayout, staging: Path, retired: Path) -> None:
    """The new online keys into place, the old ones kept (never deleted) in `retired`."""
    retired.mkdir(mode=0o700)
    for role in ONLINE_ROLES:
        for suffix in (".key", ".pub"):
            os.replace(layout.online_keys / f"{role}{suffix}", retired / f"{role}{suffix}")
            os.replace(staging / f"{role}{suffix}", layout.online_keys / f"{role}{suffix}")
    staging.rmdir()
    fsync_dir(layout.online_keys)


def _sign_root(
    metadata: Metadata[Root],
    signers: tuple[CryptoSigner, ...] | list[CryptoSigner],
    previous: Root | None,
) -> None:
    for signer in signers:
        metadata.sign(signer, append=True)
    if not _root_verified(metadata, previous):
        raise UsageError(
            f"root version {metadata.signed.version} would not be signed by a threshold of "
            f"{'its own and the previous root' if previous else 'its'} keys; refusing to write it"
        )


def _root_verified(metadata: Metadata[Root], previous: Root | None) -> bool:
    """Signed by a threshold of its own root keys and of the previous root's (if any)."""
    return metadata.signed.get_root_verification_result(
        previous, metadata.signed_bytes, metadata.signatures
    ).verified


def _keyids(root: Root, role: str) -> list[str]:
    return list(root.roles[role].keyids)


def role_key(root: Root, role: str) -> Key:
    """The one key of an online role (airgap gives each exactly one)."""
    keyids = _keyids(root, role)
    if len(keyids) != 1 or root.roles[role].threshold != 1:
        raise UsageError(
            f"the {role} role must have one key and threshold 1 (it has {len(keyids)})"
        )
    return root.get_key(keyids[0])


def online_signer(
    layout: RepoLayout, root: Root, role: str, key_password: bytes | None
) -> CryptoSigner:
    """The online key of `role`, refused unless it is the key the root names for it."""
    path = layout.online_key(role)
    signer = load_signer(path, key_password)
    if signer.public_key.keyid != role_key(root, role).keyid:
        raise UsageError(f"{path} is not the {role} key the root names; refusing to sign with it")
    return signer
