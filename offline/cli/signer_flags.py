"""`airgap verify`'s signer flags, cosign's (`--key`, `--certificate-identity[-regexp]`,
`--certificate-oidc-issuer[-regexp]`, `--insecure-ignore-tlog`): the image policy they describe.

Here, in the command line layer, because its errors name the flags; a policy file says the same
in offline.policy.policy_file, whose errors name its fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from offline.errors import UsageError

if TYPE_CHECKING:
    from datetime import timedelta

    from offline.policy.policy_file import ImagePolicy
    from offline.tlog.pinning import PinningMode


def policy_from_flags(
    *,
    key: str | Path | None = None,
    certificate_identity: str | None = None,
    certificate_identity_regexp: str | None = None,
    certificate_oidc_issuer: str | None = None,
    certificate_oidc_issuer_regexp: str | None = None,
    insecure_ignore_tlog: bool = False,
    pinning: PinningMode | None = None,
    max_checkpoint_age: timedelta | None = None,
) -> ImagePolicy:
    """The policy cosign-style flags describe, for every image; UsageError names the flags."""
    from offline.policy.policy_file import EVERY_IMAGE, ImagePolicy
    from offline.trust.keys import load_public_key_file
    from offline.trust.signers import SignerRule

    identity_flags = (
        certificate_identity,
        certificate_identity_regexp,
        certificate_oidc_issuer,
        certificate_oidc_issuer_regexp,
    )
    if key is not None:
        if any(flag is not None for flag in identity_flags):
            raise UsageError(
                "give --key or the --certificate-identity/--certificate-oidc-issuer flags, not both"
            )
        signer = SignerRule.for_key(load_public_key_file(key), Path(key))
    else:
        subject, subject_re = _flag_pair(
            "--certificate-identity", certificate_identity, certificate_identity_regexp
        )
        issuer, issuer_re = _flag_pair(
            "--certificate-oidc-issuer", certificate_oidc_issuer, certificate_oidc_issuer_regexp
        )
        if not (subject or subject_re) or not (issuer or issuer_re):
            raise UsageError(
                "say who must have signed: --key FILE, or --certificate-identity[-regexp] "
                "together with --certificate-oidc-issuer[-regexp]"
            )
        signer = SignerRule(
            issuer=issuer, issuer_regexp=issuer_re, subject=subject, subject_regexp=subject_re
        )
    return ImagePolicy(
        name="flags",
        images=(EVERY_IMAGE,),
        signers=(signer,),
        tlog="ignore" if insecure_ignore_tlog else "required",
        pinning=pinning,
        max_checkpoint_age=max_checkpoint_age,
    )


def _flag_pair(
    flag: str, exact: str | None, regexp: str | None
) -> tuple[str | None, re.Pattern[str] | None]:
    if exact is not None and regexp is not None:
        raise UsageError(f"give {flag} or {flag}-regexp, not both")
    if exact is not None and not exact:
        raise UsageError(f"{flag} is empty")
    if regexp is None:
        return exact, None
    try:
        return None, re.compile(regexp)
    except re.error as exc:
        raise UsageError(f"{flag}-regexp: not a valid regular expression ({exc})") from exc
