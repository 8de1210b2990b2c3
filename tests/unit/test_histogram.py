"""The hdrh wrapper: vectorised recording must equal hdrh's own per-value recording, quantiles
must match numpy's nearest-rank quantile within the histogram's resolution, and failures raise."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from tailscope.errors import HistogramError
from tailscope.histogram import (
    HIGHEST_TRACKABLE,
    LOWEST_TRACKABLE,
    NS_PER_UNIT,
    SIGNIFICANT_FIGURES,
    LatencyHistogram,
    relative_resolution,
)

QS = [0.5, 0.9, 0.99, 0.999]


def _samples(n: int = 20_000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(np.log(8e6), 1.1, n).astype(np.int64)


def test_quantiles_equal_hdrh_recording_value_by_value() -> None:
    values = _samples(5_000)
    reference = HdrHistogram(LOWEST_TRACKABLE, HIGHEST_TRACKABLE, SIGNIFICANT_FIGURES)
    for v in values // NS_PER_UNIT:
        assert reference.record_value(int(v))
    ours = LatencyHistogram.from_durations_ns(values)
    assert ours.count == reference.get_total_count() == values.size
    for q in QS:
        assert ours.quantile_ns(q) == reference.get_value_at_percentile(q * 100) * NS_PER_UNIT


def test_quantiles_match_numpy_within_resolution() -> None:
    values = _samples()
    hist = LatencyHistogram.from_durations_ns(values)
    tolerance = relative_resolution()
    for q in QS:
        expected = float(np.quantile(values, q, method="inverted_cdf"))
        got = hist.quantile_ns(q)
        assert abs(got - expected) <= expected * tolerance + NS_PER_UNIT, (q, got, expected)
    # the maximum is reported as the top of its bucket, as HdrHistogram does
    top = int(values.max())
    assert top - NS_PER_UNIT <= hist.max_ns <= top * (1 + tolerance) + NS_PER_UNIT


def test_encode_decode_round_trip_with_hdrh_decoder() -> None:
    hist = LatencyHistogram.from_durations_ns(_samples(3_000))
    text = hist.encode()
    theirs = HdrHistogram.decode(text)
    assert theirs.get_total_count() == hist.count
    assert theirs.get_value_at_percentile(99.0) * NS_PER_UNIT == hist.quantile_ns(0.99)
    back = LatencyHistogram.decode(text)
    assert back.quantiles_ns(QS) == hist.quantiles_ns(QS)


def test_merge_equals_recording_both() -> None:
    a, b = _samples(2_000, 1), _samples(3_000, 2)
    merged = LatencyHistogram.from_durations_ns(a)
    merged.merge(LatencyHistogram.from_durations_ns(b))
    both = LatencyHistogram.from_durations_ns(np.concatenate([a, b]))
    assert merged.count == 5_000
    assert merged.quantiles_ns(QS) == both.quantiles_ns(QS)


def test_failures_raise_or_are_counted() -> None:
    with pytest.raises(HistogramError, match="negative"):
        LatencyHistogram.from_durations_ns([5, -1])
    with pytest.raises(HistogramError, match="not an encoded HdrHistogram"):
        LatencyHistogram.decode("definitely not a histogram")
    hist = LatencyHistogram.from_durations_ns([2 * 3600 * 10**9, 1_000])
    assert hist.clamped == 1
    assert hist.count == 2
    with pytest.raises(HistogramError):
        hist.quantile_ns(1.5)


def test_bucket_values_and_counts_cover_every_sample() -> None:
    values = _samples(4_000)
    hist = LatencyHistogram.from_durations_ns(values)
    reps, counts = hist.bucket_values_and_counts()
    assert counts.sum() == values.size
    assert np.all(np.diff(reps) > 0)
    assert abs(reps[-1] - values.max()) <= values.max() * relative_resolution() + NS_PER_UNIT


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 999, 20_000])
@pytest.mark.parametrize("seed", [1, 2])
def test_nearest_rank_shortcut_equals_the_full_histogram(n: int, seed: int) -> None:
    """``percentiles.hdr_quantiles_ns`` (one value per quantile) gives what recording every
    duration into a histogram gives, ties, zeros and huge values included."""
    from tailscope.analysis.percentiles import hdr_quantiles_ns

    rng = np.random.default_rng(seed)
    values = _samples(n, seed)
    values[rng.random(n) < 0.1] = 0
    values[rng.random(n) < 0.2] = values[0]  # ties
    if n > 10:
        values[-1] = 3_000 * 10**9  # beyond the histogram's highest trackable value
    qs = [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0]
    full = LatencyHistogram.from_durations_ns(values).quantiles_ns(qs)
    assert hdr_quantiles_ns(values, qs) == full
