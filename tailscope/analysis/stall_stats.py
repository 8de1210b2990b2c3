"""Whole-input statistics of stall detection, merged exactly from parts of the input.

:func:`~tailscope.analysis._stall_common.client_calls` computes two statistics of *every* call
of an edge — the ``usual_overhead`` (median client-minus-child time per caller service, client
operation and callee service) and the timeout ``budget`` (shortest timed-out call per caller
service, client operation and target) — and the burst-of-roots test of
:func:`~tailscope.analysis.stalls.detect_stalls` the number of requests each instance served
and how many of them had an instrumented caller. Each part of the input (whole traces: a call
and its child share a trace) gives small counts (:func:`stall_stat_parts`); any number of
parts' counts, stacked or summed per key by an engine's ``groupBy``, give the whole input's
statistics (:func:`stall_stats_from_parts`): the median from the cumulative counts of each
distinct overhead, the two middle values interpolated as polars' ``median`` does, the budget
as a minimum, the request counts as sums. ``client_calls(narrowed, stats=...)`` then uses
them instead of the statistics of ``narrowed`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import polars as pl

from tailscope.analysis._stall_common import TIMEOUT_EDGE, as_names, spans_across
from tailscope.schema import SpanKind

OVERHEAD_EDGE: Final = ["service", "name", "child_service"]
"""The edge of ``usual_overhead``: caller service, client operation, callee service."""


@dataclass(frozen=True, slots=True)
class StallStats:
    """Statistics of the whole input that stall detection reads beyond one part of it."""

    edges: pl.DataFrame
    """:data:`OVERHEAD_EDGE` columns and ``usual_overhead`` (median overhead, ns, Float64)."""
    budgets: pl.DataFrame
    """``TIMEOUT_EDGE`` columns and ``budget`` (shortest timed-out call of the edge, ns)."""
    requests: pl.DataFrame
    """``instance``, ``servers`` (its SERVER spans) and ``called`` (calls with an
    instrumented child on it)."""


def stall_stat_parts(narrowed: pl.DataFrame, calls: pl.DataFrame) -> StallStats:
    """The counts of one part of the input (whole traces): ``narrowed`` and its
    ``client_calls``. ``edges`` holds ``overhead`` and ``calls`` (how many calls of the edge
    had that overhead) instead of the median; stack the parts' frames and merge them with
    :func:`stall_stats_from_parts`."""
    edges = (
        calls.drop_nulls("overhead")
        .group_by(*OVERHEAD_EDGE, "overhead")
        .agg(pl.len().cast(pl.Int64).alias("calls"))
    )
    budgets = (
        calls.filter(pl.col("timeout"))
        .group_by(TIMEOUT_EDGE)
        .agg(pl.col("dur").min().alias("budget"))
    )
    servers = (
        narrowed.filter(pl.col("kind") == SpanKind.SERVER)
        .group_by("instance")
        .agg(pl.len().cast(pl.Int64).alias("servers"))
    )
    called = (
        calls.drop_nulls("child_sid")
        .group_by(pl.col("child_instance").alias("instance"))
        .agg(pl.len().cast(pl.Int64).alias("called"))
    )
    requests = servers.join(called, on="instance", how="full", coalesce=True, nulls_equal=True)
    return StallStats(edges=edges, budgets=budgets, requests=requests.fill_null(0))


def _holds(rank: pl.Expr) -> pl.Expr:
    """The row of the sorted distinct overheads whose count covers 0-based ``rank``."""
    return (pl.col("reach") - pl.col("calls") <= rank) & (pl.col("reach") > rank)


def stall_stats_from_parts(parts: StallStats) -> StallStats:
    """The whole input's statistics from the stacked counts of all its parts
    (:func:`stall_stat_parts` of each, frames concatenated). Exact: equal to what
    ``client_calls`` and the burst-of-roots test compute over the whole input."""
    counts = (
        parts.edges.group_by(*OVERHEAD_EDGE, "overhead")
        .agg(pl.col("calls").sum())
        .sort(*OVERHEAD_EDGE, "overhead", nulls_last=True)
        .with_columns(
            reach=pl.col("calls").cum_sum().over(OVERHEAD_EDGE),
            total=pl.col("calls").sum().over(OVERHEAD_EDGE),
        )
    )
    # the middle values: the overheads holding ranks (n - 1) // 2 and n // 2 (0-based); their
    # median is polars' median of all (linear interpolation between the two middle values)
    middle = pl.concat(
        [
            counts.filter(_holds((pl.col("total") - 1) // 2)).select(*OVERHEAD_EDGE, "overhead"),
            counts.filter(_holds(pl.col("total") // 2)).select(*OVERHEAD_EDGE, "overhead"),
        ]
    )
    edges = middle.group_by(OVERHEAD_EDGE).agg(pl.col("overhead").median().alias("usual_overhead"))
    budgets = parts.budgets.group_by(TIMEOUT_EDGE).agg(pl.col("budget").min())
    requests = parts.requests.group_by("instance").agg(pl.col("servers", "called").sum())
    return StallStats(edges=edges, budgets=budgets, requests=requests)


@dataclass(frozen=True, slots=True)
class WholeInput:
    """What :func:`~tailscope.analysis.stalls.detect_stalls` reads of the whole input when it
    is handed only the :func:`evidence_subset` of the spans (``detect_stalls(subset,
    calls=client_calls(subset, stats), whole=...)``)."""

    candidates: pl.DataFrame
    """The whole input's silence candidates (``stalls._silences``; the silence stage's)."""
    gaps: pl.DataFrame
    """Every instance's gaps of at least 5 ms (``hour_parts`` of all groups, ``instance``
    categorical, sorted by instance and ``t``)."""
    served: pl.DataFrame
    """``instance``, ``_n``: SERVER spans of each instance (index dtype, as ``pl.len()``)."""
    called: pl.DataFrame
    """``instance``, ``_called``: calls with an instrumented child on each instance."""
    extent: pl.DataFrame
    """``instance``, ``_x``: last minus first timestamp of each instance (ns)."""
    instances: pl.DataFrame
    """``instance``, ``service``, ``host`` of every instance with timestamps."""
    stamps_near: Callable[[pl.DataFrame], pl.DataFrame]
    """Kept windows (``instance``, ``a``, ``b``, ``gap``) -> every instance's timestamps
    (``instance``, ``t``) within ``gap`` plus the skew margin of some window (what judging a
    window reads)."""


def whole_input(
    candidates: pl.DataFrame,
    gaps: pl.DataFrame,
    stats: StallStats,
    extents: pl.DataFrame,
    instances: pl.DataFrame,
    stamps_near: Callable[[pl.DataFrame], pl.DataFrame],
) -> WholeInput:
    """:class:`WholeInput` from the silence stage (``candidates``, ``gaps``, and ``extents``:
    ``instance``, ``first``, ``last`` of the boundary summaries), the merged ``stats`` and
    ``instances``."""
    index = pl.get_index_type()
    requests = stats.requests.with_columns(as_names("instance"))
    return WholeInput(
        candidates=candidates,
        gaps=gaps.with_columns(as_names("instance")).sort("instance", "t"),
        served=requests.filter(pl.col("servers") > 0).select(
            "instance", pl.col("servers").cast(index).alias("_n")
        ),
        called=requests.filter(pl.col("called") > 0).select(
            "instance", pl.col("called").cast(index).alias("_called")
        ),
        extent=extents.with_columns(as_names("instance")).select(
            "instance", (pl.col("last") - pl.col("first")).alias("_x")
        ),
        instances=instances.with_columns(as_names("instance")),
        stamps_near=stamps_near,
    )


def judged_ranges(kept: pl.DataFrame) -> pl.DataFrame:
    """The time ranges (``lo``, ``hi``, ns, inclusive) judging the kept windows reads every
    instance's timestamps in: ``gap`` plus the skew margin on both sides of each window."""
    from tailscope.analysis.stalls import SKEW_MARGIN_NS

    return kept.select(
        lo=pl.col("a") - pl.col("gap") - SKEW_MARGIN_NS,
        hi=pl.col("b") + pl.col("gap") + SKEW_MARGIN_NS,
    )


def evidence_subset(narrowed: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """The whole traces of ``narrowed`` that the evidence of the candidate windows reads: every
    trace with a span of a window's instance in flight across it or starting after it within
    ``max(5 ms, gap)`` (stretched, queued and released spans); their callers, children and
    retries share the trace. An engine finds them with a broadcast join of the windows."""
    from tailscope.analysis.stalls import BURST_NS

    reach = (
        candidates.select(
            "instance",
            "a",
            (pl.col("b") + pl.max_horizontal(pl.lit(BURST_NS), pl.col("gap")) + 1).alias("b"),
        )
        .sort("instance", "a")
        .with_columns(
            _new=(pl.col("a") > pl.col("b").cum_max().shift(1).over("instance")).fill_null(True)
        )
        .with_columns(_run=pl.col("_new").cum_sum().over("instance"))
        .group_by("instance", "_run")
        .agg(pl.col("a").min(), pl.col("b").max())
        .drop("_run")
    )
    touching = spans_across(narrowed.select("tid", "instance", "start", "end"), reach)
    return narrowed.join(touching.select("tid").unique(), on="tid", how="semi")
