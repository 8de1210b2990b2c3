"""Span trees as numpy index arrays: the shared skeleton of the skew and critical-path kernels.

A :class:`SpanTree` describes a table of *whole traces* (every span of a trace in the same
table) by row number: each span's parent row (``-1`` for roots and orphans), its depth below its
root (``-1`` when no root is reachable, e.g. a cycle of parent ids) and its root row. Kernels
then walk the trees one depth level at a time, processing every trace at once: the number of
Python iterations is the depth of the deepest trace, never the number of spans or traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from tailscope import schema as s

MAX_DEPTH = 4096
"""Deepest tree walked; deeper spans (only malformed input nests this deep) count as unrooted."""


@dataclass(frozen=True, slots=True)
class SpanTree:
    """Row-indexed parent links of a span table (all arrays have one entry per row)."""

    parent: NDArray[np.int64]
    """Row of the parent span, or -1 for a root (no parent id, or parent not in the table)."""
    depth: NDArray[np.int64]
    """0 for roots, parent's depth + 1 below; -1 when no root is reachable."""
    root: NDArray[np.int64]
    """Row of the root span of this span's tree, -1 when unreachable."""
    levels: tuple[NDArray[np.int64], ...]
    """``levels[d]`` holds the rows at depth ``d`` (ascending)."""
    has_children: NDArray[np.bool_]
    """True when at least one span names this span as its parent."""

    @property
    def size(self) -> int:
        return int(self.parent.shape[0])


def build_span_tree(spans: pa.Table | pl.DataFrame) -> SpanTree:
    """Link every span of ``spans`` (needs ``trace_id``, ``span_id``, ``parent_span_id``) to
    its parent row. Duplicate span ids within a trace link to the first occurrence."""
    frame = spans if isinstance(spans, pl.DataFrame) else pl.from_arrow(spans)
    assert isinstance(frame, pl.DataFrame)
    keyed = frame.select(s.TRACE_ID, s.SPAN_ID, s.PARENT_SPAN_ID).with_row_index("_row")
    targets = keyed.select(
        pl.col(s.TRACE_ID),
        pl.col(s.SPAN_ID).alias(s.PARENT_SPAN_ID),
        pl.col("_row").alias("_parent_row"),
    ).unique(subset=[s.TRACE_ID, s.PARENT_SPAN_ID], keep="first", maintain_order=True)
    linked = keyed.join(
        targets, on=[s.TRACE_ID, s.PARENT_SPAN_ID], how="left", maintain_order="left"
    )
    parent = linked["_parent_row"].fill_null(-1).cast(pl.Int64).to_numpy().copy()
    return tree_from_parents(parent)


def tree_from_parents(parent: NDArray[np.int64]) -> SpanTree:
    """Depths, roots and levels from parent rows (vectorised: one pass per depth level)."""
    n = parent.shape[0]
    is_root = parent < 0
    safe_parent = np.where(is_root, 0, parent)
    depth = np.where(is_root, 0, -1).astype(np.int64)
    root = np.where(is_root, np.arange(n, dtype=np.int64), -1)
    for _ in range(MAX_DEPTH):
        if n == 0:
            break
        parent_depth = depth[safe_parent]
        reached = ~is_root & (depth < 0) & (parent_depth >= 0)
        if not reached.any():
            break
        depth[reached] = parent_depth[reached] + 1
        root[reached] = root[safe_parent[reached]]
    has_children = np.zeros(n, dtype=bool)
    has_children[parent[~is_root]] = True
    order = np.argsort(depth, kind="stable")
    sorted_depth = depth[order]
    max_depth = int(sorted_depth[-1]) if n else -1
    bounds = np.searchsorted(sorted_depth, np.arange(max_depth + 2), side="left")
    levels = tuple(order[bounds[d] : bounds[d + 1]] for d in range(max_depth + 1))
    return SpanTree(parent=parent, depth=depth, root=root, levels=levels, has_children=has_children)
