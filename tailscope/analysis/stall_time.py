"""Critical-path time spent behind a detected stop-the-world stall: the ``stall`` component.

A request that reaches a paused instance waits until the pause ends: its SERVER span starts
only then, so without this step the wait is counted as ``network`` of the caller's CLIENT span
(the gap between the client's start and the server's start). A span in flight across a pause of
its own instance is stretched: that shows up as its ``self`` time. :func:`split_stalled` cuts
the part of such segments that lies inside a detected stall window out into its own segments,
component ``stall``, labelled with the span of the paused instance and the stall's index into
``Report.stalls``. Which instance a segment waited on:

* ``self`` segment of span X: X's own instance;
* ``network`` segment of CLIENT span C: first C's own instance (the *caller*: a paused caller
  neither sends nor reads the response, so the time is its stall, never the callee's), then for
  what is left the instance of the adjacent child (the callee: queueing in front of a paused
  server, or its reply held back);
* ``dependency`` segments (a CLIENT span with no instrumented child: a database, an external
  API) are never cut: the time belongs to the dependency, and a slow database is not a pause.

Clocks: segments are in the skew-adjusted clock (each span's exported times plus its
``skew_adjustment_ns``); a window is in the paused instance's own clock. A window is moved into
the adjusted clock by the *median* adjustment of its instance's spans (see
:func:`tailscope.analysis.critical_path.stall_windows`), not by the adjustment of the one span
the segment waited on: the skew correction shifts a timed-out call's late SERVER span (it
outlives its CLIENT parent, which looks like skew) by up to the length of the pause, and that
span's own shift would move the window by as much. An offset between two hosts that the skew
correction does not remove moves the stalled piece of a segment by at most that offset (a few
ms against pauses of tens to hundreds of ms).

Windows of one instance may overlap or touch: they are cut into disjoint pieces first, each
piece credited to the lowest stall index covering it, so no time is counted twice and the
segments of a root still partition its duration exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

COMPONENT_SELF: Final = 0
COMPONENT_NETWORK: Final = 1
COMPONENT_DEPENDENCY: Final = 2
COMPONENT_STALL: Final = 3


@dataclass(frozen=True, slots=True)
class StallWindows:
    """Detected stall windows, one row per stall (in ``Report.stalls`` order)."""

    instance: NDArray[np.int64]
    """Code of the stalled instance (the same codes as the per-span ``instance`` array)."""
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    """Window (ns) in the analysis clock of the segments (see the module docstring)."""
    stall: NDArray[np.int64]
    """Index into ``Report.stalls``."""


@dataclass(frozen=True, slots=True)
class SplitSegments:
    """Segments after :func:`split_stalled` (parallel arrays, ordered by root row, then time)."""

    owner: NDArray[np.int64]
    """The span whose time the segment is."""
    label: NDArray[np.int64]
    """The span that names the hop: the owner, or for a callee's stall the callee's span."""
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    component: NDArray[np.int8]
    stall: NDArray[np.int64]
    """Index into ``Report.stalls`` for ``stall`` segments, else -1."""
    neighbor: NDArray[np.int64]
    """The owner's adjacent taken child (see ``PathSegments.neighbor``)."""


def _disjoint(windows: StallWindows) -> StallWindows:
    """Windows cut into disjoint, sorted pieces per instance (lowest stall index wins)."""
    keep = windows.end > windows.start
    inst, a, b = windows.instance[keep], windows.start[keep], windows.end[keep]
    idx = windows.stall[keep]
    out_i: list[int] = []
    out_a: list[int] = []
    out_b: list[int] = []
    out_s: list[int] = []
    # stalls are few (tens): a plain sweep per instance over the window edges is enough
    for code in np.unique(inst):
        mine = np.flatnonzero(inst == code)
        edges = np.unique(np.concatenate([a[mine], b[mine]]))
        for lo, hi in itertools.pairwise(edges):
            covering = mine[(a[mine] <= lo) & (b[mine] >= hi)]
            if covering.size == 0:
                continue
            best = int(idx[covering].min())
            if out_s and out_i[-1] == code and out_s[-1] == best and out_b[-1] == lo:
                out_b[-1] = int(hi)
                continue
            out_i.append(int(code))
            out_a.append(int(lo))
            out_b.append(int(hi))
            out_s.append(best)
    return StallWindows(
        np.array(out_i, dtype=np.int64),
        np.array(out_a, dtype=np.int64),
        np.array(out_b, dtype=np.int64),
        np.array(out_s, dtype=np.int64),
    )


def _cut(
    segments: SplitSegments,
    candidate: NDArray[np.bool_],
    waited_on: NDArray[np.int64],
    instance: NDArray[np.int64],
    windows: StallWindows,
) -> SplitSegments:
    """Cut the ``candidate`` segments where they overlap a window of span ``waited_on``'s
    instance."""
    n = segments.start.size
    piece_seg: list[NDArray[np.int64]] = []
    piece_a: list[NDArray[np.int64]] = []
    piece_b: list[NDArray[np.int64]] = []
    piece_stall: list[NDArray[np.int64]] = []
    valid = candidate & (waited_on >= 0)
    seg_instance = np.where(valid, instance[np.maximum(waited_on, 0)], -1)
    for code in np.unique(windows.instance):
        rows = np.flatnonzero(seg_instance == code)
        if rows.size == 0:
            continue
        mine = windows.instance == code
        wa, wb, ws = windows.start[mine], windows.end[mine], windows.stall[mine]
        # the segments against the instance's sorted disjoint windows
        lo = segments.start[rows]
        hi = segments.end[rows]
        first = np.searchsorted(wb, lo, side="right")
        last = np.searchsorted(wa, hi, side="left")
        count = np.maximum(last - first, 0)
        if not count.any():
            continue
        seg = np.repeat(rows, count)
        k = np.repeat(first, count) + (
            np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        )
        a = np.maximum(np.repeat(lo, count), wa[k])
        b = np.minimum(np.repeat(hi, count), wb[k])
        positive = b > a
        piece_seg.append(seg[positive])
        piece_a.append(a[positive])
        piece_b.append(b[positive])
        piece_stall.append(ws[k][positive])
    if not piece_seg:
        return segments
    p_seg = np.concatenate(piece_seg)
    p_a = np.concatenate(piece_a)
    p_b = np.concatenate(piece_b)
    p_stall = np.concatenate(piece_stall)
    # the rest of each cut segment: the gaps between its (disjoint, sorted) pieces
    order = np.lexsort((p_a, p_seg))
    p_seg, p_a, p_b, p_stall = p_seg[order], p_a[order], p_b[order], p_stall[order]
    first_piece = np.ones(p_seg.size, dtype=bool)
    first_piece[1:] = p_seg[1:] != p_seg[:-1]
    last_piece = np.ones(p_seg.size, dtype=bool)
    last_piece[:-1] = p_seg[1:] != p_seg[:-1]
    previous_end = np.empty_like(p_b)
    previous_end[1:] = p_b[:-1]
    gap_a = np.where(first_piece, segments.start[p_seg], previous_end)
    gap_b = p_a
    tail_seg = p_seg[last_piece]
    rest_seg = np.concatenate([p_seg, tail_seg])
    rest_a = np.concatenate([gap_a, p_b[last_piece]])
    rest_b = np.concatenate([gap_b, segments.end[tail_seg]])
    keep = np.ones(n, dtype=bool)
    keep[p_seg] = False
    untouched = np.flatnonzero(keep)
    rest_keep = rest_b > rest_a
    rest_seg, rest_a, rest_b = rest_seg[rest_keep], rest_a[rest_keep], rest_b[rest_keep]

    def pick(values: NDArray[np.int64], stalled: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.concatenate([values[untouched], values[rest_seg], stalled])

    owner = pick(segments.owner, segments.owner[p_seg])
    label = pick(segments.label, waited_on[p_seg])
    start = np.concatenate([segments.start[untouched], rest_a, p_a])
    end = np.concatenate([segments.end[untouched], rest_b, p_b])
    component = np.concatenate(
        [
            segments.component[untouched],
            segments.component[rest_seg],
            np.full(p_seg.size, COMPONENT_STALL, dtype=np.int8),
        ]
    )
    stall = pick(segments.stall, p_stall)
    neighbor = pick(segments.neighbor, segments.neighbor[p_seg])
    # back into the segment order (by the original segment, then time)
    origin = np.concatenate([untouched, rest_seg, p_seg])
    order = np.lexsort((start, origin))
    return SplitSegments(
        owner[order],
        label[order],
        start[order],
        end[order],
        component[order],
        stall[order],
        neighbor[order],
    )


def split_stalled(
    owner: NDArray[np.int64],
    start: NDArray[np.int64],
    end: NDArray[np.int64],
    component: NDArray[np.int8],
    neighbor: NDArray[np.int64],
    instance: NDArray[np.int64],
    windows: StallWindows,
) -> SplitSegments:
    """Critical-path segments with the time spent behind stall windows cut out as ``stall``.

    Args:
        owner, start, end, component, neighbor: the segments
            (:class:`~tailscope.analysis.critical_path.PathSegments`; times ns, adjusted clock).
        instance: per span, the code of its instance (-1 when it has none).
        windows: detected stall windows (any set: overlapping and touching windows are fine).

    Returns:
        The segments, cut; the pieces of one segment stay in time order and sum to it.
    """
    segments = SplitSegments(
        owner,
        owner.copy(),
        start,
        end,
        component,
        np.full(owner.size, -1, dtype=np.int64),
        neighbor,
    )
    if windows.stall.size == 0 or owner.size == 0:
        return segments
    disjoint = _disjoint(windows)
    if disjoint.stall.size == 0:
        return segments
    # 1. the span's own instance: self time stretched by its pause, a paused caller
    own = (component == COMPONENT_SELF) | (component == COMPONENT_NETWORK)
    segments = _cut(segments, own, segments.owner, instance, disjoint)
    # 2. what is left of network gaps: the callee's instance
    callee = (segments.component == COMPONENT_NETWORK) & (segments.stall < 0)
    waited_on = np.full(segments.owner.size, -1, dtype=np.int64)
    waited_on[callee] = segments.neighbor[callee]
    return _cut(segments, callee, waited_on, instance, disjoint)
