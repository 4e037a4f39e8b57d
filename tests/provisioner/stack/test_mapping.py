"""provisioner.stack.mapping: the import mapping read back strictly, and an upstream image found
in it (by digest, then by tag, never by guess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError
from offline.oci.imageref import parse_image_ref
from provisioner.stack.mapping import load_mapping, parse_mapping

PATH = Path("/imports/mapping.json")
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def entry(repository: str, digest: str, tag: str | None = None) -> dict[str, Any]:
    return {
        "target": f"{repository}@{digest}",
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "attachments": 2,
    }


def document(**images: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "airgap-import-mapping/v1",
        "bundle": "/bundles/stack",
        "target": "registry.lab:5000/mirror",
        "created": "2026-12-01T00:00:00Z",
        "images": images,
    }


def test_an_image_is_found_by_its_upstream_repository(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    source = f"ghcr.io/sigstore/fulcio:v1.8.8@{DIGEST_A}"
    repository = "registry.lab:5000/mirror/sigstore/fulcio"
    path.write_text(json.dumps(document(**{source: entry(repository, DIGEST_A, "v1.8.8")})))
    found = load_mapping(path).find(parse_image_ref(f"ghcr.io/sigstore/fulcio@{DIGEST_A}"), "k")
    assert found.reference == f"{repository}@{DIGEST_A}"
    assert (found.registry, found.repository) == ("registry.lab:5000", "mirror/sigstore/fulcio")


def test_the_charts_digest_then_its_tag_picks_among_several() -> None:
    mapping = parse_mapping(
        document(
            **{
                f"docker.io/curlimages/curl:8.21.0@{DIGEST_A}": entry("r.lab/c", DIGEST_A),
                f"docker.io/curlimages/curl:8.17.0@{DIGEST_B}": entry("r.lab/c", DIGEST_B),
            }
        ),
        PATH,
    )
    by_digest = mapping.find(parse_image_ref(f"curlimages/curl@{DIGEST_B}"), "k")
    assert by_digest.digest == DIGEST_B
    by_tag = mapping.find(parse_image_ref(f"curlimages/curl:8.21.0@{'sha256:' + 'f' * 64}"), "k")
    assert by_tag.digest == DIGEST_A
    with pytest.raises(UsageError, match=r"^k: the import mapping .* has several images of"):
        mapping.find(parse_image_ref("curlimages/curl:9"), "k")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"format": "airgap-import-mapping/v2"}, "format: expected 'airgap-import-mapping/v1'"),
        ({"target": "oci:/layouts/stack"}, "target: 'oci:/layouts/stack' is an OCI layout"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"images": []}, "images: expected a mapping"),
        (
            {"images": {"ghcr.io/x:1": {**entry("r.lab/x", DIGEST_A), "target": "r.lab/y@x"}}},
            "images.ghcr.io/x:1.target: is not the repository at the digest",
        ),
        (
            {"images": {"ghcr.io/x:1": entry("nohost", DIGEST_A)}},
            "images.ghcr.io/x:1.repository: 'nohost' has no registry host",
        ),
        (
            {"images": {"Not A Ref": entry("r.lab/x", DIGEST_A)}},
            "images.Not A Ref: image reference",
        ),
        ({"images": {"ghcr.io/x:1": {**entry("r.lab/x", DIGEST_A), "digest": "md5:1"}}}, "md5"),
    ],
)
def test_a_malformed_mapping_is_one_line_naming_the_field(
    change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(UsageError) as error:
        parse_mapping({**document(), **change}, PATH)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"import mapping {PATH}: ")
    assert expected in message


def test_a_missing_mapping_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="import mapping") as error:
        load_mapping(tmp_path / "absent.json")
    assert "\n" not in str(error.value)
