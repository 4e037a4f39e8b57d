"""The fuzz targets' generators as Hypothesis strategies: every choice is an integer draw, so
Hypothesis shrinks a failing input to the fewest, smallest mutations."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz.runners import TARGETS


def mutated(target: str) -> st.SearchStrategy[Any]:
    @st.composite
    def strategy(draw: st.DrawFn) -> Any:
        return TARGETS[target].generate(lambda n: draw(st.integers(0, n - 1)))

    return strategy()
