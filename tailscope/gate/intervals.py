"""Quantile estimates for the gate: Harrell–Davis with Maritz–Jarrett standard errors (the
decision), and distribution-free order-statistic intervals (the sample-size floor).

The Harrell–Davis estimate weights every order statistic by a Beta probability mass around rank
``qn``; it has a smaller variance than the single sample quantile, and the Maritz–Jarrett standard
error comes from the same weights. Both work on distinct values with counts, i.e. on a histogram's
buckets, in O(buckets). Two of them give the gate's change interval
(:func:`tailscope.gate.evaluate.quantile_change`); its false-alarm rate and power are measured, not
bounded (``benchmarks/gate_power.py``).

The order-statistic interval assumes only that the samples are independent draws from one
continuous distribution: if ``B`` counts the samples below the true quantile ``ξ_q``, then
``B ~ Binomial(n, q)`` and ``P(X_(l) <= ξ_q <= X_(u)) >= P(l <= B <= u - 1)`` for any ranks
``l < u``. With equal-tailed ranks it exists only when ``n`` is large enough (p99 at 97.5 %
two-sided: n >= 437): below that the tail is not reached and the gate reports "inconclusive".

Everything here is pure numpy: no scipy, no per-sample Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from tailscope.histogram import LatencyHistogram

_WINDOW_SDS = 14.0
"""Binomial mass further than this many standard deviations (+ a margin) from the mean is below
1e-40 and is not materialised, so million-sample runs stay O(sqrt(n))."""


@dataclass(frozen=True, slots=True)
class RankInterval:
    """1-based ranks ``lower <= upper`` of the order statistics bracketing the quantile."""

    lower: int
    upper: int
    coverage: float
    """Exact binomial coverage ``P(lower <= B <= upper - 1)`` (>= the confidence asked)."""


@dataclass(frozen=True, slots=True)
class QuantileInterval:
    """A quantile's point estimate and confidence interval, in nanoseconds."""

    estimate_ns: int
    lower_ns: int
    upper_ns: int
    samples: int
    coverage: float


def _binomial_cdf_window(n: int, q: float) -> tuple[int, NDArray[np.float64]]:
    """``(k0, cdf)`` with ``cdf[i] = P(B <= k0 + i)`` for ``B ~ Binomial(n, q)``, over a window
    that holds all but a negligible part of the mass (``P(B < k0)`` is below 1e-40)."""
    mean = n * q
    sd = math.sqrt(n * q * (1.0 - q))
    margin = _WINDOW_SDS * sd + 40.0
    k0 = max(0, math.floor(mean - margin))
    k1 = min(n, math.ceil(mean + margin))
    log_pmf_k0 = (
        math.lgamma(n + 1)
        - math.lgamma(k0 + 1)
        - math.lgamma(n - k0 + 1)
        + k0 * math.log(q)
        + (n - k0) * math.log1p(-q)
    )
    # log pmf(k + 1) - log pmf(k) = log((n - k) / (k + 1)) + log(q / (1 - q))
    ks = np.arange(k0, k1, dtype=np.float64)
    steps = np.log(n - ks) - np.log(ks + 1.0) + (math.log(q) - math.log1p(-q))
    log_pmf = np.concatenate(([log_pmf_k0], log_pmf_k0 + np.cumsum(steps)))
    return k0, np.cumsum(np.exp(log_pmf))


def _cdf_at(k0: int, cdf: NDArray[np.float64], n: int, k: int) -> float:
    """``P(B <= k)`` from a window computed by :func:`_binomial_cdf_window`."""
    if k < k0:
        return 0.0
    if k >= n:
        return 1.0
    return float(cdf[min(k - k0, len(cdf) - 1)])


def order_statistic_ranks(n: int, quantile: float, confidence: float) -> RankInterval | None:
    """Equal-tailed order-statistic ranks for ``quantile`` of ``n`` samples at ``confidence``.

    ``None`` when no such interval exists (too few samples: e.g. p99 at 97.5 % needs ``n >= 435``).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if n < 2:
        return None
    tail = (1.0 - confidence) / 2.0
    # The interval exists iff P(B = 0) <= tail and P(B = n) <= tail.
    if n * math.log1p(-quantile) > math.log(tail) or n * math.log(quantile) > math.log(tail):
        return None
    k0, cdf = _binomial_cdf_window(n, quantile)
    # lower rank l: the largest l >= 1 with P(B <= l - 1) <= tail
    below = int(np.searchsorted(cdf, tail, side="right"))  # cdf[:below] <= tail
    lower = max(1, k0 + below)  # l - 1 = k0 + below - 1
    # upper rank u: the smallest u <= n with P(B <= u - 1) >= 1 - tail
    at = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
    upper = min(n, k0 + at + 1)
    coverage = _cdf_at(k0, cdf, n, upper - 1) - _cdf_at(k0, cdf, n, lower - 1)
    return RankInterval(lower, upper, float(coverage))


def quantile_interval_from_samples(
    durations_ns: NDArray[np.int64], quantile: float, confidence: float
) -> QuantileInterval | None:
    """The interval from raw samples (exact order statistics). Used as a reference in tests and
    by callers that still hold the samples."""
    n = int(durations_ns.size)
    ranks = order_statistic_ranks(n, quantile, confidence)
    if ranks is None:
        return None
    ordered = np.sort(durations_ns)
    rank = max(int(quantile * n + 0.5), 1)
    return QuantileInterval(
        int(ordered[rank - 1]),
        int(ordered[ranks.lower - 1]),
        int(ordered[ranks.upper - 1]),
        n,
        ranks.coverage,
    )


def quantile_interval_from_histogram(
    histogram: LatencyHistogram, quantile: float, confidence: float
) -> QuantileInterval | None:
    """The interval from an HdrHistogram's bucket counts.

    An order statistic is only known to lie in its bucket, so the lower bound takes the bucket's
    low edge and the upper bound its high edge: the interval is widened by at most one bucket
    (0.1 % of the value, or 1 µs below 2 ms) and its coverage is never reduced by bucketing.
    """
    from tailscope.histogram import NS_PER_UNIT, relative_resolution

    n = histogram.count
    ranks = order_statistic_ranks(n, quantile, confidence)
    if ranks is None:
        return None
    # quantiles_ns answers the highest value equivalent to the bucket of the sample at rank
    # max(int(q * n + 0.5), 1); (rank - 0.25) / n selects exactly that rank.
    estimate_ns, lower_high_ns, upper_high_ns = histogram.quantiles_ns(
        [quantile, (ranks.lower - 0.25) / n, (ranks.upper - 0.25) / n]
    )
    # A bucket spans at most relative_resolution() of its highest value; recorded values are
    # truncated to whole microseconds, so the true value may lie up to 1 µs above the bucket.
    lower_ns = math.floor(lower_high_ns * (1.0 - relative_resolution()))
    upper_ns = upper_high_ns + NS_PER_UNIT
    return QuantileInterval(estimate_ns, lower_ns, upper_ns, n, ranks.coverage)


# --- Harrell–Davis estimate with its Maritz–Jarrett standard error ------------------------------
_BETA_GRID = 4097
"""Points of the grid on which the Beta CDF is integrated (over ±14 standard deviations)."""


@dataclass(frozen=True, slots=True)
class QuantileEstimate:
    """A Harrell–Davis quantile estimate and its Maritz–Jarrett standard error, nanoseconds."""

    estimate_ns: float
    standard_error_ns: float
    samples: int


def _beta_cdf(points: NDArray[np.float64], a: float, b: float) -> NDArray[np.float64]:
    """CDF of Beta(a, b) at ``points`` (a, b >= 1), by integrating the density on a grid that
    covers all but a negligible part of the mass. Pure numpy: no scipy for one function."""
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    lo = max(0.0, mean - _WINDOW_SDS * sd)
    hi = min(1.0, mean + _WINDOW_SDS * sd)
    grid = np.linspace(lo, hi, _BETA_GRID)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pdf = (np.log(grid) * (a - 1.0) if a > 1.0 else 0.0) + (
            np.log1p(-grid) * (b - 1.0) if b > 1.0 else 0.0
        )
    log_pdf = np.nan_to_num(np.broadcast_to(log_pdf, grid.shape), nan=-np.inf, neginf=-np.inf)
    pdf = np.exp(log_pdf - np.max(log_pdf))
    cdf = np.concatenate(([0.0], np.cumsum((pdf[1:] + pdf[:-1]) * 0.5 * np.diff(grid))))
    cdf /= cdf[-1]
    return np.interp(points, grid, cdf, left=0.0, right=1.0)


def harrell_davis(
    values_ns: NDArray[np.int64] | NDArray[np.float64],
    counts: NDArray[np.int64],
    quantile: float,
) -> QuantileEstimate | None:
    """Harrell–Davis estimate of ``quantile`` with the Maritz–Jarrett standard error.

    The sample is given as distinct ascending values and their counts (a histogram's buckets, or
    ``np.unique(samples, return_counts=True)``). The estimate is ``Σ W_i X_(i)`` with ``W_i`` the
    probability that a Beta((n+1)q, (n+1)(1-q)) variable falls in ``((i-1)/n, i/n]``: a smooth
    weighting of the order statistics around rank ``qn``. Its standard error is
    ``sqrt(Σ W_i X_(i)² - (Σ W_i X_(i))²)`` (Maritz & Jarrett 1978). Order statistics that share
    a value (one histogram bucket) share its weight, so this is O(buckets), never O(samples).

    ``None`` for fewer than two samples.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile}")
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n < 2:
        return None
    a = (n + 1) * quantile
    b = (n + 1) * (1.0 - quantile)
    if a < 1.0 or b < 1.0:
        return None
    edges = np.concatenate(([0], np.cumsum(counts))) / n
    weights = np.diff(_beta_cdf(edges, a, b))
    x = np.asarray(values_ns, dtype=np.float64)
    # centre before squaring: the variance of values near 1e9 ns is then computed exactly enough
    centre = float(x[int(np.argmax(weights))])
    c1 = float(np.dot(weights, x - centre))
    c2 = float(np.dot(weights, (x - centre) ** 2))
    return QuantileEstimate(centre + c1, math.sqrt(max(c2 - c1 * c1, 0.0)), n)


def harrell_davis_from_histogram(
    histogram: LatencyHistogram, quantile: float
) -> QuantileEstimate | None:
    """:func:`harrell_davis` on an HdrHistogram's buckets (each at its midpoint, so a value is
    off by at most half a bucket: 0.05 % of the value, or 0.5 µs)."""
    values, counts = histogram.bucket_values_and_counts()
    return harrell_davis(values, counts, quantile)
