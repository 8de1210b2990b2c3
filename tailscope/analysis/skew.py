"""Clock-skew adjustment across hosts, in the manner of Jaeger's query service.

Spans of one trace are timed by the clocks of different hosts; a few milliseconds of offset make
a server span start before the client span that called it. We correct this the way Jaeger's
clock-skew adjuster does, top-down through each trace:

* only an edge between two *hosts* can be skewed (a parent and child on the same host share a
  clock; the host is ``host_name``, else the service instance);
* only when the child does not fit inside its parent is anything computed: a child shorter than
  its parent is centred in it (the parent's spare time split evenly between request and response
  latency); a child longer than its parent (an asynchronous call, or a callee that outlived a
  client that timed out) is only moved so that it does not start before its parent, keeping its
  overrun visible;
* the shift applies to the child and its whole subtree: a span inherits the cumulative shift of
  its parent, and spans on the child's host therefore move with it;
* each correction is capped at ``max_shift_ns`` (larger disagreements are more likely bad data
  than clocks) and every corrected edge is counted.

The kernel maps an Arrow table of whole traces to an Arrow table of per-span shifts, so it can
run per partition of a larger data set.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from tailscope import schema as s
from tailscope.analysis.span_tree import SpanTree, build_span_tree

SKEW_ADJUSTMENT: Final = "skew_adjustment_ns"
"""Column: cumulative shift (ns) added to a span's start and end to undo clock skew."""
SKEW_CORRECTED: Final = "skew_corrected"
"""Column: True when this span's own edge to its parent was corrected (counted once)."""
DEFAULT_MAX_SHIFT_NS: Final = 1_000_000_000
"""One second: a larger correction of one edge is capped to this."""


def clock_host_codes(frame: pl.DataFrame) -> NDArray[np.int64]:
    """One integer per span naming the clock it was timed with (host, else instance).

    The codes are the names' global categorical codes (the same text has the same code in
    both columns), so no name is copied as text; -1 when both are missing.
    """
    key = pl.coalesce(pl.col(s.HOST).cast(pl.Categorical), pl.col(s.INSTANCE).cast(pl.Categorical))
    codes = frame.select(key.to_physical().cast(pl.Int64).fill_null(-1)).to_series()
    return codes.to_numpy().copy()


def skew_shifts(
    start_ns: NDArray[np.int64],
    end_ns: NDArray[np.int64],
    host_code: NDArray[np.int64],
    tree: SpanTree,
    max_shift_ns: int = DEFAULT_MAX_SHIFT_NS,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Per-span cumulative shift (ns) and whether the span's own edge was corrected.

    Vectorised one depth level at a time over every trace.
    """
    n = tree.size
    shift = np.zeros(n, dtype=np.int64)
    corrected = np.zeros(n, dtype=bool)
    duration = end_ns - start_ns
    for rows in tree.levels[1:]:
        parents = tree.parent[rows]
        inherited = shift[parents]
        parent_start = start_ns[parents] + inherited
        parent_duration = duration[parents]
        child_start = start_ns[rows] + inherited
        child_duration = duration[rows]
        cross_host = host_code[rows] != host_code[parents]
        starts_early = child_start < parent_start
        ends_late = child_start + child_duration > parent_start + parent_duration
        longer = child_duration > parent_duration
        centred = parent_start + (parent_duration - child_duration) // 2 - child_start
        correction = np.where(
            longer,
            np.where(starts_early, parent_start - child_start, 0),
            np.where(starts_early | ends_late, centred, 0),
        )
        correction = np.where(cross_host, np.clip(correction, -max_shift_ns, max_shift_ns), 0)
        shift[rows] = inherited + correction
        corrected[rows] = correction != 0
    return shift, corrected


def adjust_clock_skew(
    spans: pa.Table, max_shift_ns: int = DEFAULT_MAX_SHIFT_NS, tree: SpanTree | None = None
) -> pa.Table:
    """Clock-skew shifts of a table of whole traces.

    Args:
        spans: span table (needs the id columns, ``start_unix_nano``, ``end_unix_nano``,
            ``host_name`` and ``service_instance``).
        max_shift_ns: cap on one edge's correction (ns).
        tree: the table's :class:`SpanTree` if already built.

    Returns:
        One row per input row, same order: ``skew_adjustment_ns`` (int64, ns to add to start
        and end) and ``skew_corrected`` (bool).
    """
    frame = pl.from_arrow(spans)
    assert isinstance(frame, pl.DataFrame)
    tree = tree or build_span_tree(frame)
    shift, corrected = skew_shifts(
        frame[s.START].to_numpy(),
        frame[s.END].to_numpy(),
        clock_host_codes(frame),
        tree,
        max_shift_ns,
    )
    return pa.table({SKEW_ADJUSTMENT: shift, SKEW_CORRECTED: corrected})
