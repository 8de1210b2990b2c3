"""What the TUI draws: one :class:`TriageData` object, plus the small view models built from it.

The app receives everything it shows in one object (the report, the skew-adjusted span table and
the critical-path segments, and the gate's verdict when a baseline was given), so it can be
tested without files. Nothing here recomputes analytics: operations are filtered and sorted as
the report lists them, and a trace waterfall only *selects* the rows of one trace from the frames
the pipeline already computed (a polars filter), then orders them parent-before-child for drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from tailscope import schema as s
from tailscope.report.model import OperationStats, Report, Stall

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from tailscope.report.model import GateVerdict

SortColumn = Literal[
    "service", "operation", "kind", "count", "error_rate", "p50_ms", "p99_ms", "p999_ms", "max_ms"
]
"""Columns the operations table can be sorted by (``OperationStats`` field names)."""

SORT_COLUMNS: Final[tuple[SortColumn, ...]] = (
    "service",
    "operation",
    "kind",
    "count",
    "error_rate",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
)

SKEW_COLUMNS: Final = ("skew_adjustment_ns",)
"""The per-span clock-skew shift (ns) in the pipeline's adjusted span table, when present."""
SKEW_CORRECTED_COLUMN: Final = "skew_corrected"
"""True where the span's own parent edge was corrected (the pipeline's adjusted span table)."""


@dataclass(frozen=True, slots=True)
class TriageData:
    """Everything the TUI shows, computed before the first screen is drawn.

    ``spans`` is the skew-adjusted span table (SPAN_SCHEMA columns, or the pipeline's narrower
    frame with ``table`` alongside; ids as raw bytes) and ``path`` the critical-path segments
    (``trace_id, span_id, seg_start, seg_end, hop_service, hop_operation, component, ...``;
    times Unix ns). Either may be None (a report read back from JSON): the Trace screen then
    says that traces are not available. ``verdict`` is the gate's ``GateVerdict`` when
    ``--baseline`` was given.
    """

    report: Report
    spans: pl.DataFrame | None = None
    path: pl.DataFrame | None = None
    verdict: GateVerdict | None = None
    """Defaults to ``report.gate`` (the report model carries the gate's verdict)."""
    table: pa.Table | None = None
    """The ingested Arrow table, row-aligned with ``spans``, when ``spans`` lacks the nested
    ``attributes`` and ``events`` columns (the pipeline's frame): a trace's rows are looked up
    here only when it is drawn."""

    def __post_init__(self) -> None:
        if self.verdict is None and self.report.gate is not None:
            object.__setattr__(self, "verdict", self.report.gate)


def filter_operations(operations: Sequence[OperationStats], text: str) -> list[OperationStats]:
    """Operations whose service or operation name contains every word of ``text`` (any case)."""
    words = text.lower().split()
    if not words:
        return list(operations)
    return [
        op
        for op in operations
        if all(w in f"{op.service} {op.operation} {op.kind}".lower() for w in words)
    ]


def sort_operations(
    operations: Sequence[OperationStats], column: SortColumn, descending: bool
) -> list[OperationStats]:
    """Operations ordered by one column; ties keep the report's order (most important first)."""
    return sorted(operations, key=lambda op: getattr(op, column), reverse=descending)


@dataclass(frozen=True, slots=True)
class WaterfallSpan:
    """One span of one trace, ready to draw. Times Unix ns in the skew-adjusted clock."""

    span_id: str
    parent_span_id: str | None
    depth: int
    service: str
    instance: str
    name: str
    kind: int
    start_unix_nano: int
    end_unix_nano: int
    error: bool
    skew_adjustment_ns: int
    """How far the pipeline shifted this span to undo clock skew (0: not shifted)."""
    skew_corrected: bool
    """This span's own edge to its parent was corrected (else the shift is inherited)."""
    critical_segments: tuple[tuple[int, int], ...]
    """Parts of this span on the trace's critical path (start, end; Unix ns)."""
    stall_windows: tuple[tuple[int, int, int], ...]
    """Stalls of this span's instance overlapping it: (stall index, start, end) in the
    adjusted clock."""
    attributes: tuple[tuple[str, str], ...] = ()
    events: tuple[tuple[int, str, tuple[tuple[str, str], ...]], ...] = ()
    status_message: str | None = None

    @property
    def duration_ms(self) -> float:
        return (self.end_unix_nano - self.start_unix_nano) / 1e6


@dataclass(frozen=True, slots=True)
class TraceView:
    """One trace as a waterfall: spans parent-before-child, children by start time."""

    trace_id: str
    spans: tuple[WaterfallSpan, ...]
    start_unix_nano: int
    end_unix_nano: int
    critical_path_ms: float
    """Total length of the critical-path segments (ms)."""
    segments: tuple[tuple[str, str, str, float], ...] = field(default=())
    """Critical-path hops in time order: (service, operation, component, ms)."""

    @property
    def duration_ms(self) -> float:
        return (self.end_unix_nano - self.start_unix_nano) / 1e6


def normalise_trace_id(text: str) -> str | None:
    """A typed trace id as 32 lowercase hex digits (shorter ids left-padded), else None."""
    cleaned = text.strip().lower().removeprefix("0x")
    if not cleaned or len(cleaned) > 32 or any(c not in "0123456789abcdef" for c in cleaned):
        return None
    return cleaned.rjust(32, "0")


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One line about a trace for pick lists: its root span and size."""

    trace_id: str
    root: str
    """``service operation`` of the earliest root span."""
    duration_ms: float
    spans: int
    errors: int


def trace_summaries(data: TriageData, trace_ids: Sequence[str]) -> dict[str, TraceSummary]:
    """Root, duration and span count of each listed trace that is in the span table."""
    import polars as pl

    if data.spans is None or not trace_ids:
        return {}
    spans = data.spans
    if spans.schema[s.TRACE_ID] == pl.Binary:
        wanted = pl.Series([bytes.fromhex(t) for t in trace_ids], dtype=pl.Binary)
    else:
        wanted = pl.Series(list(trace_ids), dtype=pl.String)
    rows = (
        spans.filter(pl.col(s.TRACE_ID).is_in(wanted.implode()))
        .sort(s.START)
        .group_by(s.TRACE_ID, maintain_order=True)
        .agg(
            root_service=pl.col(s.SERVICE).cast(pl.String).first(),
            root_name=pl.col(s.NAME).cast(pl.String).first(),
            start=pl.col(s.START).min(),
            end=pl.col(s.END).max(),
            spans=pl.len(),
            errors=(pl.col(s.STATUS_CODE) == int(s.StatusCode.ERROR)).sum(),
        )
    )
    out: dict[str, TraceSummary] = {}
    for r in rows.iter_rows(named=True):
        trace_id = _hex(r[s.TRACE_ID])
        out[trace_id] = TraceSummary(
            trace_id=trace_id,
            root=f"{r['root_service']} {r['root_name']}",
            duration_ms=(r["end"] - r["start"]) / 1e6,
            spans=int(r["spans"]),
            errors=int(r["errors"]),
        )
    return out


def _id_mask(frame: pl.DataFrame, column: str, trace_id: str) -> pl.Series:
    """Which rows belong to one trace; the id column may hold raw bytes or hex text."""
    import polars as pl

    wanted = bytes.fromhex(trace_id) if frame.schema[column] == pl.Binary else trace_id
    return frame.select(pl.col(column) == pl.lit(wanted)).to_series()


def _id_filter(frame: pl.DataFrame, column: str, trace_id: str) -> pl.DataFrame:
    """Rows of one trace; the id column may hold raw bytes or hex text."""
    return frame.filter(_id_mask(frame, column, trace_id))


def _trace_rows(data: TriageData, trace_id: str) -> pl.DataFrame:
    """The span rows of one trace, with ``attributes`` and ``events`` from ``data.table`` when
    the span frame does not carry them."""
    import polars as pl

    assert data.spans is not None
    mask = _id_mask(data.spans, s.TRACE_ID, trace_id)
    rows = data.spans.filter(mask)
    nested = [c for c in (s.ATTRIBUTES, s.EVENTS) if c not in rows.columns]
    if data.table is None or not nested or rows.height == 0:
        return rows
    details = pl.from_arrow(data.table.select(nested).take(mask.arg_true().to_arrow()))
    assert isinstance(details, pl.DataFrame)
    return rows.hstack(details)


def _hex(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def _attributes(items: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        return ()
    return tuple((str(a["key"]), str(a["value"])) for a in items if isinstance(a, dict))


def trace_view(data: TriageData, trace_id: str) -> TraceView | None:
    """The waterfall of one trace (``trace_id`` lowercase hex), or None if it is not loaded."""
    if data.spans is None:
        return None
    rows = _trace_rows(data, trace_id)
    if rows.height == 0:
        return None
    skew_column = next((c for c in SKEW_COLUMNS if c in rows.columns), None)
    segments_by_span: dict[str, list[tuple[int, int]]] = {}
    hops: list[tuple[int, str, str, str, float]] = []
    if data.path is not None and "trace_id" in data.path.columns:
        for seg in _id_filter(data.path, "trace_id", trace_id).iter_rows(named=True):
            start, end = int(seg["seg_start"]), int(seg["seg_end"])
            segments_by_span.setdefault(_hex(seg["span_id"]), []).append((start, end))
            hops.append(
                (
                    start,
                    str(seg.get("hop_service") or ""),
                    str(seg.get("hop_operation") or ""),
                    str(seg.get("component") or ""),
                    (end - start) / 1e6,
                )
            )
    hops.sort()
    records = list(rows.iter_rows(named=True))
    ids = {_hex(r[s.SPAN_ID]) for r in records}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in records:
        parent = r[s.PARENT_SPAN_ID]
        parent_hex = _hex(parent) if parent is not None else None
        key = parent_hex if parent_hex in ids else None
        children.setdefault(key, []).append(r)
    for kids in children.values():
        kids.sort(key=lambda r: (r[s.START], -r[s.END]))

    ordered: list[WaterfallSpan] = []
    stack: list[tuple[dict[str, Any], int]] = [(r, 0) for r in reversed(children.get(None, []))]
    while stack:
        r, depth = stack.pop()
        span_id = _hex(r[s.SPAN_ID])
        ordered.append(_waterfall_span(data.report.stalls, r, depth, skew_column, segments_by_span))
        stack.extend((k, depth + 1) for k in reversed(children.get(span_id, [])))
    start = min(w.start_unix_nano for w in ordered)
    end = max(w.end_unix_nano for w in ordered)
    return TraceView(
        trace_id=trace_id,
        spans=tuple(ordered),
        start_unix_nano=start,
        end_unix_nano=end,
        critical_path_ms=sum(h[4] for h in hops),
        segments=tuple((svc, op, comp, ms) for _, svc, op, comp, ms in hops),
    )


def _waterfall_span(
    stalls: Sequence[Stall],
    r: dict[str, Any],
    depth: int,
    skew_column: str | None,
    segments_by_span: dict[str, list[tuple[int, int]]],
) -> WaterfallSpan:
    span_id = _hex(r[s.SPAN_ID])
    skew = int(r[skew_column] or 0) if skew_column else 0
    start, end = int(r[s.START]), int(r[s.END])
    instance = str(r[s.INSTANCE])
    # Stalls are found in the instance's own (unadjusted) clock: shift them like the span.
    windows = tuple(
        (i, st.start_unix_nano + skew, st.end_unix_nano + skew)
        for i, st in enumerate(stalls)
        if st.instance == instance
        and st.start_unix_nano + skew < end
        and st.end_unix_nano + skew > start
    )
    events = tuple(
        (int(e["time_unix_nano"]), str(e["name"]), _attributes(e.get("attributes")))
        for e in (r.get(s.EVENTS) or [])
    )
    parent = r[s.PARENT_SPAN_ID]
    return WaterfallSpan(
        span_id=span_id,
        parent_span_id=_hex(parent) if parent is not None else None,
        depth=depth,
        service=str(r[s.SERVICE]),
        instance=instance,
        name=str(r[s.NAME]),
        kind=int(r[s.KIND]),
        start_unix_nano=start,
        end_unix_nano=end,
        error=int(r[s.STATUS_CODE]) == int(s.StatusCode.ERROR),
        skew_adjustment_ns=skew,
        skew_corrected=bool(r.get(SKEW_CORRECTED_COLUMN) or False),
        critical_segments=tuple(sorted(segments_by_span.get(span_id, []))),
        stall_windows=windows,
        attributes=_attributes(r.get(s.ATTRIBUTES)),
        events=events,
        status_message=r.get(s.STATUS_MESSAGE),
    )
