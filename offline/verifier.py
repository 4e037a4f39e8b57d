"""The verifier as one library call: what a run builds once, then asks about each image or bundle.

Shaped like sigstore-python's `Verifier`: `Verifier.open(...)` finds and loads the trusted root
(`offline.trust.root.locate_trusted_root`), opens the checkpoint store once
(`offline.tlog.pinning.open_store`) and loads the witness policy; `verify_image` then verifies one
image against its `ImagePolicy`, and `verify_artifact` one Sigstore bundle against a signer.
`airgap verify`, `airgap verify-bundle` and `bundle create`'s check before export all use it, so
what "verified" means is decided here and nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from offline.tlog.pinning import PinningMode, make_pinner, open_store
from offline.tlog.witness import WitnessPolicy, load_witness_policy
from offline.trust.root import TrustedRoot, find_optional_trusted_root, find_trusted_root

# What only images need (the registry client, attachments, policies) is imported when an image
# is verified: `verify-bundle` pays for none of it.
if TYPE_CHECKING:
    from offline.images.verify import ImageRequirements, ImageResult
    from offline.oci.sources import Sources
    from offline.policy.policy_file import ImagePolicy
    from offline.sigstore.model import SigstoreBundle
    from offline.sigstore.verify import Artifact, BundleResult, SignerPolicy
    from offline.tlog.checkpoint_store import CheckpointStore
    from offline.tlog.entry import VerifiedEntry


class Verifier:
    """Everything that is the same for every image or bundle of one run."""

    def __init__(
        self,
        trusted_root: TrustedRoot | None,  # None: only key signatures, the log ignored
        store: CheckpointStore,
        witness_policy: WitnessPolicy | None = None,
        *,
        pinning: PinningMode | None = None,  # overrides each policy's own mode when given
        extra_attestations: Sequence[str] = (),  # required of every image, beside its policy's
    ) -> None:
        self.trusted_root = trusted_root
        self.store = store
        self.witness_policy = witness_policy
        self.pinning = pinning
        self.extra_attestations = tuple(extra_attestations)

    @classmethod
    def open(
        cls,
        *,
        trusted_root: Path | None,
        checkpoints: Path | None,
        witness_policy: Path | None = None,
        needs_trusted_root: bool = True,
        pinning: PinningMode | None = None,
        extra_attestations: Sequence[str] = (),
    ) -> Verifier:
        """A verifier for one run. `trusted_root` and `checkpoints` None: the environment's, else
        the data directory's (`locate_trusted_root`, `open_store`). Without `needs_trusted_root`
        (every signer a key, the log ignored) a run may have no trusted root at all."""
        root = (
            find_trusted_root(trusted_root)
            if needs_trusted_root
            else find_optional_trusted_root(trusted_root)
        )
        witnesses = load_witness_policy(witness_policy) if witness_policy is not None else None
        store = open_store(checkpoints, root)
        return cls(root, store, witnesses, pinning=pinning, extra_attestations=extra_attestations)

    def checkpoint_age(self, entry: VerifiedEntry) -> timedelta | None:
        """How old the newest pinned checkpoint of the entry's log (and tree) is; None: none."""
        origin = entry.checkpoint.origin if entry.checkpoint else None
        added = self.store.newest_added(entry.log.log_id, origin)
        return None if added is None else datetime.now(UTC) - added

    def requirements(self, policy: ImagePolicy) -> ImageRequirements:
        """What `policy` (and the run's extra attestations) ask of an image."""
        from offline.images.verify import AttestationRequirement, ImageRequirements
        from offline.policy.attestations import (
            AttestationRule,
            check_statement,
            resolve_predicate_type,
        )

        rules = list(policy.attestations)
        for name in self.extra_attestations:
            rules.append(AttestationRule(predicate_type=resolve_predicate_type(name)))
        return ImageRequirements(
            signers=policy.signer_policy(),
            attestations=[
                AttestationRequirement(r.predicate_type, functools.partial(check_statement, r))
                for r in rules
            ],
            require_tlog=policy.tlog == "required",
            max_checkpoint_age=policy.max_checkpoint_age,
            checkpoint_age=self.checkpoint_age,
        )

    def verify_image(self, sources: Sources, reference: str, policy: ImagePolicy) -> ImageResult:
        """Every signature and attestation of `reference`, against `policy`; never raises for
        the image's own faults (the result says what failed)."""
        from offline.images.verify import ImageVerifier

        mode = self.pinning or policy.pinning
        verifier = ImageVerifier(
            self.trusted_root, make_pinner(self.store, mode), self.witness_policy
        )
        return verifier.verify(sources, reference, self.requirements(policy))

    def verify_artifact(
        self, bundle: SigstoreBundle, artifact: Artifact, signers: SignerPolicy
    ) -> BundleResult:
        """One Sigstore bundle for `artifact`; raises VerificationFailure when it does not hold."""
        from offline.sigstore.verify import verify_bundle

        pinner = make_pinner(self.store, self.pinning)
        return verify_bundle(
            bundle, artifact, self.trusted_root, signers, pinner, self.witness_policy
        )
