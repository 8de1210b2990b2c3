"""Critical path of every trace, vectorised over all traces at once.

The critical path is the chain of work that determined when each root span ended. We build it
the way Jaeger's UI does, with two corrections:

1. **Clamp** every span into its parent (recursively): a child that overran its parent counts
   only inside the parent on the path. The overrun itself stays in the span table (a CLIENT span
   whose server child outlived it is the signature of a timeout).
2. **Prune asynchronous work** that the parent did not wait for: a CONSUMER span under a
   PRODUCER span, any child that started at or after its parent ended, and any span the Jaeger
   reader marked as a ``FOLLOWS_FROM`` child (attribute ``jaeger.reference_type``): by
   definition its parent did not wait for it.
3. **Walk backwards** from the parent's end: take the last-finishing child that ends *at or
   before* the current bound, move the bound to that child's start, repeat; recurse into every
   child taken. Jaeger compares strictly (``end < bound``), which drops the earlier of two
   back-to-back siblings (jaeger issue 9148); we include equality. Among children ending at the
   same instant the longer one is taken.

Everything on a span's path that is not covered by a taken child is that span's *segment*
(its self time on the path). Segments of one root partition the root's duration exactly.

Each segment is labelled with a component: ``network`` for the uncovered time of a CLIENT span
that has instrumented children (request, queueing and response time between caller and callee;
computed from the clamped times, so a constant clock offset between the two cancels),
``dependency`` for a CLIENT span with no instrumented child (a database, an external API), and
``self`` for own work of any other span.

Vectorisation: the per-parent backwards walk is turned into a "previous compatible sibling"
pointer per child (one ``searchsorted`` over all children of all traces); taking children is then
a pointer chase whose iterations equal the longest chain of sequential siblings, and everything
else is one pass per depth level. The kernel maps an Arrow table of whole traces to an Arrow table
of segments, so it can run per partition on a distributed engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from tailscope import schema as s
from tailscope.analysis.skew import SKEW_ADJUSTMENT
from tailscope.analysis.span_tree import SpanTree, build_span_tree
from tailscope.analysis.stall_time import StallWindows, split_stalled
from tailscope.analysis.traces import rows_with_attribute
from tailscope.schema import SpanKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tailscope.report.model import Stall

COMPONENTS: Final = ("self", "network", "dependency", "stall")
"""Segment components, in the order of the integer codes used internally (``stall``: time
behind a detected stop-the-world stall, see :mod:`tailscope.analysis.stall_time`)."""
SEGMENT_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "seg_start",
    "seg_end",
    "hop_service",
    "hop_operation",
    "component",
    "root_service",
    "root_operation",
    "root_span_id",
    "root_row",
    "stall",
)
"""Columns of the segment table (times Unix ns, ids raw bytes like the span table;
``root_row`` is the root span's row number in the input table; ``stall`` the index into
``Report.stalls`` of a ``stall`` segment, else null)."""
PATH_INPUT_COLUMNS: Final = (s.TRACE_ID, s.SPAN_ID, s.SERVICE, s.NAME, s.KIND, s.START, s.END)
"""Span columns :func:`segments_frame` reads (besides the tree and the ``FOLLOWS_FROM`` marks)."""


def _clamped_intervals(
    start_ns: NDArray[np.int64], end_ns: NDArray[np.int64], tree: SpanTree
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every span's interval clamped into its (clamped) parent's, top-down."""
    clamped_start = start_ns.copy()
    clamped_end = np.maximum(end_ns, start_ns)
    for rows in tree.levels[1:]:
        parents = tree.parent[rows]
        lo = clamped_start[parents]
        hi = clamped_end[parents]
        clamped_start[rows] = np.clip(start_ns[rows], lo, hi)
        clamped_end[rows] = np.clip(end_ns[rows], lo, hi)
    return clamped_start, clamped_end


def _taken_children(
    candidates: NDArray[np.int64],
    parent: NDArray[np.int64],
    clamped_start: NDArray[np.int64],
    clamped_end: NDArray[np.int64],
    n: int,
) -> NDArray[np.bool_]:
    """Which candidate children the backwards walk of their parent takes (for every parent)."""
    taken = np.zeros(n, dtype=bool)
    if candidates.size == 0:
        return taken
    cand_parent = parent[candidates]
    cand_start = clamped_start[candidates]
    cand_end = clamped_end[candidates]
    # dense ranks of the end instants, so (parent, time) fits one sortable int64 key; a start
    # is ranked as the last end at or before it (-1 when none: then no sibling qualifies)
    ends, end_rank = np.unique(cand_end, return_inverse=True)
    end_rank = end_rank.reshape(-1).astype(np.int64)
    start_rank = np.searchsorted(ends, cand_start, side="right").astype(np.int64) - 1
    width = np.int64(ends.size + 1)
    # order: by parent, then end ascending, then start descending (longest last among ties)
    order = np.lexsort((-cand_start, end_rank, cand_parent))
    sorted_parent = cand_parent[order]
    sorted_key = sorted_parent * width + end_rank[order]
    # previous compatible sibling: the last one (in that order) ending at or before my start
    query = cand_parent[order] * width + start_rank[order]
    previous = np.searchsorted(sorted_key, query, side="right") - 1
    same_parent = previous >= 0
    same_parent[same_parent] = sorted_parent[previous[same_parent]] == sorted_parent[same_parent]
    previous = np.where(same_parent, previous, -1)
    # the walk of each parent starts at its last-finishing child (last in its group)
    is_last = np.ones(order.size, dtype=bool)
    is_last[:-1] = sorted_parent[1:] != sorted_parent[:-1]
    frontier = np.flatnonzero(is_last)
    taken_sorted = np.zeros(order.size, dtype=bool)
    while frontier.size:
        taken_sorted[frontier] = True
        frontier = previous[frontier]
        frontier = frontier[frontier >= 0]
    taken[candidates[order[taken_sorted]]] = True
    return taken


def critical_path_rows(
    start_ns: NDArray[np.int64],
    end_ns: NDArray[np.int64],
    kind: NDArray[np.int8],
    tree: SpanTree,
    follows_from: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]:
    """Segments of every trace's critical path as numpy arrays (see :func:`path_segments`).

    Returns:
        ``(owner_row, seg_start, seg_end, component_code)``.
    """
    segments = path_segments(start_ns, end_ns, kind, tree, follows_from)
    return segments.owner, segments.start, segments.end, segments.component


@dataclass(frozen=True, slots=True)
class PathSegments:
    """Critical-path segments as parallel numpy arrays (ordered by root row, then time)."""

    owner: NDArray[np.int64]
    """Row of the span whose time each segment is."""
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    """Segment interval (ns, the clock of the given times)."""
    component: NDArray[np.int8]
    """Index into :data:`COMPONENTS`."""
    neighbor: NDArray[np.int64]
    """The owner's child next to the segment: the taken child whose start ends it, or for the
    owner's last segment its last taken child (when it took none, one of its children, a
    SERVER span if any; -1 for a span without children). For a ``network`` segment that is
    the callee's span whose instance the request waited on."""


def path_segments(
    start_ns: NDArray[np.int64],
    end_ns: NDArray[np.int64],
    kind: NDArray[np.int8],
    tree: SpanTree,
    follows_from: NDArray[np.bool_] | None = None,
) -> PathSegments:
    """Segments of every trace's critical path as numpy arrays.

    Args:
        start_ns, end_ns: span times (Unix ns; skew-adjusted if wanted).
        kind: OTLP span kind numbers.
        tree: the table's span tree.
        follows_from: per span, True when its parent did not wait for it (Jaeger
            ``FOLLOWS_FROM``); such children are pruned like CONSUMER-under-PRODUCER.

    Returns:
        The :class:`PathSegments`: the span whose time each segment is, its interval (ns), an
        index into :data:`COMPONENTS` and the adjacent taken child. Zero-length segments are
        dropped; segments are ordered by root row, then time.
    """
    n = tree.size
    parent = tree.parent
    clamped_start, clamped_end = _clamped_intervals(start_ns, end_ns, tree)
    rows = np.flatnonzero(tree.depth >= 1)
    parents = parent[rows]
    asynchronous = ((kind[rows] == SpanKind.CONSUMER) & (kind[parents] == SpanKind.PRODUCER)) | (
        start_ns[rows] >= end_ns[parents]
    )
    if follows_from is not None:
        asynchronous |= follows_from[rows]
    candidates = rows[~asynchronous & (clamped_end[rows] > clamped_start[rows])]
    taken = _taken_children(candidates, parent, clamped_start, clamped_end, n)

    on_path = tree.depth == 0
    for level in tree.levels[1:]:
        on_path[level] = taken[level] & on_path[parent[level]]

    # self time of each on-path span: its interval minus its taken children (disjoint, ordered)
    children = np.flatnonzero(on_path & (tree.depth >= 1))
    child_parent = parent[children]
    order = np.lexsort((clamped_start[children], child_parent))
    children = children[order]
    child_parent = child_parent[order]
    first = np.ones(children.size, dtype=bool)
    first[1:] = child_parent[1:] != child_parent[:-1]
    previous_end = np.empty(children.size, dtype=np.int64)
    previous_end[1:] = clamped_end[children[:-1]]
    gap_start = np.where(first, clamped_start[child_parent], previous_end)
    gap_end = clamped_start[children]

    owners = np.flatnonzero(on_path)
    last_child_end = clamped_start.copy()
    if children.size:
        last = np.ones(children.size, dtype=bool)
        last[:-1] = child_parent[1:] != child_parent[:-1]
        last_child_end[child_parent[last]] = clamped_end[children[last]]
    # a span that took no child (a call that timed out before its server started) still
    # waited on the instance of one of its children: the last one in row order, preferring a
    # SERVER span
    last_child = np.full(n, -1, dtype=np.int64)
    linked = np.flatnonzero(parent >= 0)
    linked = linked[np.argsort(kind[linked] == SpanKind.SERVER, kind="stable")]
    last_child[parent[linked]] = linked
    if children.size:
        last_child[child_parent[last]] = children[last]
    tail_start = last_child_end[owners]
    tail_end = clamped_end[owners]

    owner = np.concatenate([child_parent, owners])
    seg_start = np.concatenate([gap_start, tail_start])
    seg_end = np.concatenate([gap_end, tail_end])
    neighbor = np.concatenate([children, last_child[owners]])
    keep = seg_end > seg_start
    owner, seg_start, seg_end = owner[keep], seg_start[keep], seg_end[keep]
    neighbor = neighbor[keep]
    order = np.lexsort((seg_start, tree.root[owner]))
    owner, seg_start, seg_end = owner[order], seg_start[order], seg_end[order]
    neighbor = neighbor[order]

    is_client = kind[owner] == SpanKind.CLIENT
    component = np.where(is_client, np.where(tree.has_children[owner], 1, 2), 0).astype(np.int8)
    return PathSegments(owner, seg_start, seg_end, component, neighbor)


def critical_path(spans: pa.Table, tree: SpanTree | None = None) -> pa.Table:
    """Critical-path segments of every trace in ``spans`` (a table of whole traces).

    Args:
        spans: span table; ``start_unix_nano``/``end_unix_nano`` are used as given (apply the
            skew shifts first).
        tree: the table's :class:`SpanTree` if already built.

    Returns:
        One row per segment with :data:`SEGMENT_COLUMNS`: ``trace_id``, ``span_id`` (the span
        whose time it is), ``seg_start``/``seg_end`` (Unix ns), ``hop_service``,
        ``hop_operation`` (that span's service and name, categorical), ``component`` (enum of
        ``self``, ``network``, ``dependency``), ``root_service``, ``root_operation``,
        ``root_span_id`` and ``root_row`` (row number in ``spans``) of the trace's root (an
        orphan's sub-tree has the orphan as root). Segments of one root sum to the root span's
        duration.
    """
    frame = pl.from_arrow(spans.select(list(PATH_INPUT_COLUMNS)))
    assert isinstance(frame, pl.DataFrame)
    tree = tree or build_span_tree(spans)
    follows_from = (
        follows_from_rows(spans[s.ATTRIBUTES])
        if s.ATTRIBUTES in spans.column_names
        else np.zeros(spans.num_rows, dtype=bool)
    )
    return segments_frame(frame, tree, follows_from).to_arrow()


FOLLOWS_FROM_KEY = "jaeger.reference_type"
"""Attribute the Jaeger reader sets on a span whose parent reference is ``FOLLOWS_FROM``."""


def follows_from_rows(attributes: pa.ChunkedArray | pa.Array) -> NDArray[np.bool_]:
    """Per span: True when it is marked as a ``FOLLOWS_FROM`` child (not awaited by its parent)."""
    return rows_with_attribute(attributes, FOLLOWS_FROM_KEY, "FOLLOWS_FROM")


def follows_from_children(frame: pl.DataFrame) -> NDArray[np.bool_]:
    """:func:`follows_from_rows` of a polars span table (all False without ``attributes``)."""
    if s.ATTRIBUTES not in frame.columns or frame.height == 0:
        return np.zeros(frame.height, dtype=bool)
    return follows_from_rows(frame[s.ATTRIBUTES].to_arrow())


StallClockOffsets = Mapping[tuple[str, str], int]
"""(service, ``service.instance.id``) -> ns added to that instance's stall windows to put them
in the skew-adjusted clock (see :func:`stall_clock_offsets`)."""


def _instance_rows(frame: pl.DataFrame, service: str, instance: str) -> NDArray[np.bool_]:
    """Rows of ``frame`` whose service and ``service.instance.id`` are the given ones."""
    # one pass over the instance column (categoricals compare to a string without a cast),
    # the service checked only on those rows
    mine = (frame[s.INSTANCE] == instance).fill_null(False).to_numpy()
    rows = np.flatnonzero(mine)
    mine[rows] = (frame[s.SERVICE].gather(rows) == service).fill_null(False).to_numpy()
    return mine


def stall_clock_offsets(frame: pl.DataFrame, stalls: Sequence[Stall]) -> dict[tuple[str, str], int]:
    """Per stalled instance, the median ``skew_adjustment_ns`` of its spans in ``frame``.

    A stall window is in the paused instance's own clock; adding this offset moves it into the
    clock of the skew-adjusted span times (see :mod:`tailscope.analysis.stall_time` for why the
    median and not the adjustment of one span). It is a statistic of *all* the instance's spans,
    so an engine that splits the input computes it once over the whole input and hands it to
    every part (:func:`segments_frame`'s ``stall_offsets``).
    """
    offsets: dict[tuple[str, str], int] = {}
    for stall in stalls:
        offsets.setdefault((stall.service, stall.instance), 0)
    if SKEW_ADJUSTMENT not in frame.columns or s.INSTANCE not in frame.columns:
        return offsets
    shift = frame[SKEW_ADJUSTMENT].to_numpy()
    for service, instance in offsets:
        mine = _instance_rows(frame, service, instance)
        if mine.any():
            offsets[(service, instance)] = int(np.median(shift[mine]))
    return offsets


def stall_windows(
    frame: pl.DataFrame, stalls: Sequence[Stall], offsets: StallClockOffsets | None = None
) -> tuple[NDArray[np.int64], StallWindows]:
    """Per-span instance codes (-1: an instance with no stall) and the stall windows in them.

    A span belongs to a stall's instance when its service and ``service.instance.id`` are the
    stall's. Windows are the stalls' ``start_unix_nano``/``end_unix_nano`` (the instance's own
    clock) plus the instance's clock offset (``offsets``, by default
    :func:`stall_clock_offsets` of ``frame``), i.e. in the clock of ``frame``'s (adjusted) times.
    """
    if offsets is None:
        offsets = stall_clock_offsets(frame, stalls)
    codes = np.full(frame.height, -1, dtype=np.int64)
    instances: dict[tuple[str, str], int] = {}
    for stall in stalls:
        instances.setdefault((stall.service, stall.instance), len(instances))
    if s.INSTANCE in frame.columns:
        for (service, instance), code in instances.items():
            codes[_instance_rows(frame, service, instance)] = code
    shift = np.array([offsets.get(key, 0) for key in instances], dtype=np.int64)
    instance_of = np.array([instances[(x.service, x.instance)] for x in stalls], dtype=np.int64)
    windows = StallWindows(
        instance=instance_of,
        start=np.array([x.start_unix_nano for x in stalls], dtype=np.int64) + shift[instance_of],
        end=np.array([x.end_unix_nano for x in stalls], dtype=np.int64) + shift[instance_of],
        stall=np.arange(len(stalls), dtype=np.int64),
    )
    return codes, windows


def segments_frame(
    frame: pl.DataFrame,
    tree: SpanTree,
    follows_from: NDArray[np.bool_] | None = None,
    *,
    ids: bool = True,
    stalls: Sequence[Stall] = (),
    stall_offsets: StallClockOffsets | None = None,
    segments: PathSegments | None = None,
) -> pl.DataFrame:
    """:func:`critical_path` on a polars frame (the form the pipeline uses).

    ``follows_from`` is :func:`follows_from_rows` of the table when the caller has it (the
    frame then needs no ``attributes`` column). With ``ids=False`` only the columns hop
    attribution reads are built (``seg_start``, ``seg_end``, ``hop_service``,
    ``hop_operation``, ``component``, ``root_row``, ``stall``): no per-segment copies of ids
    and root names. With ``stalls`` (``Report.stalls``), the time spent behind them is cut out
    as ``stall`` segments named after the span of the paused instance
    (:func:`tailscope.analysis.stall_time.split_stalled`); the frame then needs
    ``service_instance`` and, if its times are skew-adjusted, ``skew_adjustment_ns``;
    ``stall_offsets`` are the windows' clock offsets (:func:`stall_clock_offsets` of ``frame``
    when None, which is right only when ``frame`` holds every span of the paused instances).
    ``segments``: :func:`path_segments` of ``frame`` when the caller already has them (they
    need no stalls, so the pipeline computes them while the stalls are being detected).
    """
    if segments is None:
        if follows_from is None:
            follows_from = follows_from_children(frame)
        segments = path_segments(
            frame[s.START].to_numpy(),
            frame[s.END].to_numpy(),
            frame[s.KIND].to_numpy(),
            tree,
            follows_from,
        )
    owner, seg_start, seg_end = segments.owner, segments.start, segments.end
    component, label = segments.component, segments.owner
    stall = np.full(owner.size, -1, dtype=np.int64)
    if stalls:
        codes, windows = stall_windows(frame, stalls, stall_offsets)
        split = split_stalled(
            owner, seg_start, seg_end, component, segments.neighbor, codes, windows
        )
        owner, label, seg_start, seg_end = split.owner, split.label, split.start, split.end
        component, stall = split.component, split.stall
    root = tree.root[owner]
    owned = frame.select(s.SERVICE, s.NAME)[label]
    columns: dict[str, pl.Series | NDArray[np.int64]] = {
        "seg_start": seg_start,
        "seg_end": seg_end,
        "hop_service": owned[s.SERVICE],
        "hop_operation": owned[s.NAME],
        "component": pl.Series(component).replace_strict(
            old=list(range(len(COMPONENTS))),
            new=list(COMPONENTS),
            return_dtype=pl.Enum(list(COMPONENTS)),
        ),
        "root_row": root,
        "stall": pl.Series("stall", stall, dtype=pl.Int64)
        .to_frame()
        .select(pl.when(pl.col("stall") >= 0).then(pl.col("stall")).alias("stall"))
        .to_series(),
    }
    if not ids:
        return pl.DataFrame(columns)
    owned_ids = frame.select(s.TRACE_ID, s.SPAN_ID)[label]
    rooted = frame.select(s.SPAN_ID, s.SERVICE, s.NAME)[root]
    columns |= {
        "trace_id": owned_ids[s.TRACE_ID],
        "span_id": owned_ids[s.SPAN_ID],
        "root_service": rooted[s.SERVICE],
        "root_operation": rooted[s.NAME],
        "root_span_id": rooted[s.SPAN_ID],
    }
    return pl.DataFrame(columns).select(SEGMENT_COLUMNS)
