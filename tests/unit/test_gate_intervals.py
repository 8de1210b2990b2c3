"""Order-statistic quantile intervals: exact ranks, real coverage, conservative bucketing."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from tailscope.gate import (
    minimum_samples,
    order_statistic_ranks,
    quantile_interval_from_histogram,
    quantile_interval_from_samples,
)
from tailscope.histogram import LatencyHistogram, relative_resolution


def _exact_cdf(n: int, q: float) -> list[float]:
    """Binomial CDF by exact integer arithmetic (the independent reference)."""
    p = Fraction(str(q))
    out, total = [], Fraction(0)
    for k in range(n + 1):
        total += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        out.append(float(total))
    return out


@pytest.mark.parametrize(
    ("n", "q", "confidence"),
    [(500, 0.99, 0.975), (1000, 0.9, 0.95), (60, 0.5, 0.99), (2000, 0.99, 0.9)],
)
def test_ranks_are_the_equal_tailed_binomial_ranks(n: int, q: float, confidence: float) -> None:
    ranks = order_statistic_ranks(n, q, confidence)
    assert ranks is not None
    cdf = _exact_cdf(n, q)
    tail = (1 - confidence) / 2
    # lower: the largest l with P(B <= l - 1) <= tail; upper: the smallest u with
    # P(B <= u - 1) >= 1 - tail
    assert cdf[ranks.lower - 1] <= tail + 1e-12
    assert cdf[ranks.lower] > tail
    assert cdf[ranks.upper - 1] >= 1 - tail - 1e-12
    assert cdf[ranks.upper - 2] < 1 - tail
    assert ranks.coverage == pytest.approx(cdf[ranks.upper - 1] - cdf[ranks.lower - 1], abs=1e-9)
    assert ranks.coverage >= confidence


def test_interval_needs_enough_samples_for_p99() -> None:
    # P(B = n) = 0.99**n must be <= 1.25 %: n >= log(0.0125) / log(0.99) = 436.02
    assert minimum_samples(0.99, 0.975) == 437
    assert order_statistic_ranks(436, 0.99, 0.975) is None
    assert order_statistic_ranks(437, 0.99, 0.975) is not None
    assert minimum_samples(0.5, 0.975) == 7  # 0.5**6 = 0.0156 > 0.0125 >= 0.5**7 = 0.0078


def test_large_n_ranks_match_normal_approximation() -> None:
    n, q = 10_000_000, 0.99
    ranks = order_statistic_ranks(n, q, 0.975)
    assert ranks is not None
    sd = math.sqrt(n * q * (1 - q))
    z = 2.2414  # standard normal 98.75 % point
    assert ranks.lower == pytest.approx(n * q - z * sd, abs=3)
    assert ranks.upper == pytest.approx(n * q + z * sd + 1, abs=3)


def test_coverage_of_lognormal_p99_meets_confidence() -> None:
    # GIVEN 2000 independent samples of 1000 lognormal latencies with a known p99
    rng = np.random.default_rng(7)
    median_ns, sigma = 20e6, 0.6
    true_p99 = median_ns * math.exp(sigma * 2.3263479)
    reps, covered = 2000, 0
    for _ in range(reps):
        sample = rng.lognormal(math.log(median_ns), sigma, 1000).astype(np.int64)
        interval = quantile_interval_from_samples(sample, 0.99, 0.95)
        assert interval is not None
        covered += interval.lower_ns <= true_p99 <= interval.upper_ns
    # THEN the interval covers the true p99 at least 95 % of the time (3 standard errors slack)
    se = math.sqrt(0.95 * 0.05 / reps)
    assert covered / reps >= 0.95 - 3 * se


def test_histogram_interval_contains_sample_interval_within_one_bucket() -> None:
    rng = np.random.default_rng(3)
    for median_ms in (0.3, 4.0, 80.0, 2500.0):
        sample = rng.lognormal(math.log(median_ms * 1e6), 0.5, 5000).astype(np.int64)
        exact = quantile_interval_from_samples(sample, 0.99, 0.975)
        binned = quantile_interval_from_histogram(
            LatencyHistogram.from_durations_ns(sample), 0.99, 0.975
        )
        assert exact is not None and binned is not None
        # conservative: the bucketed interval contains the exact one ...
        assert binned.lower_ns <= exact.lower_ns
        assert binned.upper_ns >= exact.upper_ns
        # ... and is wider by at most one bucket (relative resolution) plus 1 µs per side
        slack = 2 * relative_resolution()
        assert exact.lower_ns - binned.lower_ns <= exact.lower_ns * slack + 1_000
        assert binned.upper_ns - exact.upper_ns <= exact.upper_ns * slack + 1_000
        assert binned.estimate_ns == pytest.approx(
            float(np.sort(sample)[int(0.99 * sample.size + 0.5) - 1]), rel=relative_resolution()
        )


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="quantile"):
        order_statistic_ranks(100, 1.0, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        order_statistic_ranks(100, 0.5, 1.5)
