"""Errors a user can hit. Each one prints as a single line, and its class says the exit code:
2 for bad input (UsageError) or a failing environment (EnvironmentFailure), 1 for material that
does not verify (VerificationFailure)."""

from __future__ import annotations

# Line breaks and other control characters a message may quote from hostile input.
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """`text` with line breaks and control characters escaped: what an error may print."""
    return text.translate(_UNPRINTABLE)


class AirgapError(Exception):
    """An expected failure: its message is one line that says what is wrong and what to do.

    Messages quote input (a field's value, a file name); whatever they quote, the message stays
    one line, so a hostile input cannot forge further lines of output.
    """

    exit_code = 2

    def __str__(self) -> str:
        return one_line(super().__str__())


class UsageError(AirgapError):
    """Bad input: a missing file, malformed JSON, an unknown media type, a wrong key type."""

    exit_code = 2


class EnvironmentFailure(AirgapError):
    """Something around the input failed, not the input: a host unreachable, an SSH login
    refused, Fulcio or Rekor down. No verdict on the material; run again once it is fixed."""

    exit_code = 2


class VerificationFailure(AirgapError):
    """The material was read correctly and does not verify."""

    exit_code = 1


def and_more(total: int, shown: int = 1) -> str:
    """The tail of a message that names `shown` of `total` problems: " (and N more)", or ""."""
    return f" (and {total - shown} more)" if total > shown else ""
