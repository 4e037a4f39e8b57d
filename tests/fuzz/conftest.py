"""Hypothesis profiles for the fuzz tests.

- `ci` (the default): a bounded, derandomized run that keeps the whole fuzz suite well under a
  minute on two cores, so it runs with every `pytest`.
- `nightly`: many more examples, random each run, failures kept in .hypothesis/ and replayed:
      HYPOTHESIS_PROFILE=nightly pytest tests/fuzz
  (and `python -m tests.fuzz.explore 20000` lists every distinct crash in one run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "nightly",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
