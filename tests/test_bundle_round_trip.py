"""The whole journey with real signatures: images signed and attested by real cosign (v3:
Sigstore bundles as OCI referrers; v2: legacy .sig/.att tags) against the private stack are
verified against a policy before export, carried in a bundle, imported into the Debian registry
(no referrers API), and `cosign verify` accepts them there, digests unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.errors import VerificationFailure
from provisioner.bundle.signing import load_public_key
from provisioner.importer.importer import import_bundle
from tests.bundle_sites import create, operator_key, registry_options, write_spec
from tests.offline.images.test_verify_images import (
    SIGNER,
    Cosign,
    Image,
    check,
    push_random,
    run,
    write_docker_config,
    write_predicates,
)
from tests.registries import RegistryServer
from tests.stack import SigstoreStack
from tests.tools import go_tool

pytestmark = [pytest.mark.slow, pytest.mark.stack]

SCAN_REPORT = "application/vnd.example.scan-report+json"


@dataclass
class Signed:
    stack: SigstoreStack
    cosign: Cosign
    v3: Image
    v2: Image
    unsigned: Image
    directory: Path

    def policy(self) -> Path:
        document = {
            "apiVersion": "airgap.dev/v1",
            "kind": "ImagePolicy",
            "policies": [
                {
                    "name": "release",
                    "images": ["**"],
                    "signers": [
                        {"issuer": self.stack.oidc_issuer, "subject": self.stack.identity(SIGNER)}
                    ],
                    "attestations": [{"predicateType": "spdx"}],
                    "pinning": "off",
                }
            ],
        }
        path = self.directory / "policy.yaml"
        path.write_text(json.dumps(document))
        return path


@pytest.fixture(scope="module")
def signed(
    sigstore_stack: SigstoreStack,
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Signed:
    directory = tmp_path_factory.mktemp("round-trip")
    assert docker_registry.ca is not None
    cosign = Cosign(
        sigstore_stack,
        directory / "home",
        write_docker_config(directory / "docker", [docker_registry]),
        docker_registry.ca.ca_cert,
        frozenset({referrers_registry.host}),
    )
    predicates = write_predicates(directory / "predicates")
    v3 = push_random(referrers_registry, "round-trip/app-v3", "1.0", 31)
    v2 = push_random(referrers_registry, "round-trip/app-v2", "1.0", 32)
    unsigned = push_random(referrers_registry, "round-trip/unsigned", "1.0", 33)
    for image, legacy in ((v3, False), (v2, True)):
        cosign.sign(image.by_digest, legacy=legacy)
        cosign.attest(image.by_digest, "spdxjson", predicates["spdxjson"], legacy=legacy)
    # An attachment made by oras: a scan report referring to the v3 image.
    (directory / "scan.json").write_text('{"findings": []}')
    oras = [str(go_tool("oras")), "attach", "--no-tty", "--plain-http", "--disable-path-validation"]
    oras += [
        "--artifact-type",
        SCAN_REPORT,
        v3.by_digest,
        f"{directory}/scan.json:application/json",
    ]
    check(run(oras, cosign.env), "oras attach")
    return Signed(sigstore_stack, cosign, v3, v2, unsigned, directory)


def test_signed_images_cross_the_gap_and_cosign_verifies_them_on_the_other_side(
    signed: Signed,
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        images=[signed.v3.by_tag, signed.v2.by_tag],
        verify={"policy": str(signed.policy()), "trustedRoot": str(signed.stack.trusted_root)},
    )
    public, key = operator_key(tmp_path)
    options = registry_options(docker_registry, referrers_registry)
    result = create(spec, tmp_path / "bundle", key, options)

    report = import_bundle(
        result.path, load_public_key(public), f"{docker_registry.host}/crossed", options=options
    )

    assert report.to_json()
    identity = signed.stack.identity(SIGNER)
    for image in (signed.v3, signed.v2):
        target = f"{docker_registry.host}/crossed/{image.repository}@{image.digest}"
        check(signed.cosign.verify(target, identity), f"cosign verify {target}")
        attested = signed.cosign.verify(target, identity, attestation="spdxjson")
        check(attested, f"cosign verify-attestation {target}")
        tagged = docker_registry.client().repository(f"crossed/{image.repository}").resolve("1.0")
        assert tagged.digest == image.digest
    # oras finds its own attachment on the target (through the referrers fallback tag there).
    assert docker_registry.ca is not None
    target = f"{docker_registry.host}/crossed/{signed.v3.repository}@{signed.v3.digest}"
    found = check(
        run(
            [
                str(go_tool("oras")),
                "discover",
                "--no-tty",
                "--format",
                "json",
                "--ca-file",
                str(docker_registry.ca.ca_cert),
                "--registry-config",
                str(signed.cosign.docker_config / "config.json"),
                target,
            ],
            signed.cosign.env,
        ),
        "oras discover",
    )
    assert SCAN_REPORT in found


def test_an_image_that_fails_the_policy_stops_the_create_before_anything_is_carried(
    signed: Signed, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        images=[signed.v3.by_tag, signed.unsigned.by_tag],
        verify={"policy": str(signed.policy()), "trustedRoot": str(signed.stack.trusted_root)},
    )
    _, key = operator_key(tmp_path)
    with pytest.raises(VerificationFailure, match=r"round-trip/unsigned.*nothing was carried"):
        create(spec, tmp_path / "bundle", key, registry_options(referrers_registry))
    assert not (tmp_path / "bundle").exists()
    blobs = tmp_path / "bundle.partial" / "oci" / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())
