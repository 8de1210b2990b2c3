"""Trace assembly basics shared by every analysis: which spans are roots, which are orphans."""

from __future__ import annotations

import polars as pl

from tailscope import schema as s


def with_roots(spans: pl.DataFrame) -> pl.DataFrame:
    """Add boolean columns ``is_root`` and ``is_orphan``.

    A span is a root when it has no parent id, or when its parent is not in the input (an
    *orphan*: it becomes the root of its own sub-trace and is counted as such).
    """
    present = spans.select(
        pl.col(s.TRACE_ID), pl.col(s.SPAN_ID).alias(s.PARENT_SPAN_ID), pl.lit(True).alias("_p")
    ).unique(subset=[s.TRACE_ID, s.PARENT_SPAN_ID])
    joined = spans.join(present, on=[s.TRACE_ID, s.PARENT_SPAN_ID], how="left")
    has_parent_id = pl.col(s.PARENT_SPAN_ID).is_not_null()
    parent_found = pl.col("_p").fill_null(False)
    return joined.with_columns(
        is_orphan=has_parent_id & ~parent_found,
        is_root=~has_parent_id | ~parent_found,
    ).drop("_p")
