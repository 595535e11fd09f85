"""The held-out gate's noise where the binomial does not apply (correlations, errors, entity and multi-label
F1): a paired bootstrap over the test rows. Both models are scored on the same resampled rows, so the spread
is that of their difference."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

ROUNDS = 300


def paired_half_width(score: Callable[[np.ndarray], float], a: Any, b: Any) -> tuple[float, str] | None:
    """95% half-width of score(a) - score(b) over resampled rows; `a` and `b` hold one row per test example.
    None when there are too few rows or the two do not cover the same rows."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) < 3 or a.shape[0] != b.shape[0]:
        return None
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(ROUNDS):
        rows = rng.integers(0, len(a), len(a))
        diffs.append(score(a[rows]) - score(b[rows]))
    return 1.96 * float(np.std(diffs)), f"95% bootstrap half-width of a difference ({ROUNDS} resamples)"
