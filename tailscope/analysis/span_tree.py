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
    is_orphan: NDArray[np.bool_]
    """True for a span whose parent id is set but not in the table (it is a root here)."""

    @property
    def size(self) -> int:
        return int(self.parent.shape[0])


def _fixed_width_words(column: pa.ChunkedArray | pa.Array, width: int) -> NDArray[np.uint64]:
    """A fixed-size-binary id column as big-endian 64-bit words (rows x width/8); nulls zero."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        array = array.fill_null(b"\0" * width)
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    raw = raw[array.offset * width : (array.offset + len(array)) * width]
    return raw.view(">u8").astype(np.uint64).reshape(len(array), width // 8)


def _dense_codes(words: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Dense rank of each row of ``words`` (rows x k 64-bit words), in row order."""
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    new_value = np.ones(len(order), dtype=bool)
    new_value[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    code = np.empty(len(order), dtype=np.int64)
    code[order] = np.cumsum(new_value) - 1
    return code


def _parents_of_unique_span_ids(
    trace_words: NDArray[np.uint64],
    span_words: NDArray[np.uint64],
    parent_words: NDArray[np.uint64],
    has_parent_id: NDArray[np.bool_],
) -> NDArray[np.int64] | None:
    """Parent rows when no span id occurs twice in the table (random 64-bit ids: the common
    case), else None. Then the only row a parent id can name is the one with that span id: one
    sort of the span ids, one ``searchsorted``, and a check that the trace ids agree."""
    n = span_words.shape[0]
    order = np.argsort(span_words, kind="stable")
    ordered = span_words[order]
    if n == 0 or (ordered[1:] == ordered[:-1]).any():
        return None
    found = np.minimum(np.searchsorted(ordered, parent_words), n - 1)
    candidate = order[found]
    hit = has_parent_id & (ordered[found] == parent_words)
    hit &= (trace_words[candidate] == trace_words).all(axis=1)
    return np.where(hit, candidate, -1).astype(np.int64)


def _parents_from_fixed_ids(spans: pa.Table) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Parent rows of a table with the schema's fixed-size id columns, without a join.

    When every span id is distinct, see :func:`_parents_of_unique_span_ids`. Otherwise trace
    ids and span ids are dense-ranked (exactly, by sorting their 64-bit words; a parent id is
    ranked by a binary search among the span ids), so (trace, span) becomes one int64 key;
    parents are then found with one ``searchsorted``.
    """
    n = spans.num_rows
    trace_words = _fixed_width_words(spans[s.TRACE_ID], 16)
    has_parent_id = spans[s.PARENT_SPAN_ID].is_valid().to_numpy(zero_copy_only=False)
    span_words = _fixed_width_words(spans[s.SPAN_ID], 8)[:, 0]
    parent_words = _fixed_width_words(spans[s.PARENT_SPAN_ID], 8)[:, 0]
    unique = _parents_of_unique_span_ids(trace_words, span_words, parent_words, has_parent_id)
    if unique is not None:
        return unique, has_parent_id
    trace = _dense_codes(trace_words)
    # rank span ids only; a parent id that is no span's id anywhere cannot have a parent row
    distinct, span_rank = np.unique(span_words, return_inverse=True)
    parent_rank = np.searchsorted(distinct, parent_words)
    named = parent_rank < distinct.size
    named[named] = distinct[parent_rank[named]] == parent_words[named]
    has_parent_id_and_span = has_parent_id & named
    width = np.int64(distinct.size if n else 1)
    span_key = trace * width + span_rank.reshape(-1)
    parent_key = trace * width + np.where(named, parent_rank, 0)
    order = np.argsort(span_key, kind="stable")  # first occurrence of a duplicate comes first
    sorted_keys = span_key[order]
    found = np.searchsorted(sorted_keys, parent_key, side="left")
    found_clipped = np.minimum(found, max(n - 1, 0))
    hit = has_parent_id_and_span & (found < n)
    if n:
        hit &= sorted_keys[found_clipped] == parent_key
    parent = np.where(hit, order[found_clipped] if n else found, -1).astype(np.int64)
    return parent, has_parent_id


def build_span_tree(spans: pa.Table | pl.DataFrame) -> SpanTree:
    """Link every span of ``spans`` (needs ``trace_id``, ``span_id``, ``parent_span_id``) to
    its parent row. Duplicate span ids within a trace link to the first occurrence.

    An Arrow table with the schema's fixed-size id columns takes a join-free fast path.
    """
    fixed = (
        isinstance(spans, pa.Table)
        and pa.types.is_fixed_size_binary(spans.schema.field(s.TRACE_ID).type)
        and pa.types.is_fixed_size_binary(spans.schema.field(s.SPAN_ID).type)
        and pa.types.is_fixed_size_binary(spans.schema.field(s.PARENT_SPAN_ID).type)
    )
    if fixed:
        assert isinstance(spans, pa.Table)
        return tree_from_parents(*_parents_from_fixed_ids(spans))
    ids = [s.TRACE_ID, s.SPAN_ID, s.PARENT_SPAN_ID]
    frame = spans if isinstance(spans, pl.DataFrame) else pl.from_arrow(spans.select(ids))
    assert isinstance(frame, pl.DataFrame)
    keyed = frame.select(ids).with_row_index("_row")
    targets = keyed.select(
        pl.col(s.TRACE_ID),
        pl.col(s.SPAN_ID).alias(s.PARENT_SPAN_ID),
        pl.col("_row").alias("_parent_row"),
    ).unique(subset=[s.TRACE_ID, s.PARENT_SPAN_ID], keep="first", maintain_order=True)
    linked = keyed.join(
        targets, on=[s.TRACE_ID, s.PARENT_SPAN_ID], how="left", maintain_order="left"
    )
    parent = linked["_parent_row"].fill_null(-1).cast(pl.Int64).to_numpy().copy()
    has_parent_id = keyed[s.PARENT_SPAN_ID].is_not_null().to_numpy()
    return tree_from_parents(parent, has_parent_id)


def tree_from_parents(
    parent: NDArray[np.int64], has_parent_id: NDArray[np.bool_] | None = None
) -> SpanTree:
    """Depths, roots and levels from parent rows (vectorised: one pass per depth level).

    ``has_parent_id`` (default: ``parent >= 0``) tells orphans (a parent id that is not in the
    table) from true roots."""
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
    orphan = is_root & (has_parent_id if has_parent_id is not None else False)
    return SpanTree(
        parent=parent,
        depth=depth,
        root=root,
        levels=levels,
        has_children=has_children,
        is_orphan=np.asarray(orphan, dtype=bool),
    )
