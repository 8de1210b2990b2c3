"""The gate's quantile estimate and decision: Harrell–Davis values and Maritz–Jarrett errors
against hand-computed and closed-form references, then the measured false-alarm rate and power
of ``evaluate`` on generated pairs whose true p99 ratio is known exactly.

Pairs are drawn with numpy from a heavy-tailed mixture (97 % lognormal around 20 ms, 3 % a slow
mode around 60 ms: a p99 that sits where the two modes meet, like a tail made of GC pauses or
retries), and a regression multiplies every latency by a factor, so the p99 ratio is that factor.
Only the histograms are compared, as with a stored baseline file.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from tailscope.gate import (
    Baseline,
    GatePolicy,
    OperationHistogram,
    decode_baseline,
    encode_baseline,
    evaluate,
    harrell_davis,
    harrell_davis_from_histogram,
)
from tailscope.gate.intervals import _beta_cdf
from tailscope.histogram import LatencyHistogram


def _lognormal(rng: np.random.Generator, n: int, factor: float = 1.0) -> np.ndarray:
    """A typical service: lognormal latencies around 20 ms, σ = 0.5."""
    return (np.exp(rng.normal(math.log(20.0), 0.5, n)) * factor * 1e6).astype(np.int64)


def _mixture(rng: np.random.Generator, n: int, factor: float = 1.0) -> np.ndarray:
    """A hard tail: the p99 falls between a fast mode and a 3 % slow mode."""
    slow = rng.random(n) < 0.03
    ms = np.where(
        slow,
        np.exp(rng.normal(math.log(60.0), 0.5, n)),
        np.exp(rng.normal(math.log(20.0), 0.3, n)),
    )
    return (ms * factor * 1e6).astype(np.int64)


def _run(durations_ns: np.ndarray) -> Baseline:
    root = OperationHistogram(
        service="web",
        operation="GET /search",
        kind=None,
        count=int(durations_ns.size),
        start_unix_nano=0,
        end_unix_nano=1,
        histogram=LatencyHistogram.from_durations_ns(durations_ns),
    )
    return Baseline(
        label=None,
        created="t",
        tailscope_version="test",
        spans=int(durations_ns.size),
        traces=int(durations_ns.size),
        roots=(root,),
        operations=(),
    )


def _fail_rate(
    pairs: int,
    n: int,
    factor: float,
    policy: GatePolicy,
    seed: int,
    draw: Callable[[np.random.Generator, int, float], np.ndarray] = _mixture,
) -> tuple[float, int]:
    rng = np.random.default_rng(seed)
    fails = inconclusive = 0
    for _ in range(pairs):
        # the baseline goes through its file encoding: the gate only has its histogram
        base = decode_baseline(encode_baseline(_run(draw(rng, n, 1.0))))
        cur = _run(draw(rng, n, factor))
        (row,) = evaluate(cur, base, policy).rows
        fails += row.verdict == "fail"
        inconclusive += row.verdict == "inconclusive"
    return fails / pairs, inconclusive


def test_beta_cdf_matches_closed_forms() -> None:
    x = np.linspace(0.0, 1.0, 101)
    assert np.max(np.abs(_beta_cdf(x, 5.0, 1.0) - x**5)) < 1e-6
    assert np.max(np.abs(_beta_cdf(x, 1.0, 3.0) - (1.0 - (1.0 - x) ** 3))) < 1e-6
    assert np.max(np.abs(_beta_cdf(x, 2.0, 2.0) - (3 * x**2 - 2 * x**3))) < 1e-6


def test_harrell_davis_of_a_hand_computed_sample() -> None:
    # GIVEN the sample 1, 2, 10 and the median: weights are Beta(2, 2) masses of thirds,
    # F(x) = 3x² - 2x³ -> 7/27, 13/27, 7/27
    est = harrell_davis(np.array([1, 2, 10]), np.array([1, 1, 1]), 0.5)
    assert est is not None
    c1 = (7 * 1 + 13 * 2 + 7 * 10) / 27
    c2 = (7 * 1 + 13 * 4 + 7 * 100) / 27
    assert est.estimate_ns == pytest.approx(c1, rel=1e-6)
    assert est.standard_error_ns == pytest.approx(math.sqrt(c2 - c1 * c1), rel=1e-6)
    # tied values are one bucket: the same sample given as counts gives the same numbers
    tied = harrell_davis(np.array([1, 2, 10]), np.array([2, 2, 2]), 0.5)
    raw = harrell_davis(np.array([1, 1, 2, 2, 10, 10]), np.ones(6, dtype=np.int64), 0.5)
    assert tied is not None and raw is not None
    assert tied.estimate_ns == pytest.approx(raw.estimate_ns, rel=1e-9)


def test_histogram_estimate_matches_raw_samples_and_error_matches_spread() -> None:
    rng = np.random.default_rng(7)
    estimates, errors = [], []
    for _ in range(150):
        sample = _mixture(rng, 2000)
        values, counts = np.unique(sample, return_counts=True)
        raw = harrell_davis(values, counts, 0.99)
        hist = harrell_davis_from_histogram(LatencyHistogram.from_durations_ns(sample), 0.99)
        assert raw is not None and hist is not None
        # the histogram's buckets move the estimate by far less than one bucket (0.1 %)
        assert hist.estimate_ns == pytest.approx(raw.estimate_ns, rel=1e-3)
        estimates.append(raw.estimate_ns)
        errors.append(raw.standard_error_ns)
    # the Maritz–Jarrett error is the spread of the estimate across samples, within 25 %
    spread = float(np.std(estimates, ddof=1))
    assert float(np.median(errors)) == pytest.approx(spread, rel=0.25)
    # and the estimate is centred on the true p99 of the mixture (a 10⁶-sample reference)
    truth = float(np.quantile(_mixture(np.random.default_rng(8), 1_000_000), 0.99))
    assert float(np.mean(estimates)) == pytest.approx(truth, rel=0.02)


def test_false_alarms_at_the_allowance_boundary_are_below_5_percent() -> None:
    # GIVEN 150 pairs whose true p99 rose by exactly the allowance (+10 %): the worst case
    # for false alarms, where the null hypothesis holds with equality
    rate, inconclusive = _fail_rate(150, 1000, 1.10, GatePolicy(max_increase_pct=10.0), seed=1)
    # THEN every pair is conclusive and the measured rate is within the one-sided α/2 = 2.5 %
    # design level plus sampling noise (5 %)
    assert inconclusive == 0
    assert rate <= 0.05, rate


def test_same_system_with_no_allowance_rarely_fails() -> None:
    rate, _ = _fail_rate(150, 1000, 1.0, GatePolicy(max_increase_pct=0.0), seed=2)
    assert rate <= 0.05, rate


def test_power_a_30_percent_p99_rise_is_caught_at_3000_requests() -> None:
    # GIVEN 80 pairs of a typical service, 3,000 requests per run, p99 30 % higher, 10 % allowed
    policy = GatePolicy(max_increase_pct=10.0)
    rate, _ = _fail_rate(80, 3000, 1.30, policy, seed=3, draw=_lognormal)
    # THEN at least 90 % of them fail the gate
    assert rate >= 0.90, rate


def test_power_on_a_hard_tail_needs_more_requests() -> None:
    # GIVEN the two-mode tail, where p99 itself is noisy (about ±8 % at 3,000 requests): a
    # 50 % rise at 10,000 requests is caught at least 90 % of the time
    policy = GatePolicy(max_increase_pct=10.0)
    rate, _ = _fail_rate(40, 10_000, 1.50, policy, seed=4)
    assert rate >= 0.90, rate
