"""Silence candidates per (instance, hour), stitched exactly: stage 3 of the Spark engine.

:func:`tailscope.analysis.stalls.detect_stalls` first finds each instance's *silences* — gaps
between its consecutive timestamps that its recent rate makes unlikely — from all of its
timestamps at once. The gaps of one hour need, besides the hour's own timestamps, only a small
**boundary summary** of the rest of the instance:

* the instance's last :data:`~tailscope.analysis.stalls.RECENT_TIMESTAMPS` timestamps before the
  hour (the recent rate of the hour's first timestamps; they may lie several hours back), and
  how many requests it started before the hour (``started``, whose differences chain
  back-to-back silences);
* its first timestamp after the hour (the gap of the hour's last timestamp: a silence straddling
  the boundary is found once, by the hour it begins in);
* its whole range: first and last timestamp and how many distinct ones (the mean interval used
  for its first :data:`~tailscope.analysis.stalls.MIN_HISTORY` timestamps).

So: :func:`hour_summary` per (instance, hour) group → :func:`hour_boundaries` over all the
summaries (one row per group: small) → :func:`hour_parts` per group, the gaps of at least
:data:`~tailscope.analysis.stalls.COMPONENT_GAP_NS` with exactly the columns the whole-input
``_gaps`` gives them → :func:`silences_from_parts` over all the parts, the detector's own
``_silences``: the candidate windows of the whole input, equal to the single-machine ones.

Engine-neutral (polars only): an engine runs the two per-group steps where the timestamps are
(``groupBy(instance, hour)``) and the other two on the driver. Timestamps are ns since the
epoch in the instance's own clock; an hour is ``t // hour_ns``.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from tailscope.analysis.stalls import COMPONENT_GAP_NS, RECENT_TIMESTAMPS, _gaps, _silences

NS_PER_HOUR: Final = 3_600_000_000_000

STAMP_SCHEMA: Final = pl.Schema({"instance": pl.String, "t": pl.Int64, "starts": pl.Int32})
"""Timestamp rows an engine groups by (instance, hour): ``instance``, ``t`` (ns) and
``starts`` (requests started at ``t``; rows of the same (instance, t) from different parts
are added up)."""

SUMMARY_SCHEMA: Final = pl.Schema(
    {
        "instance": pl.String(),
        "hour": pl.Int64(),
        "n": pl.Int64(),
        "starts": pl.Int64(),
        "first": pl.Int64(),
        "last": pl.Int64(),
        "tail": pl.List(pl.Int64),
    }
)
"""One (instance, hour): distinct timestamps ``n``, requests started, first and last timestamp
(ns) and the last :data:`~tailscope.analysis.stalls.RECENT_TIMESTAMPS` timestamps, ascending."""

BOUNDARY_SCHEMA: Final = pl.Schema(
    {
        "instance": pl.String(),
        "hour": pl.Int64(),
        "before_starts": pl.Int64(),
        "previous": pl.List(pl.Int64),
        "next": pl.Int64(),
        "first": pl.Int64(),
        "last": pl.Int64(),
        "n": pl.Int64(),
    }
)
"""What one (instance, hour) needs of the rest of its instance: requests started before the
hour, the timestamps before it (up to :data:`~tailscope.analysis.stalls.RECENT_TIMESTAMPS`,
ascending), the first timestamp after it (null: none) and the instance's whole range
(``first``, ``last``, ``n`` distinct timestamps)."""

PART_SCHEMA: Final = pl.Schema(
    {
        "instance": pl.String,
        "t": pl.Int64,
        "b": pl.Int64,
        "gap": pl.Int64,
        "mean_interval": pl.Float64,
        "started": pl.Int64,
        "surprise": pl.Float64,
    }
)
"""A gap of at least :data:`~tailscope.analysis.stalls.COMPONENT_GAP_NS`: from ``t`` to the
next timestamp ``b`` (ns), the instance's recent ``mean_interval`` (ns), requests ``started``
up to ``t`` and ``surprise`` (gap over mean interval), as the whole-input gaps have them."""


def hour_stamps(rows: pl.DataFrame) -> pl.DataFrame:
    """Timestamp rows of one (instance, hour) (:data:`STAMP_SCHEMA`, in any order, repeated
    across parts) as distinct ``t`` with their ``starts`` added up, ascending."""
    return (
        rows.group_by("instance", "t")
        .agg(pl.col("starts").sum().cast(pl.Int32))
        .sort("t")
        .select("instance", "t", "starts")
    )


def hour_summary(stamps: pl.DataFrame, hour: int) -> pl.DataFrame:
    """One row of :data:`SUMMARY_SCHEMA` for one (instance, ``hour``) group's
    :func:`hour_stamps` (not empty)."""
    return stamps.select(
        pl.col("instance").first(),
        pl.lit(hour, pl.Int64).alias("hour"),
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("starts").sum().cast(pl.Int64),
        pl.col("t").first().alias("first"),
        pl.col("t").last().alias("last"),
        pl.col("t").tail(RECENT_TIMESTAMPS).implode().alias("tail"),
    )


def hour_boundaries(summaries: pl.DataFrame) -> pl.DataFrame:
    """The boundary summary (:data:`BOUNDARY_SCHEMA`) of every (instance, hour) of
    ``summaries`` (:data:`SUMMARY_SCHEMA`, every group of the input once). One row per group:
    small beside the timestamps (an instance active all day has 24)."""
    ordered = summaries.sort("instance", "hour", nulls_last=True)
    rows: list[dict[str, object]] = []
    for _, group in ordered.group_by("instance", maintain_order=True):
        n_total = int(group["n"].sum())
        first, last = int(group["first"].min()), int(group["last"].max())  # type: ignore[arg-type]
        previous: list[int] = []
        before_starts = 0
        nexts = [*group["first"].to_list()[1:], None]
        for row, after in zip(group.iter_rows(named=True), nexts, strict=True):
            rows.append(
                {
                    "instance": row["instance"],
                    "hour": row["hour"],
                    "before_starts": before_starts,
                    "previous": list(previous),
                    "next": after,
                    "first": first,
                    "last": last,
                    "n": n_total,
                }
            )
            previous = [*previous, *row["tail"]][-RECENT_TIMESTAMPS:]
            before_starts += int(row["starts"])
    return pl.DataFrame(rows, schema=BOUNDARY_SCHEMA)


def hour_parts(stamps: pl.DataFrame, boundary: dict[str, object]) -> pl.DataFrame:
    """The gaps of one (instance, hour) group (its :func:`hour_stamps`) of at least
    :data:`~tailscope.analysis.stalls.COMPONENT_GAP_NS` (:data:`PART_SCHEMA`), given the
    group's row of :func:`hour_boundaries` as a dict: the detector's own ``_gaps`` over the
    timestamps before the hour, the hour's and the next one, with the instance's whole range.

    Exact: a row of the hour has at least ``RECENT_TIMESTAMPS`` rows before it in the frame, or
    all of its instance's earlier timestamps, so its recent rate is the whole input's; the
    first row before the hour carries the requests started before it."""
    previous = [int(t) for t in boundary["previous"]]  # type: ignore[attr-defined]
    before_starts = int(boundary["before_starts"])  # type: ignore[call-overload]
    after = [] if boundary["next"] is None else [boundary["next"]]
    instance = boundary["instance"]
    before = pl.DataFrame(
        {
            "instance": [instance] * len(previous),
            "t": previous,
            "starts": [before_starts if i == 0 else 0 for i in range(len(previous))],
        },
        schema=STAMP_SCHEMA,
    )
    following = pl.DataFrame(
        {"instance": [instance] * len(after), "t": after, "starts": [0] * len(after)},
        schema=STAMP_SCHEMA,
    )
    frame = pl.concat(
        [before, stamps.select(pl.col("instance").cast(pl.String), "t", "starts"), following]
    )
    extents = pl.DataFrame(
        {
            "instance": [instance],
            "first": [boundary["first"]],
            "last": [boundary["last"]],
            "n": [boundary["n"]],
        },
        schema={"instance": pl.String, "first": pl.Int64, "last": pl.Int64, "n": pl.Int64},
    )
    gaps = _gaps(frame, extents).slice(len(previous), stamps.height)
    return gaps.filter(pl.col("gap") >= COMPONENT_GAP_NS).select(
        pl.col(name).cast(dtype) for name, dtype in PART_SCHEMA.items()
    )


def silences_from_parts(parts: pl.DataFrame) -> pl.DataFrame:
    """The candidate windows of the whole input (the columns of ``stalls._silences``) from the
    :func:`hour_parts` of all its (instance, hour) groups, in any order."""
    ordered = parts.with_columns(pl.col("instance").cast(pl.Categorical)).sort("instance", "t")
    return _silences(ordered)


def hourly_parts(
    stamps: pl.DataFrame, hour_ns: int = NS_PER_HOUR
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The first three steps in one process over timestamp rows (:data:`STAMP_SCHEMA`),
    grouped by (instance, ``t // hour_ns``): every group's :func:`hour_parts`, stacked, and
    the :func:`hour_boundaries` (what an engine does distributed, for tests and reference)."""
    keyed = stamps.with_columns((pl.col("t") // hour_ns).alias("hour"))
    groups = {
        (key[0], int(key[1])): hour_stamps(group.drop("hour"))
        for key, group in keyed.group_by("instance", "hour")
    }
    summaries = pl.concat([hour_summary(g, hour) for (_, hour), g in groups.items()])
    boundaries = hour_boundaries(summaries)
    parts = [
        hour_parts(groups[(row["instance"], row["hour"])], row)
        for row in boundaries.iter_rows(named=True)
    ]
    return pl.concat(parts) if parts else pl.DataFrame(schema=PART_SCHEMA), boundaries


def hourly_silences(stamps: pl.DataFrame, hour_ns: int = NS_PER_HOUR) -> pl.DataFrame:
    """All four steps in one process (:func:`hourly_parts`, then
    :func:`silences_from_parts`)."""
    return silences_from_parts(hourly_parts(stamps, hour_ns)[0])
