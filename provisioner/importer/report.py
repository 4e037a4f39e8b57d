"""What an import did (or, in a dry run, would do), and the mapping file it leaves for whatever
deploys from the target (the stack's install, when it comes): where each image landed.

The mapping (`airgap-import-mapping/v1`, JSON):

    {"format": "airgap-import-mapping/v1", "bundle": ..., "target": ..., "created": ...,
     "images": {SOURCE_REF: {"target": "REG/PREFIX/PATH@sha256:..." | "oci:DIR@sha256:...",
                             "repository": ..., "tag": ..., "digest": ..., "attachments": N}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.errors import and_more
from provisioner.bundle.check import short
from provisioner.bundle.manifest import format_created
from provisioner.copy.mirror import MirrorReport

MAPPING_FORMAT = "airgap-import-mapping/v1"


# ---------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class TagMove:
    """A tag that exists in the target and was (or, in a dry run, would be) moved."""

    repository: str
    tag: str
    current: str
    new: str

    def to_json(self) -> dict[str, str]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "from": self.current,
            "to": self.new,
        }

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag} moves from {short(self.current)} to {short(self.new)}"


@dataclass
class ImageImport:
    """One image of the bundle: where it went and what that took."""

    reference: str  # as the bundle names it (the spec's reference)
    digest: str
    repository: str  # the target repository: `REGISTRY/PATH`, or the ref-name base in a layout
    target: str  # pullable by digest: `REGISTRY/PATH@sha256:...` or `oci:DIR@sha256:...`
    tag: str | None
    attachments: dict[str, int]  # listed in the signed manifest, by kind
    mirror: MirrorReport | None = None
    tag_moves: list[TagMove] = field(default_factory=list)
    tag_pushed: bool = False
    resumed: bool = False  # the journal said its content was complete already

    @property
    def blobs_present(self) -> int:
        return len(self.mirror.blobs_present) if self.mirror else 0

    @property
    def blobs_to_push(self) -> int:
        return len(self.mirror.blobs_copied) if self.mirror else 0

    @property
    def manifests_present(self) -> int:
        return len(self.mirror.manifests_present) if self.mirror else 0

    @property
    def manifests_to_push(self) -> int:
        return len(self.mirror.manifests_copied) if self.mirror else 0

    @property
    def bytes_to_push(self) -> int:
        return self.mirror.bytes_copied if self.mirror else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "repository": self.repository,
            "target": self.target,
            "tag": self.tag,
            "attachments": dict(self.attachments),
            "blobsPresent": self.blobs_present,
            "blobsPushed": self.blobs_to_push,
            "manifestsPresent": self.manifests_present,
            "manifestsPushed": self.manifests_to_push,
            "bytesPushed": self.bytes_to_push,
            "tagPushed": self.tag_pushed,
            "tagMoves": [m.to_json() for m in self.tag_moves],
            "resumed": self.resumed,
        }


@dataclass
class ImportReport:
    bundle: Path
    target: str
    dry_run: bool
    name: str = ""  # the bundle's name and sequence, from its signed manifest
    sequence: int = 0
    images: list[ImageImport] = field(default_factory=list)
    # A delta bundle's left-out blobs, per target repository: "present", "mounted from REPO",
    # or (dry run only: a real import refuses) "missing".
    on_target: dict[str, dict[str, str]] = field(default_factory=dict)
    journal: Path | None = None
    journal_records: int = 0  # found at the start: > 0 when resuming
    mapping: Path | None = None
    attachments_verified: int = 0
    blobs_mounted: int = 0  # from another repository of the target, instead of uploaded
    # Cosign tags and referrer listings written (or, in a dry run, to write) at the end.
    attachment_tags: int = 0

    @property
    def tag_moves(self) -> list[TagMove]:
        return [move for image in self.images for move in image.tag_moves]

    @property
    def bytes_to_push(self) -> int:
        return sum(image.bytes_to_push for image in self.images)

    @property
    def missing_on_target(self) -> list[str]:
        return [
            f"{repository}: {digest}"
            for repository, blobs in self.on_target.items()
            for digest, state in blobs.items()
            if state == "missing"
        ]

    @property
    def pushed_nothing(self) -> bool:
        return (
            all(
                (i.mirror is None or i.mirror.copied_nothing) and not i.tag_pushed
                for i in self.images
            )
            and not self.attachment_tags
            and not any(
                state.startswith("mounted") for b in self.on_target.values() for state in b.values()
            )
        )

    @property
    def ok(self) -> bool:
        return not self.missing_on_target

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "bundleName": self.name,
            "sequence": self.sequence,
            "target": self.target,
            "dryRun": self.dry_run,
            "ok": self.ok,
            "images": [i.to_json() for i in self.images],
            "bytesPushed": self.bytes_to_push,
            "tagMoves": [m.to_json() for m in self.tag_moves],
            "onTarget": {repo: dict(blobs) for repo, blobs in self.on_target.items()},
            "missingOnTarget": self.missing_on_target,
            "journal": str(self.journal) if self.journal else None,
            "resumedFromJournal": self.journal_records,
            "mapping": str(self.mapping) if self.mapping else None,
            "attachmentsVerified": self.attachments_verified,
            "blobsMounted": self.blobs_mounted,
            "attachmentTags": self.attachment_tags,
        }

    def summary(self) -> str:
        verb = "would push" if self.dry_run else "pushed"
        blobs = sum(i.blobs_to_push for i in self.images)
        present = sum(i.blobs_present for i in self.images)
        text = (
            f"{'dry run: ' if self.dry_run else ''}{len(self.images)} images into {self.target}: "
            f"{verb} {blobs} blobs and {sum(i.manifests_to_push for i in self.images)} manifests "
            f"({self.bytes_to_push} bytes), {present} blobs already there"
            + (
                f" ({self.blobs_mounted} mounted from another repository)"
                if self.blobs_mounted
                else ""
            )
        )
        if not self.dry_run:
            text += f"; {self.attachments_verified} attachments verified in the target"
        moves = self.tag_moves
        if moves:
            text += (
                f"; {len(moves)} tags {'would move' if self.dry_run else 'moved'}: "
                + ", ".join(str(m) for m in moves)
            )
        missing = self.missing_on_target
        if missing:
            text += f"; MISSING on the target (import the base bundle first): {missing[0]}"
            if len(missing) > 1:
                text += and_more(len(missing))
        return text


# --------------------------------------------------------------------------------- mapping
def mapping_document(report: ImportReport) -> dict[str, Any]:
    """Where each image of the bundle landed: for whatever deploys from the target."""
    return {
        "format": MAPPING_FORMAT,
        "bundle": str(report.bundle.resolve()),
        "target": report.target,
        "created": format_created(datetime.now(UTC).replace(microsecond=0)),
        "images": {
            image.reference: {
                "target": image.target,
                "repository": image.repository,
                "tag": image.tag,
                "digest": image.digest,
                "attachments": sum(image.attachments.values()),
            }
            for image in report.images
        },
    }


def write_mapping(path: Path, report: ImportReport) -> None:
    data = json.dumps(mapping_document(report), indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(path, data)
