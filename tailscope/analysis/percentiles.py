"""Per-operation latency percentiles from HdrHistograms.

Spans are grouped by (service, operation, kind) in polars (on the categorical names, cast to
text only per group); each group's percentiles are those of a
:class:`~tailscope.histogram.LatencyHistogram` of its durations, computed from the nearest-rank
samples (:func:`hdr_quantiles_ns`). Percentiles therefore have HdrHistogram semantics: nearest
rank, reported as the highest value of the bucket holding it, capped at the exact maximum (within
0.1 % or 1 µs of the exact order statistic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tailscope import schema as s
from tailscope.analysis.traces import DURATION_UNKNOWN
from tailscope.histogram import LatencyHistogram
from tailscope.report.model import OperationStats
from tailscope.schema import SpanKind, StatusCode

QUANTILES: Final = (0.5, 0.9, 0.99, 0.999)
"""p50, p90, p99, p99.9."""
NS_PER_MS: Final = 1_000_000
DEFAULT_EXEMPLARS: Final = 3
"""Exemplar trace ids kept per operation (its slowest spans)."""

KIND_NAMES: Final = {int(k): k.name.lower() for k in SpanKind}
"""OTLP kind number -> ``server``, ``client`` ..."""


def kind_name(kind: int) -> str:
    """The report's name for an OTLP span kind number (unknown numbers: ``unspecified``)."""
    return KIND_NAMES.get(int(kind), "unspecified")


def hdr_quantiles_ns(durations_ns: NDArray[np.int64], quantiles: Sequence[float]) -> list[int]:
    """What :meth:`LatencyHistogram.quantiles_ns` of a histogram of ``durations_ns`` returns
    (ns, non-negative durations), without recording every duration.

    A histogram quantile is the highest value equivalent to the bucket holding the nearest-rank
    sample (rank ``max(int(q * n + 0.5), 1)``); bucketing is monotone, so that bucket is the one
    of the same-rank raw duration, found with one ``np.partition``. A histogram of that single
    value gives the same answer, at the cost of one bucket instead of one per distinct bucket
    of the data.
    """
    n = int(durations_ns.size)
    if n == 0:
        return [0 for _ in quantiles]
    ranks = [max(int(q * n + 0.5), 1) for q in quantiles]
    ranked = np.partition(durations_ns, sorted({r - 1 for r in ranks}))
    return [
        LatencyHistogram.from_durations_ns([int(ranked[r - 1])]).quantile_ns(q)
        for q, r in zip(quantiles, ranks, strict=True)
    ]


def operation_stats(
    spans: pl.DataFrame,
    exemplars: int = DEFAULT_EXEMPLARS,
    root_keys: set[tuple[str, str, int]] | None = None,
) -> tuple[OperationStats, ...]:
    """Latency of every (service, operation, kind), slowest p99 first.

    Args:
        spans: the span table (``service_name``, ``name``, ``kind``, ``duration_ns``,
            ``status_code``, ``trace_id``; spans marked ``duration_unknown`` are left out).
        exemplars: how many trace ids of the slowest spans to keep per operation.
        root_keys: (service, operation, kind number) of operations that are trace roots.

    Returns:
        One :class:`OperationStats` per operation; times in ms.
    """
    if DURATION_UNKNOWN in spans.columns:  # 0 ns stand-ins for missing durations
        spans = spans.filter(~pl.col(DURATION_UNKNOWN))
    if spans.height == 0:
        return ()
    keys = [s.SERVICE, s.NAME, s.KIND]
    frame = spans.select(
        pl.col(s.SERVICE),
        pl.col(s.NAME),
        pl.col(s.KIND),
        pl.col(s.DURATION).clip(lower_bound=0),
        (pl.col(s.STATUS_CODE) == StatusCode.ERROR).alias("_error"),
        pl.col(s.TRACE_ID),
    )
    grouped = frame.group_by(keys).agg(
        pl.col(s.DURATION).alias("_durations"),
        pl.col("_error").mean().alias("_error_rate"),
        # ties broken by trace id: the same exemplars however the spans were ordered or split
        pl.struct(s.DURATION, s.TRACE_ID)
        .top_k_by([s.DURATION, s.TRACE_ID], exemplars, reverse=[False, True])
        .alias("_slowest"),
    )
    lengths = grouped["_durations"].list.len().to_numpy()
    flat = grouped["_durations"].explode().to_numpy()
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths, dtype=np.int64)])
    out: list[OperationStats] = []
    roots = root_keys or set()
    labels = grouped.drop("_durations").with_columns(
        pl.col(s.SERVICE).cast(pl.String), pl.col(s.NAME).cast(pl.String)
    )
    for i, row in enumerate(labels.iter_rows(named=True)):
        durations = flat[offsets[i] : offsets[i + 1]]
        # a bucket's highest equivalent value can exceed the largest sample: cap at the max
        longest = int(durations.max())
        p50, p90, p99, p999 = (min(q, longest) for q in hdr_quantiles_ns(durations, QUANTILES))
        slowest = sorted(row["_slowest"], key=lambda x: (-int(x[s.DURATION]), x[s.TRACE_ID]))
        out.append(
            OperationStats(
                service=row[s.SERVICE],
                operation=row[s.NAME],
                kind=kind_name(row[s.KIND]),
                count=int(durations.size),
                error_rate=float(row["_error_rate"] or 0.0),
                p50_ms=p50 / NS_PER_MS,
                p90_ms=p90 / NS_PER_MS,
                p99_ms=p99 / NS_PER_MS,
                p999_ms=p999 / NS_PER_MS,
                max_ms=longest / NS_PER_MS,
                exemplar_trace_ids=tuple(bytes(x[s.TRACE_ID]).hex() for x in slowest),
                is_root=(row[s.SERVICE], row[s.NAME], int(row[s.KIND])) in roots,
            )
        )
    out.sort(key=lambda op: (-op.p99_ms, -op.count, op.service, op.operation, op.kind))
    return tuple(out)
