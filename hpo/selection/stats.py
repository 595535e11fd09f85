"""Small statistics for selection: ranks, rank correlation, binomial noise, t intervals."""

from __future__ import annotations

import math
from typing import Sequence


def ranks(values: Sequence[float], *, maximize: bool) -> list[float]:
    """1 = best; ties share the average rank."""
    from scipy.stats import rankdata

    return [float(r) for r in rankdata([-v if maximize else v for v in values])]


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> dict[str, float | None]:
    """Spearman's rho and Kendall's tau (None when undefined: fewer than 3 values or no variation)."""
    from scipy.stats import kendalltau, spearmanr

    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return {"spearman": None, "kendall": None}
    rho, tau = spearmanr(a, b).statistic, kendalltau(a, b).statistic
    return {"spearman": _finite(rho), "kendall": _finite(tau)}


def binomial_noise(p1: float, p2: float, n: int, *, z: float = 1.96) -> float | None:
    """95% half-width of the difference of two proportions measured on the same n examples.

    Treats the two as independent, which overstates the noise of paired predictions: a warning based on it
    is conservative.
    """
    if n <= 0 or not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        return None
    return z * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)


def mean_interval(values: Sequence[float], *, level: float = 0.95) -> dict[str, float | None]:
    """Mean, sample standard deviation and the t-distribution interval of the mean."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "half_width": None, "low": None, "high": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf((1 + level) / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "half_width": half, "low": mean - half, "high": mean + half}


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
