"""Every authority of a trusted root counts only inside its `validFor` window, checked against the
time being verified (as sigstore-go does): a retired Fulcio CA or CT log signs nothing new, and a
log key without a window start is refused when the trusted root is read."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError, VerificationFailure
from offline.sigstore.model import load_bundle, parse_bundle
from offline.sigstore.verify import Artifact, IdentityPolicy, KeyPolicy, verify_bundle
from offline.trust.certs import CertificateFailure
from offline.trust.root import parse_trusted_root
from tests.bundle_factory import KeySigner
from tests.conftest import TESTDATA
from tests.offline.sigstore.test_conformance import protocol_args, run_airgap
from tests.tlog_fixture import TestLog, trusted_root

CASES = TESTDATA / "conformance"
PRODUCTION_ROOT = json.loads((CASES / "trusted_root.production.json").read_text())
# happy-path-v0.3: signed 2024-03-19T17:26:26Z by the second Fulcio CA (2022 onwards), its SCT
# from the 2022 CT log, logged in rekor.sigstore.dev.
CASE = CASES / "happy-path-v0.3"
SIGNED_AT = "2024-03-19T17:26:26Z"
IDENTITY = IdentityPolicy(
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    "https://token.actions.githubusercontent.com",
)


def _verify(root: dict[str, Any]) -> None:
    verify_bundle(
        load_bundle(CASE / "bundle.sigstore.json"),
        Artifact.from_argument(str(CASES / "a.txt")),
        parse_trusted_root(json.dumps(root)),
        IDENTITY,
    )


def _current_ca(root: dict[str, Any]) -> dict[str, Any]:
    ca: dict[str, Any] = root["certificateAuthorities"][1]
    assert "end" not in ca["validFor"]
    return ca


def _ct_log_2022(root: dict[str, Any]) -> dict[str, Any]:
    log: dict[str, Any] = root["ctlogs"][1]
    assert log["baseUrl"].endswith("/2022")
    return log


def _root() -> dict[str, Any]:
    return copy.deepcopy(PRODUCTION_ROOT)


def test_the_unchanged_production_root_verifies_the_case() -> None:
    _verify(_root())


def test_a_fulcio_ca_retired_before_the_signature_is_refused() -> None:
    root = _root()
    _current_ca(root)["validFor"]["end"] = "2024-01-01T00:00:00Z"
    with pytest.raises(CertificateFailure, match="certificate authority"):
        _verify(root)


def test_a_fulcio_ca_not_yet_valid_at_the_signature_is_refused() -> None:
    root = _root()
    _current_ca(root)["validFor"]["start"] = "2024-06-01T00:00:00Z"
    with pytest.raises(CertificateFailure, match="certificate authority"):
        _verify(root)


def test_a_fulcio_ca_window_ending_at_the_signing_time_still_covers_it() -> None:
    root = _root()
    _current_ca(root)["validFor"]["end"] = SIGNED_AT  # both ends are inclusive
    _verify(root)


def test_a_ct_log_retired_before_the_sct_is_refused() -> None:
    root = _root()
    _ct_log_2022(root)["publicKey"]["validFor"]["end"] = "2024-01-01T00:00:00Z"
    with pytest.raises(CertificateFailure, match="CT log"):
        _verify(root)


def test_a_ct_log_not_yet_valid_at_the_sct_is_refused() -> None:
    root = _root()
    _ct_log_2022(root)["publicKey"]["validFor"]["start"] = "2024-06-01T00:00:00Z"
    with pytest.raises(CertificateFailure, match="CT log"):
        _verify(root)


@pytest.mark.parametrize("kind", ["tlogs", "ctlogs"])
@pytest.mark.parametrize("what", ["validFor", "start"])
def test_a_log_key_without_a_window_start_is_refused(kind: str, what: str) -> None:
    # sigstore-go refuses such a trusted root outright ("tlog missing public key validity
    # period start time"); the conformance case trust-root-tlog-missing-validity-start_fail.
    root = _root()
    valid_for = root[kind][0]["publicKey"]["validFor"]
    if what == "validFor":
        del root[kind][0]["publicKey"]["validFor"]
    else:
        del valid_for["start"]
    with pytest.raises(UsageError, match=rf"{kind}\[0\]\.publicKey\.validFor"):
        parse_trusted_root(json.dumps(root))


@pytest.mark.parametrize("kind", ["certificateAuthorities", "timestampAuthorities"])
@pytest.mark.parametrize("what", ["validFor", "start"])
def test_an_authority_without_a_window_start_is_refused(kind: str, what: str) -> None:
    # Stricter than sigstore-go, which reads no start as "always": an absent bound is a refusal.
    root = _root()
    if what == "validFor":
        del root[kind][0]["validFor"]
    else:
        del root[kind][0]["validFor"]["start"]
    with pytest.raises(UsageError, match=rf"{kind}\[0\]\.validFor"):
        parse_trusted_root(json.dumps(root))


@pytest.mark.parametrize(
    "value", ["", "yesterday", 12, [], "2024-13-01T00:00:00Z", "2024-01-01T00:00:00"]
)
def test_a_window_bound_that_is_not_an_rfc3339_time_is_refused(value: object) -> None:
    root = _root()
    _current_ca(root)["validFor"]["end"] = value
    with pytest.raises(UsageError, match=r"certificateAuthorities\[1\]\.validFor\.end"):
        parse_trusted_root(json.dumps(root))


def test_a_null_end_is_an_open_window_as_in_protojson() -> None:
    # The conformance case trust-root-tlog-validity-end-inclusive writes `"end": null`.
    root = _root()
    _current_ca(root)["validFor"]["end"] = None
    _verify(root)


def test_a_null_start_is_a_missing_start() -> None:
    root = _root()
    _current_ca(root)["validFor"]["start"] = None
    with pytest.raises(UsageError, match=r"validFor\.start is missing"):
        parse_trusted_root(json.dumps(root))


def test_a_window_whose_end_precedes_its_start_is_refused() -> None:
    root = _root()
    _current_ca(root)["validFor"]["end"] = "2020-01-01T00:00:00Z"
    with pytest.raises(UsageError, match="ends before it starts"):
        parse_trusted_root(json.dumps(root))


def test_a_missing_tlog_start_fails_the_command_with_one_line(tmp_path: Path) -> None:
    # The upstream conformance case trust-root-tlog-missing-validity-start_fail, rebuilt.
    case = CASES / "trust-root-tlog-validity-end-inclusive"
    root = json.loads((case / "trusted_root.json").read_text())
    for tlog in root["tlogs"]:
        del tlog["publicKey"]["validFor"]["start"]
    (tmp_path / "trusted_root.json").write_text(json.dumps(root))
    args = protocol_args(case, by_digest=False)
    args[args.index("--trusted-root") + 1] = str(tmp_path / "trusted_root.json")
    proc = run_airgap(args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "validFor.start" in proc.stderr


def _key_bundle_without_a_set(log: TestLog) -> tuple[dict[str, Any], KeySigner]:
    signer = KeySigner()
    logged = signer.log_artifact(log, b"hello")
    bundle = logged.bundle(log)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    del entry["inclusionPromise"]
    entry["integratedTime"] = "0"
    return bundle, signer


def test_a_log_entry_with_no_verified_time_needs_a_log_key_valid_now() -> None:
    # Proven by an inclusion proof, but nothing says when: the log key's window (here starting
    # in 2030) is checked against the present, never skipped.
    log = TestLog(valid_from="2030-01-01T00:00:00Z")
    bundle, signer = _key_bundle_without_a_set(log)
    with pytest.raises(VerificationFailure, match="not valid at the present time"):
        verify_bundle(
            parse_bundle(json.dumps(bundle).encode()),
            Artifact.from_bytes(b"hello", "hello"),
            trusted_root(log),
            KeyPolicy(signer.key.public_key()),
        )
