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

from dataclasses import dataclass
from typing import Final

import polars as pl

from tailscope.analysis._stall_common import TIMEOUT_EDGE
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
