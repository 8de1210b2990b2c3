"""Trace assembly basics shared by every analysis: which spans are roots, which are orphans,
and marks read from the Arrow ``attributes`` column."""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from tailscope import schema as s


def with_roots(spans: pl.DataFrame) -> pl.DataFrame:
    """Add boolean columns ``is_root`` and ``is_orphan``, from the span tree
    (:func:`tailscope.analysis.span_tree.build_span_tree`: the one definition of a root).

    A span is a root when it has no parent id, or when its parent is not in the input (an
    *orphan*: it becomes the root of its own sub-trace and is counted as such).
    """
    from tailscope.analysis.span_tree import build_span_tree

    tree = build_span_tree(spans)
    return spans.with_columns(
        pl.Series("is_orphan", tree.is_orphan, dtype=pl.Boolean),
        pl.Series("is_root", tree.parent < 0, dtype=pl.Boolean),
    )


def rows_with_attribute(
    attributes: pa.ChunkedArray | pa.Array, key: str, value: str
) -> NDArray[np.bool_]:
    """Per span: True when its attribute ``key`` has the text ``value``.

    Reads the Arrow ``attributes`` column (list of key/value structs) in place: values are
    compared first (rarely a hit), so the attributes are never copied or converted to polars.
    """
    chunks = attributes.chunks if isinstance(attributes, pa.ChunkedArray) else [attributes]
    marked = np.zeros(len(attributes), dtype=bool)
    offset = 0
    for chunk in chunks:
        items = pc.list_flatten(chunk)
        hit = pc.equal(pc.struct_field(items, "value"), value)
        if pc.any(hit).as_py():
            hit = pc.and_(hit, pc.equal(pc.struct_field(items, "key"), key))
            rows = pc.filter(pc.list_parent_indices(chunk), hit).to_numpy()
            marked[offset + rows] = True
        offset += len(chunk)
    return marked


DURATION_UNKNOWN: Final = "duration_unknown"
"""Column of prepared spans: the export had no duration (``schema.DURATION_MISSING_KEY``), so
its 0 ns is a stand-in, not a latency: percentiles, root durations and baselines leave it out."""


def duration_unknown_rows(attributes: pa.ChunkedArray | pa.Array) -> NDArray[np.bool_]:
    """Per span: True when it was exported without a duration."""
    return rows_with_attribute(attributes, s.DURATION_MISSING_KEY, "true")
