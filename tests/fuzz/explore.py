"""Exploration outside pytest: random mutations against every target, grouping what escapes by
where it was raised, so one run lists every distinct crash (Hypothesis stops at the first).

    python -m tests.fuzz.explore [ITERATIONS] [SEED] [TARGET...]

Prints one line per distinct problem with a reproducing input written to /tmp/airgap-fuzz/.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import traceback
from pathlib import Path

from tests.fuzz import runners
from tests.fuzz.mutations import random_draw


def _origin(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/offline/" in f.filename or "/provisioner/" in f.filename]
    frame = (ours or frames)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, tuple):
        return "\n".join(_show(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def main(argv: list[str]) -> int:
    iterations = int(argv[0]) if argv else 2000
    rng = random.Random(int(argv[1]) if len(argv) > 1 else 1)
    names = argv[2:] or list(runners.TARGETS)
    out = Path(tempfile.gettempdir()) / "airgap-fuzz"
    out.mkdir(exist_ok=True)
    site = Path(tempfile.mkdtemp())
    found: dict[str, str] = {}
    for name in names:
        target = runners.TARGETS[name]
        for i in range(iterations):
            value = target.generate(random_draw(rng))
            try:
                target.check(value, site)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                key = f"{name}: {_origin(exc)}"
                if key not in found:
                    example = out / f"{len(found):03d}-{name}.txt"
                    example.write_text(
                        errors="backslashreplace",
                        data=_show(value)[:200000]
                        + "\n\n"
                        + "".join(traceback.format_exception(exc)),
                    )
                    found[key] = str(example)
                    print(f"{key}: {str(exc)[:150]!r} ({example})", flush=True)
            if i and i % 1000 == 0:
                print(f"  {name}: {i} done", file=sys.stderr, flush=True)
    print(f"{len(found)} distinct problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
