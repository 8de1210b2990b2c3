"""Typed wrapper over ``hdrh``: the only module that imports it.

``hdrh`` fails silently (``record_value`` returns False for an out-of-range value) and is a pure
Python loop per value. This wrapper records whole numpy arrays at once (bucket indices computed
vectorised with HdrHistogram's own bucketing, so the counts are exactly what ``hdrh`` would hold),
answers quantiles vectorised, and raises :class:`~tailscope.errors.HistogramError` instead of
returning False. Values above the trackable range are clamped to it and counted in ``clamped``.

Unit: values are recorded in **microseconds** (1 µs .. 1 hour, 3 significant digits): latency
resolution is 0.1 % of the value or 1 µs, whichever is larger. The API takes and returns
nanoseconds; conversion happens here only.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tailscope.errors import HistogramError

NS_PER_UNIT: Final = 1_000
"""Recorded unit: 1 µs = 1000 ns."""
LOWEST_TRACKABLE: Final = 1
HIGHEST_TRACKABLE: Final = 3_600_000_000
"""One hour in microseconds."""
SIGNIFICANT_FIGURES: Final = 3


def _new_hdrh() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_TRACKABLE, HIGHEST_TRACKABLE, SIGNIFICANT_FIGURES)


@dataclass(frozen=True, slots=True)
class _Layout:
    unit_magnitude: int
    sub_bucket_half_count_magnitude: int
    sub_bucket_half_count: int
    sub_bucket_mask: int
    counts_len: int


def _layout(h: Any) -> _Layout:
    return _Layout(
        int(h.unit_magnitude),
        int(h.sub_bucket_half_count_magnitude),
        int(h.sub_bucket_half_count),
        int(h.sub_bucket_mask),
        int(h.counts_len),
    )


class LatencyHistogram:
    """An HdrHistogram of latencies (1 µs .. 1 h, 3 significant digits).

    Build with :meth:`from_durations_ns` (vectorised) or :meth:`decode`; query with
    :meth:`quantile_ns`; combine with :meth:`merge`; persist with :meth:`encode` (the standard
    compressed V2 encoding, base64, readable by other HdrHistogram implementations).
    """

    __slots__ = ("_h", "_layout", "clamped")

    def __init__(self) -> None:
        self._h = _new_hdrh()
        self._layout = _layout(self._h)
        self.clamped = 0
        """Values above one hour that were recorded as one hour."""

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def from_durations_ns(
        cls, durations_ns: NDArray[np.integer[Any]] | list[int]
    ) -> LatencyHistogram:
        """A histogram of the given durations in nanoseconds. Negative values raise."""
        hist = cls()
        hist.record_ns(durations_ns)
        return hist

    def _indices(self, units: NDArray[np.int64]) -> NDArray[np.int64]:
        lay = self._layout
        masked = units | lay.sub_bucket_mask
        # bit length of each value: exact for values below 2**53 (ours are below 2**32)
        bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
        bucket = bit_length - lay.unit_magnitude - (lay.sub_bucket_half_count_magnitude + 1)
        sub_bucket = units >> (bucket + lay.unit_magnitude)
        return ((bucket + 1) << lay.sub_bucket_half_count_magnitude) + (
            sub_bucket - lay.sub_bucket_half_count
        )

    def record_ns(self, durations_ns: NDArray[np.integer[Any]] | list[int]) -> None:
        """Record many durations (nanoseconds) at once."""
        values = np.asarray(durations_ns, dtype=np.int64)
        if values.size == 0:
            return
        if int(values.min()) < 0:
            raise HistogramError(f"cannot record a negative duration ({int(values.min())} ns)")
        units = values // NS_PER_UNIT
        over = units > HIGHEST_TRACKABLE
        n_over = int(over.sum())
        if n_over:
            self.clamped += n_over
            units = np.where(over, HIGHEST_TRACKABLE, units)
        idx = self._indices(units)
        binned = np.bincount(idx, minlength=self._layout.counts_len)
        h = self._h
        for i in np.flatnonzero(binned):
            value = int(h.get_value_from_index(int(i)))
            if not h.record_value(value, int(binned[i])):
                raise HistogramError(f"hdrh refused value {value} µs")
        # keep exact extremes rather than bucket-lowered ones
        h.min_value = min(int(h.min_value), int(units.min()))
        h.max_value = max(int(h.max_value), int(units.max()))

    # --- queries ----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def _counts(self) -> NDArray[np.int64]:
        return np.ctypeslib.as_array(self._h.counts).astype(np.int64, copy=False)

    def quantile_ns(self, q: float) -> int:
        """The value at quantile ``q`` (0..1) in nanoseconds, HdrHistogram semantics (the
        highest value equivalent to the bucket holding the nearest-rank sample). 0 if empty."""
        return self.quantiles_ns([q])[0]

    def quantiles_ns(self, qs: list[float]) -> list[int]:
        """Several quantiles at once (vectorised)."""
        if not all(0.0 <= q <= 1.0 for q in qs):
            raise HistogramError(f"quantiles must be within 0..1, got {qs}")
        total = self.count
        if total == 0:
            return [0 for _ in qs]
        cum = np.cumsum(self._counts())
        out: list[int] = []
        h = self._h
        for q in qs:
            target = max(int(q * total + 0.5), 1)
            idx = int(np.searchsorted(cum, target, side="left"))
            value = int(h.get_value_from_index(idx))
            if q > 0:
                value = int(h.get_highest_equivalent_value(value))
            value = min(value, int(h.max_value)) if q >= 1.0 else value
            out.append(value * NS_PER_UNIT)
        return out

    @property
    def max_ns(self) -> int:
        """The largest value, as the top of its bucket (HdrHistogram semantics)."""
        return int(self._h.get_max_value()) * NS_PER_UNIT if self.count else 0

    @property
    def min_ns(self) -> int:
        return int(self._h.get_min_value()) * NS_PER_UNIT if self.count else 0

    @property
    def mean_ns(self) -> float:
        return float(self._h.get_mean_value()) * NS_PER_UNIT if self.count else 0.0

    def bucket_values_and_counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Non-empty buckets: (representative value in ns, count), ascending. For resampling."""
        counts = self._counts()
        nz = np.flatnonzero(counts)
        h = self._h
        lows = [int(h.get_value_from_index(int(i))) for i in nz]
        values = np.array(
            [(lo + int(h.get_highest_equivalent_value(lo))) // 2 for lo in lows], dtype=np.int64
        )
        return values * NS_PER_UNIT, counts[nz]

    # --- combining and persistence ------------------------------------------------------------
    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram."""
        try:
            self._h.add(other._h)
        except (IndexError, ValueError) as exc:
            raise HistogramError(f"cannot merge histograms: {exc}") from exc
        self.clamped += other.clamped

    def encode(self) -> str:
        """The standard compressed (V2, zlib) HdrHistogram encoding, base64 text."""
        raw = self._h.encode()
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        """Inverse of :meth:`encode`; a histogram of another layout is re-bucketed into ours."""
        from hdrh.histogram import HdrHistogram

        try:
            other = HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)
        except (TypeError, ValueError, zlib.error, UnicodeError) as exc:
            raise HistogramError(f"not an encoded HdrHistogram: {exc}") from exc
        except Exception as exc:  # hdrh raises its own exception classes for bad cookies
            raise HistogramError(
                f"not an encoded HdrHistogram: {type(exc).__name__}: {exc}"
            ) from exc
        hist = cls()
        try:
            hist._h.add(other)
        except IndexError as exc:
            raise HistogramError(f"histogram holds values beyond one hour: {exc}") from exc
        return hist


def relative_resolution() -> float:
    """Worst-case relative width of one bucket (for test tolerances): 2 / 10**figures."""
    return 2.0 / math.pow(10, SIGNIFICANT_FIGURES)
