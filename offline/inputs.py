"""Reading the files a user names, with one-line errors that say which file and what is wrong.

An input file is a regular file of bounded size: a FIFO, socket or device is refused before it
is read (it could be read forever, or block forever when opened), and a file larger than the
limit is refused rather than read into memory. `-` is standard input where a command says so,
read within the same limit.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any

from offline.errors import AirgapError, UsageError

# Larger than any policy, trusted root, bundle, checkpoint file or image list we expect.
MAX_INPUT_SIZE = 64 * 1024 * 1024
# A PEM or DER key, a certificate chain at most.
MAX_KEY_SIZE = 1024 * 1024


def read_input(
    path: str | Path,
    what: str,
    limit: int = MAX_INPUT_SIZE,
    *,
    stdin: bool = False,
    follow_symlinks: bool = True,
) -> bytes:
    """The bytes of `path`; `what` names the file in errors ("bundle", "trusted root", ...).
    With `stdin`, `-` reads standard input. Without `follow_symlinks`, a link is refused."""
    if stdin and str(path) == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise UsageError(f"{what} on standard input is larger than {limit} bytes")
        return data
    with open_input(path, what, limit, follow_symlinks=follow_symlinks) as f:
        # Read what the open file holds, not `limit` bytes: a read of n bytes allocates n.
        size = os.fstat(f.fileno()).st_size
        data = f.read(size + 1)  # one more byte shows a file still growing
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    if len(data) != size:
        raise UsageError(f"{what} {path} changed while it was read")
    return data


def open_regular(path: str | Path, what: str = "") -> IO[bytes]:
    """`path` opened for reading if it is a regular file (else UsageError); a missing file is
    FileNotFoundError, for callers that give absence a meaning of their own."""
    path = Path(path)
    what = f"{what} " if what else ""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise UsageError(f"{what}{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{what}{path} is not a regular file")
    return os.fdopen(fd, "rb")


def open_input(
    path: str | Path, what: str, limit: int | None = None, *, follow_symlinks: bool = True
) -> IO[bytes]:
    """`path` opened for reading, once it is known to be a regular file (of at most `limit`
    bytes, when given). Checked before opening (opening a FIFO blocks) and again on the open
    file (the name could have been swapped in between). Without `follow_symlinks`, a link in
    its place is refused at both checks."""
    path = Path(path)
    nofollow = 0 if follow_symlinks else os.O_NOFOLLOW
    try:
        _check(os.stat(path, follow_symlinks=follow_symlinks), path, what, limit)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | nofollow)
    except OSError as exc:
        raise _os_error(exc, path, what) from None
    except ValueError:  # a NUL in the name, or a name that is not Unicode
        raise UsageError(f"{what} {str(path)[:80]!r} is not a usable file name") from None
    f = os.fdopen(fd, "rb")
    try:
        _check(os.fstat(fd), path, what, limit)
    except UsageError:
        f.close()
        raise
    return f


def _check(info: os.stat_result, path: Path, what: str, limit: int | None) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {path} is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{what} {path} is not a regular file (a FIFO, socket or device is not read)"
        )
    if limit is not None and info.st_size > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")


def _os_error(exc: OSError, path: Path, what: str) -> UsageError:
    if isinstance(exc, FileNotFoundError):
        return UsageError(f"{what} {path} does not exist")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{what} {path} is a directory, expected a file")
    if isinstance(exc, PermissionError):
        return UsageError(f"{what} {path} is not readable (permission denied)")
    return UsageError(f"{what} {path} is not readable ({exc.strerror or exc})")


def decode_json(
    data: bytes | str, name: str, error: type[AirgapError] = UsageError, **options: Any
) -> Any:
    """Any JSON value; anything `json.loads` refuses is one `error` naming `name`: malformed
    JSON, bytes that are not Unicode, an integer of more than 4300 digits, nesting so deep
    that the parser runs out of stack."""
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise error(f"{name}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise error(f"{name}: not valid JSON ({exc})") from exc


def decode_strict_json(data: bytes, name: str) -> Any:
    """A document airgap writes and signs (a bundle manifest, a parts list, an import record):
    UTF-8 only, and nothing that two readers could take differently: a key twice, NaN or
    Infinity, a string with an unpaired surrogate (a JSON "\\ud800" escape: it can be neither
    written back as UTF-8 nor used as a file name)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8") from None
    document = decode_json(
        text, name, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant
    )
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"{name}: a string holds an unpaired surrogate (\\ud800-\\udfff)"
        ) from None
    except RecursionError:
        raise UsageError(f"{name}: not valid JSON (nested too deeply)") from None
    return document


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"field {key!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json_object(data: bytes | str, name: str) -> dict[str, Any]:
    document = decode_json(data, name)
    if not isinstance(document, dict):
        raise UsageError(f"{name}: expected a JSON object")
    return document
