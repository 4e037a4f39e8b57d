"""Errors a user can hit. Each one prints as a single line and maps to an exit code."""

from __future__ import annotations


class AirgapError(Exception):
    """An expected failure: its message is one line that says what is wrong and what to do."""

    exit_code = 2


class UsageError(AirgapError):
    """Bad input: a missing file, malformed JSON, an unknown media type, a wrong key type."""

    exit_code = 2


class VerificationFailure(AirgapError):
    """The material was read correctly and does not verify."""

    exit_code = 1
