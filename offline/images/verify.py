"""Verifying one container image: its signatures, its attestations, and what they must say.

The reference is resolved to a digest once; everything after works on that digest. For an
index, what was signed is verified: the index itself, or else every manifest in it (a BuildKit
attestation manifest, recognised by its content, excepted), and the result says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.images.attachments import COSIGN_SIGN_PREDICATE, Attachments, Candidate, discover
from offline.images.attestation_manifests import (
    REFERENCE_DIGEST,
    attestation_problem,
    claims_attestation,
    describe_platform,
)
from offline.oci.manifest import IMAGE_MANIFESTS, INDEXES, Descriptor, Manifest
from offline.oci.sources import Sources
from offline.oci.store import ImageSource
from offline.record import Record
from offline.sigstore.model import parse_bundle
from offline.sigstore.verify import BundleResult, SignerPolicy, verify_bundle
from offline.tlog.entry import VerifiedEntry
from offline.tlog.pinning import Pinner
from offline.tlog.witness import WitnessPolicy
from offline.trust.root import TrustedRoot


class AttestationRequirement(Record):
    """An attestation that must be present, signed by an accepted signer, and hold."""

    __slots__ = ("check", "label", "predicate_type")

    def __init__(
        self, predicate_type: str, check: Callable[[dict[str, Any]], list[str]], label: str = ""
    ) -> None:
        self.predicate_type = predicate_type
        # violations of the statement; empty = holds
        self.check = check
        self.label = label

    @property
    def name(self) -> str:
        return self.label or self.predicate_type


class ImageRequirements(Record):
    __slots__ = ("attestations", "checkpoint_age", "max_checkpoint_age", "require_tlog", "signers")

    def __init__(
        self,
        signers: SignerPolicy,
        attestations: Sequence[AttestationRequirement] = (),
        require_tlog: bool = True,
        max_checkpoint_age: timedelta | None = None,
        checkpoint_age: Callable[[VerifiedEntry], timedelta | None] | None = None,
    ) -> None:
        self.signers = signers
        self.attestations = attestations
        self.require_tlog = require_tlog
        self.max_checkpoint_age = max_checkpoint_age
        # how old the newest pinned checkpoint of an entry's log (and tree) is; None: none pinned
        self.checkpoint_age = checkpoint_age


class Check(Record):
    __slots__ = ("name", "ok", "reason")

    def __init__(self, name: str, ok: bool, reason: str) -> None:
        self.name = name
        self.ok = ok
        self.reason = reason

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "reason": self.reason}


class ImageResult:
    """What verifying one image found, built up check by check."""

    __slots__ = ("checks", "digest", "environment_error", "error", "reference", "signed")

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.digest = ""
        self.signed = ""  # "index", "image", or "every platform manifest"
        self.checks: list[Check] = []
        # the image could not be read or named, rather than failing
        self.environment_error = False
        # What ended the run of this image early, for a caller that adds its own remedy to it.
        self.error: AirgapError | None = None

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def fail(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, False, reason))

    def ok(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, True, reason))

    def first_failure(self) -> str:
        return next((f"{c.name}: {c.reason}" for c in self.checks if not c.ok), "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "verified": self.verified,
            "signed": self.signed,
            "checks": [c.as_dict() for c in self.checks],
        }


class _Verified(Record):
    __slots__ = ("candidate", "predicate_type", "result")

    def __init__(
        self, candidate: Candidate, result: BundleResult, predicate_type: str | None
    ) -> None:
        self.candidate = candidate
        self.result = result
        self.predicate_type = predicate_type


class _TargetOutcome:
    """What one manifest's attachments proved, built up as they are verified."""

    __slots__ = ("attachments", "attestations", "digest", "rejected", "signatures")

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.signatures: list[_Verified] = []
        self.attestations: list[_Verified] = []
        self.rejected: list[str] = []
        self.attachments: Attachments | None = None


class ImageVerifier:
    """Everything that is the same for every image of one run."""

    def __init__(
        self,
        trusted_root: TrustedRoot | None,  # None: only key signatures, the log ignored
        pinner: Pinner | None = None,
        witness_policy: WitnessPolicy | None = None,
    ) -> None:
        self.trusted_root = trusted_root
        self.pinner = pinner
        self.witness_policy = witness_policy

    def verify(self, sources: Sources, reference: str, req: ImageRequirements) -> ImageResult:
        result = ImageResult(reference)
        try:
            image = sources.resolve(reference)
            result.digest = image.digest
            result.ok("resolve", f"{reference} is {image.digest}")
            manifest = image.source.fetch_manifest(image.digest)
            self._verify_manifest(image.source, manifest, req, result)
        except UsageError as exc:
            result.environment_error = True  # bad input: not a verdict on the image
            result.fail("reference", str(exc))
        except AirgapError as exc:
            result.environment_error = True
            result.error = exc
            result.fail("registry", str(exc))
        except Exception as exc:  # one image's input must not end the run for the others
            # A bug reached by this image's input: a failure of this image, never a pass, and
            # the other images of the run are still verified.
            result.fail("internal error", f"{type(exc).__name__}: {_one_line(str(exc))}")
        return result

    def _verify_manifest(
        self, source: ImageSource, manifest: Manifest, req: ImageRequirements, result: ImageResult
    ) -> None:
        outcome = self._target(source, manifest.digest, req)
        if outcome.signatures or not manifest.is_index:
            # A signed index covers its children: their digests are part of the signed bytes.
            result.signed = "index" if manifest.is_index else "image"
            self._report(outcome, req, result, "")
            return
        # An unsigned index is acceptable when every manifest a runtime could pick from it is
        # signed on its own. Runtimes pick by platform, so nothing the index says about a child
        # exempts it; only an attestation manifest recognised by its content may be unsigned.
        children = manifest.children()
        outcomes = [self._target(source, child.digest, req) for child in children]
        if not any(o.signatures for o in outcomes):
            result.signed = "index"
            self._report(outcome, req, result, "")
            return
        result.signed = "every platform manifest"
        for child, child_outcome in zip(children, outcomes, strict=True):
            label = _label(child)
            problem = attestation_problem(source, child, children)
            if problem is None:
                result.ok(
                    f"attestation manifest {child.digest}",
                    f"BuildKit attestation manifest of {child.annotations[REFERENCE_DIGEST]}: "
                    f"not runnable, needs no signature",
                )
            elif child_outcome.signatures or (
                child.media_type in IMAGE_MANIFESTS and not claims_attestation(child)
            ):
                self._report(child_outcome, req, result, f"{label} ")
            elif claims_attestation(child):
                result.fail(
                    f"{label} signature",
                    f"{child.digest} is annotated as an attestation manifest, but {problem}: "
                    f"it must be signed like a platform manifest, and it is not",
                )
            else:
                kind = "nested index" if child.media_type in INDEXES else repr(child.media_type)
                result.fail(
                    f"{label} signature",
                    f"{kind} {child.digest} in an unsigned index is not signed (a runtime could "
                    f"pick an image through it)",
                )

    def _target(self, source: ImageSource, digest: str, req: ImageRequirements) -> _TargetOutcome:
        outcome = _TargetOutcome(digest)
        attachments = discover(source, digest)
        outcome.attachments = attachments
        for candidate in attachments.candidates:
            try:
                verified = self._verify_candidate(candidate, digest, req)
            except AirgapError as exc:
                outcome.rejected.append(f"{candidate.origin}: {exc}")
                continue
            if verified.predicate_type in (None, COSIGN_SIGN_PREDICATE):
                outcome.signatures.append(verified)
            else:
                outcome.attestations.append(verified)
        return outcome

    def _verify_candidate(
        self, candidate: Candidate, digest: str, req: ImageRequirements
    ) -> _Verified:
        # First what the payload claims: a signature copied from another image fails for that
        # reason, not for whatever else its bundle lacks here (its proofs stay with the image
        # it was made for).
        if candidate.legacy is not None and not candidate.legacy.is_attestation:
            claimed = candidate.legacy.signed_image_digest()
            if claimed != digest:
                raise VerificationFailure(
                    f"the signature is for {claimed}, not {digest}: the tag was moved or the "
                    f"signature copied from another image"
                )
        bundle = parse_bundle(json.dumps(candidate.bundle).encode(), candidate.origin)
        result = verify_bundle(
            bundle,
            candidate.artifact,
            self.trusted_root,
            req.signers,
            self.pinner,
            self.witness_policy,
            require_tlog=req.require_tlog,
        )
        predicate_type = None
        if result.statement is not None:
            predicate_type = str(result.statement.get("predicateType", ""))
        if req.max_checkpoint_age is not None and req.checkpoint_age is not None:
            for entry in result.entries:
                origin = entry.checkpoint.origin if entry.checkpoint else entry.log.base_url
                age = req.checkpoint_age(entry)
                if age is None or age > req.max_checkpoint_age:
                    shown = "none pinned" if age is None else f"newest is {_days(age)} old"
                    raise VerificationFailure(
                        f"log {origin}: pinned checkpoints must be at most "
                        f"{_days(req.max_checkpoint_age)} old ({shown}); run `airgap checkpoint "
                        f"fetch` where the log is reachable, or import a fresher store"
                    )
        return _Verified(candidate, result, predicate_type)

    def _report(
        self, outcome: _TargetOutcome, req: ImageRequirements, result: ImageResult, prefix: str
    ) -> None:
        attachments = outcome.attachments
        for error in attachments.fetch_errors if attachments else []:
            result.fail(f"{prefix}fetch", error)
        if outcome.signatures:
            first = outcome.signatures[0]
            result.ok(
                f"{prefix}signature",
                f"{len(outcome.signatures)} valid, signed by {first.result.signer} "
                f"({first.candidate.origin})",
            )
            for verified in outcome.signatures:
                for pin in verified.result.pins:
                    if pin.status == "pinned":
                        result.ok(f"{prefix}pinning", pin.message)
                    elif pin.status == "unpinned":
                        result.ok(f"{prefix}pinning", f"warning: {pin.message}")
        elif outcome.rejected:
            result.fail(f"{prefix}signature", outcome.rejected[0])
        else:
            places = ", ".join(attachments.places) if attachments and attachments.places else None
            result.fail(
                f"{prefix}signature",
                f"no signature found for {outcome.digest}"
                + (f" (looked in: {places})" if places else " (no cosign tags, no referrers)"),
            )
        for requirement in req.attestations:
            matching = [
                v for v in outcome.attestations if v.predicate_type == requirement.predicate_type
            ]
            name = f"{prefix}attestation {requirement.name}"
            if not matching:
                rejected = [r for r in outcome.rejected if requirement.predicate_type in r]
                result.fail(
                    name,
                    rejected[0]
                    if rejected
                    else f"no verified {requirement.predicate_type} attestation for "
                    f"{outcome.digest}",
                )
                continue
            problems: list[str] = []
            for verified in matching:
                assert verified.result.statement is not None
                problems.extend(requirement.check(verified.result.statement))
            if problems:
                result.fail(name, problems[0])
            else:
                result.ok(name, f"{len(matching)} verified, signed by {matching[0].result.signer}")


def _label(child: Descriptor) -> str:
    """How an index entry is named in check names: its platform, else its digest."""
    if child.platform is None:
        return f"manifest {child.digest}"
    return describe_platform(child.platform)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _days(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 24 else f"{hours:.1f}h"
