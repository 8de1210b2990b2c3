"""The screens of the triage app, one widget per tab. Each draws a part of :class:`TriageData`.

Panes never compute analytics: they lay out what the report says (filtering and ordering rows,
scaling bars) and ask the app to open traces by posting :class:`OpenTraces`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from tailscope.report.model import (
    Cascade,
    HopShare,
    OperationStats,
    QuantileComparison,
    RootSummary,
)
from tailscope.report.numbers import share_text, signed_percent
from tailscope.tui.bars import (
    Palette,
    format_ms,
    format_percent,
    horizontal_bar,
    quantile_ladder,
    share_bar,
    timeline,
    waterfall_bar,
)
from tailscope.tui.data import (
    SORT_COLUMNS,
    SortColumn,
    TraceView,
    TriageData,
    WaterfallSpan,
    filter_operations,
    sort_operations,
    trace_view,
)

KIND_SHORT = {
    "server": "srv",
    "client": "cli",
    "internal": "int",
    "producer": "prod",
    "consumer": "cons",
    "unspecified": "-",
}
DETAIL_WIDTH = 56
"""Width (cells) of the span detail panel beside the waterfall on wide terminals."""
FILTER_DELAY_S = 0.12
"""The operations filter is applied once typing pauses this long (seconds)."""
WIDE = 130
"""Terminal width (cells) from which detail panels move beside their table instead of below."""


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def clip_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells in the middle, keeping its end: the method of a long
    RPC name (``inventory.v1.Inv…ice/Reserve``) tells operations apart better than its prefix."""
    if len(text) <= width:
        return text
    tail = max(width * 3 // 5, 1)
    head = max(width - tail - 1, 0)
    return text[:head] + "…" + text[len(text) - tail :]


def right(text: str, style: str = "") -> Text:
    """A right-aligned table cell."""
    return Text(text, style=style, justify="right")


class OpenTraces(Message):
    """A pane asks to open one of these traces (the app lists them, or opens a single one)."""

    def __init__(self, title: str, trace_ids: tuple[str, ...]) -> None:
        super().__init__()
        self.title = title
        self.trace_ids = trace_ids


class Pane(Vertical):
    """Base class: knows the data and the palette; ``redraw`` draws everything again."""

    def __init__(self, data: TriageData, palette: Palette, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.palette = palette

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        self.redraw()

    def redraw(self) -> None:
        """Draw again (after a theme or size change)."""


# --- Overview ---------------------------------------------------------------------------------

OPERATION_COLUMNS: dict[SortColumn, str] = {
    "service": "service",
    "operation": "operation",
    "kind": "kind",
    "count": "count",
    "error_rate": "err %",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "p999_ms": "p99.9 ms",
    "max_ms": "max ms",
}


ROOT_STATUS = {
    "conclusive": "conclusive",
    "ambiguous": "top hops overlap",
    "too_few_tail_requests": "inconclusive",
    "no_hops": "",
}
"""How the Hops pane labels a root's ranking status (the model's ``RootVerdict.status``)."""


def verdict_text(roots: Sequence[RootSummary], top: int = 3) -> Text:
    """The verdict sentences of the first ``top`` entry points (the model's text, verbatim)."""
    text = Text()
    for i, root in enumerate(r for r in roots[:top] if r.verdict is not None):
        assert root.verdict is not None
        if i:
            text.append("\n")
        text.append(f"{root.service} {root.operation}: ", style="bold")
        text.append(root.verdict.text)
    return text


def _root_status(root: RootSummary, palette: Palette) -> Text | str:
    if root.verdict is None:
        return Text("inconclusive", style=palette.warning) if root.inconclusive else ""
    label = ROOT_STATUS[root.verdict.status]
    warn = root.verdict.status != "conclusive"
    return Text(label, style=palette.warning) if warn and label else label


class OverviewPane(Pane):
    """Every operation: count, error rate, quantiles; sortable, filterable, with a quantile
    ladder of the highlighted row. Enter lists the operation's slowest traces."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sort_next", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "close_filter", "Clear filter", show=False),
    ]

    def __init__(self, data: TriageData, palette: Palette, **kwargs: Any) -> None:
        super().__init__(data, palette, **kwargs)
        self.filter_text = ""
        self.sort_column: SortColumn = "p99_ms"
        self.descending = True
        self.shown: list[OperationStats] = []
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(verdict_text(self.data.report.roots), id="verdicts")
        yield Input(placeholder="filter: service or operation words", id="filter")
        with Horizontal(id="overview-body", classes="split"):
            yield DataTable(id="operations", cursor_type="row", zebra_stripes=True)
            yield Static(id="distribution", classes="detail")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.redraw()

    def redraw(self) -> None:
        table = self.query_one("#operations", DataTable)
        selected = self.selected_operation()
        table.clear(columns=True)
        for key, label in OPERATION_COLUMNS.items():
            arrow = (" ▼" if self.descending else " ▲") if key == self.sort_column else ""
            table.add_column(label + arrow, key=key)
        ops = filter_operations(self.data.report.operations, self.filter_text)
        self.shown = sort_operations(ops, self.sort_column, self.descending)
        error_style = self.palette.stall
        width = self.size.width or self.app.size.width
        service_width = min(max((len(op.service) for op in self.shown), default=8), 24)
        operation_width = min(max(width - 70 - service_width, 24), 72)
        for i, op in enumerate(self.shown):
            table.add_row(
                clip(op.service, service_width),
                clip_middle(op.operation, operation_width),
                KIND_SHORT.get(op.kind, op.kind),
                right(f"{op.count:,}"),
                right(format_percent(op.error_rate), error_style if op.error_rate > 0 else ""),
                right(format_ms(op.p50_ms)),
                right(format_ms(op.p99_ms), "bold"),
                right(format_ms(op.p999_ms)),
                right(format_ms(op.max_ms)),
                key=str(i),
            )
        if selected is not None and selected in self.shown:
            table.move_cursor(row=self.shown.index(selected))
        self.show_distribution()

    def selected_operation(self) -> OperationStats | None:
        table = self.query_one("#operations", DataTable)
        if not self.shown or table.row_count == 0:
            return None
        return self.shown[min(table.cursor_row, len(self.shown) - 1)]

    def show_distribution(self) -> None:
        panel = self.query_one("#distribution", Static)
        op = self.selected_operation()
        if op is None:
            shown = len(self.data.report.operations)
            panel.update(f"No operation matches {self.filter_text!r} (of {shown}).")
            return
        width = panel.size.width or 60
        title = Text(f"{op.service} · {op.operation}", style="bold")
        title.append(f"   {op.count:,} spans", style=self.palette.muted)
        if op.is_root:
            title.append("  root", style=self.palette.warning)
        body = Text("\n").join([title, quantile_ladder(op, width - 2, self.palette)])
        if op.exemplar_trace_ids:
            body.append(
                f"\nEnter: its {len(op.exemplar_trace_ids)} slowest traces",
                style=self.palette.muted,
            )
        panel.update(body)

    @on(DataTable.RowHighlighted, "#operations")
    def _highlighted(self) -> None:
        self.show_distribution()

    @on(DataTable.RowSelected, "#operations")
    def _selected(self) -> None:
        op = self.selected_operation()
        if op is not None and op.exemplar_trace_ids:
            title = f"Slowest traces of {op.service} {op.operation}"
            self.post_message(OpenTraces(title, op.exemplar_trace_ids))

    @on(DataTable.HeaderSelected, "#operations")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        for candidate in SORT_COLUMNS:
            if candidate == column:
                self.sort_by(candidate)

    def sort_by(self, column: SortColumn) -> None:
        """Sort by ``column``; asking again for the same column flips the order."""
        if column == self.sort_column:
            self.descending = not self.descending
        else:
            self.sort_column = column
            self.descending = column not in ("service", "operation", "kind")
        self.redraw()

    def action_sort_next(self) -> None:
        index = SORT_COLUMNS.index(self.sort_column)
        self.sort_by(SORT_COLUMNS[(index + 1) % len(SORT_COLUMNS)])

    def action_reverse(self) -> None:
        self.sort_by(self.sort_column)

    def open_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    async def action_close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one("#operations", DataTable).focus()
        else:
            await self.screen.run_action("back")

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Redraw once typing pauses, not per key: thousands of operations take a moment to lay out.
        self.filter_text = event.value
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY_S, self.redraw)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
            self.redraw()
        if not self.filter_text:
            self.query_one("#filter", Input).display = False
        self.query_one("#operations", DataTable).focus()

    def on_resize(self) -> None:
        body = self.query_one("#overview-body")
        body.set_class(self.app.size.width >= WIDE, "-wide")
        self.call_after_refresh(self.show_distribution)


# --- Hops -------------------------------------------------------------------------------------


HOP_NAME_MIN = 26
"""Hop names are clipped to this many cells at 80 columns, and grow on wider terminals."""
COMPONENT_SHORT = {"self": "self", "network": "net", "dependency": "dep", "stall": "stall"}


class HopsPane(Pane):
    """Root operations, and for the highlighted one each hop's variance and tail share with
    their 95 % intervals and how often the hop is on the critical path."""

    def __init__(self, data: TriageData, palette: Palette, **kwargs: Any) -> None:
        super().__init__(data, palette, **kwargs)
        self.roots: list[RootSummary] = list(data.report.roots)
        self.shown_hops: list[HopShare] = []

    def compose(self) -> ComposeResult:
        yield DataTable(id="root-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="hops-title", classes="title")
        yield DataTable(id="hop-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        roots = self.query_one("#root-table", DataTable)
        roots.add_column("root operation", key="root")
        for label in ("requests", "p50 ms", "p99 ms", "tail req", ""):
            roots.add_column(label, key=label or "note")
        for i, root in enumerate(self.roots):
            roots.add_row(
                clip(f"{root.service} {root.operation}", 44),
                right(f"{root.requests:,}"),
                right(format_ms(root.p50_ms)),
                right(format_ms(root.p99_ms), "bold"),
                right(f"{root.tail_requests:,}"),
                _root_status(root, self.palette),
                key=str(i),
            )
        self.redraw()

    def selected_root(self) -> RootSummary | None:
        table = self.query_one("#root-table", DataTable)
        if not self.roots:
            return None
        return self.roots[min(table.cursor_row, len(self.roots) - 1)]

    def redraw(self) -> None:
        title = self.query_one("#hops-title", Static)
        table = self.query_one("#hop-table", DataTable)
        table.clear(columns=True)
        root = self.selected_root()
        if root is None:
            title.update("No root operations in this report.")
            self.shown_hops = []
            return
        self.shown_hops = [
            h
            for h in self.data.report.hops
            if h.root_service == root.service and h.root_operation == root.operation
        ]
        note = "  (too few tail requests: shares are noise)" if root.inconclusive else ""
        title.update(
            Text.assemble(
                ("Hops of ", ""),
                (f"{root.service} {root.operation}", "bold"),
                (f"  p99 {format_ms(root.p99_ms)} ms over {root.requests:,} requests", ""),
                (note, self.palette.warning),
                ("   Enter: slowest traces of a hop", self.palette.muted),
            )
        )
        # Explicit widths: auto-sized columns of a table cleared and refilled while the pane
        # is being laid out could come out a few cells wide.
        name_width, bar = self.column_widths()
        longest = max(
            (len(f"{h.hop_service} {h.hop_operation}") for h in self.shown_hops), default=3
        )
        name_width = min(name_width, max(longest, 3))
        texts = [
            share_text(share, interval, width=3)
            for h in self.shown_hops
            for share, interval in (
                (h.tail_share, h.tail_share_ci),
                (h.variance_share, h.variance_share_ci),
            )
        ]
        share_width = (bar + 1 if bar else 0) + max((len(t) for t in texts), default=12)
        table.add_column("hop", key="hop", width=name_width)
        table.add_column("kind", key="component", width=5)
        table.add_column("on path", key="on_path", width=7)
        table.add_column("mean ms", key="mean", width=7)
        table.add_column("tail share [CI]", key="tail", width=max(share_width, 15))
        table.add_column("variance share [CI]", key="variance", width=max(share_width, 19))
        for i, hop in enumerate(self.shown_hops):
            tail = self._share_cell(hop.tail_share, hop.tail_share_ci, bar, hop.inconclusive)
            var = self._share_cell(hop.variance_share, hop.variance_share_ci, bar, hop.inconclusive)
            table.add_row(
                clip_middle(f"{hop.hop_service} {hop.hop_operation}", name_width),
                COMPONENT_SHORT.get(hop.component, hop.component),
                right(format_percent(hop.on_critical_path)),
                right(format_ms(hop.mean_ms)),
                tail,
                var,
                key=str(i),
            )

    def column_widths(self) -> tuple[int, int]:
        """(hop name width, bar width): names grow first, then bars appear (0 at 80 columns)."""
        width = self.size.width or self.app.size.width
        fixed = 6 + 9 + 9 + 2 * 15 + 2 + 2
        spare = max(width - fixed - HOP_NAME_MIN, 0)
        name = HOP_NAME_MIN + min(spare // 3, 22)
        bar = min((width - fixed - name - 2) // 2, 24)
        return name, bar if bar >= 4 else 0

    def _share_cell(
        self, share: float, interval: tuple[float, float], bar: int, inconclusive: bool
    ) -> Text:
        cell = share_bar(share, interval, bar, self.palette, inconclusive) if bar else Text()
        cell.append((" " if bar else "") + share_text(share, interval, width=3))
        return cell

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    @on(DataTable.RowHighlighted, "#root-table")
    def _root_highlighted(self) -> None:
        self.redraw()

    @on(DataTable.RowSelected, "#root-table")
    def _root_selected(self) -> None:
        self.query_one("#hop-table", DataTable).focus()

    @on(DataTable.RowSelected, "#hop-table")
    def _hop_selected(self, event: DataTable.RowSelected) -> None:
        hop = self.shown_hops[event.cursor_row]
        if hop.exemplar_trace_ids:
            title = f"Slowest traces where {hop.hop_service} {hop.hop_operation} took the most"
            self.post_message(OpenTraces(title, hop.exemplar_trace_ids))
        else:
            self.notify("No exemplar traces recorded for this hop.", severity="warning")


# --- Stalls and cascades ----------------------------------------------------------------------


class StallsPane(Pane):
    """A timeline per instance with its stall windows, the cascades they started and the
    timeouts no stall explains. Enter on a cascade or timeout lists its affected traces."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="timeline-box"):
            yield Static(id="timeline")
        yield Static(id="cascades-title", classes="title")
        yield DataTable(id="cascades", cursor_type="row", zebra_stripes=True)
        yield Static(id="unexplained-title", classes="title")
        yield DataTable(id="unexplained", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        report = self.data.report
        cascades = self.query_one("#cascades", DataTable)
        for label in ("stall", "timed out", "retries", "amplif.", "p99 impact", "roots", "traces"):
            cascades.add_column(label, key=label)
        for i, cascade in enumerate(report.cascades):
            cascades.add_row(*self._cascade_cells(cascade), key=str(i))
        self.query_one("#cascades-title", Static).update(
            Text.assemble(
                (f"{len(report.cascades)} cascade(s)", "bold"),
                ("  stall → timed-out calls → retries → affected roots", self.palette.muted),
            )
        )
        unexplained = self.query_one("#unexplained", DataTable)
        for label in ("caller → callee", "operation", "timeouts", "timeout ms", "likely hop"):
            unexplained.add_column(label, key=label)
        for i, t in enumerate(report.unexplained_timeouts):
            unexplained.add_row(
                clip(f"{t.caller_service} → {t.callee}", 36),
                clip(t.operation, 30),
                right(f"{t.timed_out_spans:,}"),
                right(format_ms(t.inferred_timeout_ms) if t.inferred_timeout_ms else "–"),
                t.likely_hop,
                key=str(i),
            )
        self.query_one("#unexplained-title", Static).update(
            Text.assemble(
                (f"{len(report.unexplained_timeouts)} unexplained timeout edge(s)", "bold"),
                ("  timeouts no stall explains", self.palette.muted),
            )
        )
        self.redraw()

    def _cascade_cells(self, cascade: Cascade) -> list[Any]:
        report = self.data.report
        stall = report.stalls[cascade.stall] if cascade.stall < len(report.stalls) else None
        origin = report.input.time_range_unix_nano
        offset = ""
        if origin is not None:
            offset = f" +{(cascade.start_unix_nano - origin[0]) / 1e9:.1f}s"
        label = f"{cascade.instance}{offset}"
        if stall is not None:
            label += f" {format_ms(stall.duration_ms)}ms"
        return [
            clip(label, 34),
            right(f"{cascade.timed_out_spans:,}"),
            right(f"{cascade.retries:,}"),
            right(f"×{cascade.amplification:.2f}"),
            right(f"+{format_ms(cascade.p99_impact_ms)} ms", "bold"),
            clip(", ".join(cascade.root_operations), 30),
            right(f"{len(cascade.trace_ids):,}"),
        ]

    def redraw(self) -> None:
        report = self.data.report
        panel = self.query_one("#timeline", Static)
        if not report.stalls:
            panel.update(Text("No stop-the-world stalls detected.", style=self.palette.muted))
            return
        if report.input.time_range_unix_nano is not None:
            start, end = report.input.time_range_unix_nano
        else:
            start = min(st.start_unix_nano for st in report.stalls)
            end = max(st.end_unix_nano for st in report.stalls)
        by_instance: dict[str, list[tuple[int, int]]] = {}
        total_ms: dict[str, float] = {}
        for st in report.stalls:
            by_instance.setdefault(st.instance, []).append((st.start_unix_nano, st.end_unix_nano))
            total_ms[st.instance] = total_ms.get(st.instance, 0.0) + st.duration_ms
        label_width = min(max(len(i) for i in by_instance), 22)
        width = max((self.size.width or 80) - label_width - 22, 10)
        lines = [
            Text.assemble(
                (f"{len(report.stalls)} stall(s) on {len(by_instance)} instance(s)", "bold"),
                (f"   timeline: {(end - start) / 1e9:.1f} s of input", self.palette.muted),
            )
        ]
        for instance, windows in sorted(by_instance.items()):
            line = Text(f"{clip(instance, label_width):<{label_width}} ")
            line.append_text(timeline(windows, start, end, width, self.palette))
            line.append(f" {len(windows):>3}× {format_ms(total_ms[instance]):>7} ms")
            lines.append(line)
        panel.update(Text("\n").join(lines))

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    @on(DataTable.RowSelected, "#cascades")
    def _cascade_selected(self, event: DataTable.RowSelected) -> None:
        cascade = self.data.report.cascades[event.cursor_row]
        title = f"Traces hit by the stall of {cascade.instance}"
        self.post_message(OpenTraces(title, cascade.trace_ids))

    @on(DataTable.RowSelected, "#unexplained")
    def _timeout_selected(self, event: DataTable.RowSelected) -> None:
        t = self.data.report.unexplained_timeouts[event.cursor_row]
        title = f"Timeouts {t.caller_service} → {t.callee} ({t.likely_hop})"
        self.post_message(OpenTraces(title, t.trace_ids))


# --- Trace ------------------------------------------------------------------------------------


class TracePane(Pane):
    """The waterfall of one trace: critical path highlighted, stalls overlaid, skew-adjusted
    spans marked; the highlighted span's attributes and events beside it."""

    def __init__(self, data: TriageData, palette: Palette, **kwargs: Any) -> None:
        super().__init__(data, palette, **kwargs)
        self.view: TraceView | None = None
        self.missing: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="trace-title", classes="title")
        with Horizontal(id="trace-body", classes="split"):
            yield DataTable(id="waterfall", cursor_type="row")
            with VerticalScroll(id="span-detail-box", classes="detail"):
                yield Static(id="span-detail")

    def on_mount(self) -> None:
        self.redraw()

    def show_trace(self, trace_id: str) -> bool:
        """Open ``trace_id`` (lowercase hex); False (and a message) if it is not loaded."""
        view = trace_view(self.data, trace_id)
        if view is None:
            self.missing = trace_id
            self.view = None
        else:
            self.missing = None
            self.view = view
        self.redraw()
        return view is not None

    def bar_width(self) -> int:
        """Cells left for the bars once name, ms, marks, cell padding and scrollbar are drawn."""
        total = self.size.width or self.app.size.width
        if self.app.size.width >= WIDE:
            total -= DETAIL_WIDTH
        return max(total - self._name_width() - 9 - 4 - 8 - 2, 10)

    def on_show(self) -> None:
        if self.view is not None:
            self.call_after_refresh(self.redraw)

    def _name_width(self) -> int:
        if self.view is None:
            return 20
        longest = max(len(self._span_label(w)) for w in self.view.spans)
        return min(longest, 44)

    @staticmethod
    def _span_label(span: WaterfallSpan) -> str:
        return "  " * min(span.depth, 8) + f"{span.service}: {span.name}"

    def redraw(self) -> None:
        title = self.query_one("#trace-title", Static)
        table = self.query_one("#waterfall", DataTable)
        cursor = table.cursor_row if table.row_count else 0
        table.clear(columns=True)
        if self.data.spans is None:
            title.update("Traces are not available (the report was loaded without spans).")
            return
        if self.view is None:
            hint = "No trace open. Enter on an operation, hop or cascade opens one; t types an id."
            if self.missing is not None:
                hint = f"Trace {self.missing} is not in the input. Press t to type another id."
            title.update(Text(hint, style=self.palette.warning if self.missing else ""))
            self.query_one("#span-detail", Static).update("")
            return
        view = self.view
        title.update(
            Text.assemble(
                ("trace ", self.palette.muted),
                (view.trace_id, "bold"),
                (f"  {len(view.spans)} spans  {format_ms(view.duration_ms)} ms", ""),
                (f"  critical path {format_ms(view.critical_path_ms)} ms", self.palette.critical),
            )
        )
        name_width = self._name_width()
        width = self.bar_width()
        table.add_column("span", key="span", width=name_width)
        table.add_column("ms", key="ms", width=9)
        table.add_column("", key="marks", width=4)
        legend = Text.assemble(
            "waterfall  ",
            ("█ critical path", self.palette.critical),
            ("  ▓ stall", self.palette.stall),
            ("  ⇄ skew-adjusted", self.palette.warning),
            ("  ! error", self.palette.stall),
        )
        legend.truncate(width)
        table.add_column(legend, key="bar", width=width)
        for i, span in enumerate(view.spans):
            marks = Text()
            marks.append("!" if span.error else " ", style=self.palette.stall)
            marks.append("█" if span.critical_segments else " ", style=self.palette.critical)
            marks.append("▓" if span.stall_windows else " ", style=self.palette.stall)
            marks.append("⇄" if span.skew_adjustment_ns else " ", style=self.palette.warning)
            bar = waterfall_bar(span, view.start_unix_nano, view.end_unix_nano, width, self.palette)
            table.add_row(
                clip(self._span_label(span), name_width),
                right(format_ms(span.duration_ms)),
                marks,
                bar,
                key=str(i),
            )
        table.move_cursor(row=min(cursor, len(view.spans) - 1))
        self.show_detail()

    def selected_span(self) -> WaterfallSpan | None:
        if self.view is None:
            return None
        table = self.query_one("#waterfall", DataTable)
        return self.view.spans[min(table.cursor_row, len(self.view.spans) - 1)]

    def show_detail(self) -> None:
        span = self.selected_span()
        panel = self.query_one("#span-detail", Static)
        if span is None or self.view is None:
            panel.update("")
            return
        muted = self.palette.muted
        t0 = self.view.start_unix_nano
        out = Text()
        out.append(f"{span.service}: {span.name}\n", style="bold")
        out.append(f"span {span.span_id}  instance {span.instance}\n", style=muted)
        out.append(
            f"starts +{(span.start_unix_nano - t0) / 1e6:.2f} ms, "
            f"lasts {format_ms(span.duration_ms)} ms\n"
        )
        if span.error:
            out.append(f"ERROR {span.status_message or ''}\n", style=self.palette.stall)
        if span.critical_segments:
            on_path = sum(b - a for a, b in span.critical_segments) / 1e6
            out.append(f"on the critical path for {format_ms(on_path)} ms\n", style="bold")
        for index, start, _end in span.stall_windows:
            stall = self.data.report.stalls[index]
            out.append(
                f"stalled {format_ms(stall.duration_ms)} ms ({stall.kind} stall, "
                f"confidence {stall.confidence:.2f}) from {(start - t0) / 1e6:+.1f} ms "
                "of the trace\n",
                style=self.palette.stall,
            )
        if span.skew_adjustment_ns:
            how = "its own edge corrected" if span.skew_corrected else "inherited from a parent"
            out.append(
                f"shifted {span.skew_adjustment_ns / 1e6:+.2f} ms to undo clock skew ({how})\n",
                style=self.palette.warning,
            )
        if span.attributes:
            out.append("attributes\n", style="bold")
            for key, value in span.attributes:
                out.append(f"  {key}", style=muted)
                out.append(f" = {clip(value, 200)}\n")
        if span.events:
            out.append("events\n", style="bold")
            for time, name, attrs in span.events:
                out.append(f"  +{(time - t0) / 1e6:.2f} ms {name}\n")
                for key, value in attrs:
                    out.append(f"    {key}", style=muted)
                    out.append(f" = {clip(value, 200)}\n")
        out.rstrip()
        panel.update(out)

    @on(DataTable.RowHighlighted, "#waterfall")
    def _span_highlighted(self) -> None:
        self.show_detail()

    def on_resize(self) -> None:
        self.query_one("#trace-body").set_class(self.app.size.width >= WIDE, "-wide")
        if self.view is not None:
            self.call_after_refresh(self.redraw)


# --- Runtimes ---------------------------------------------------------------------------------


class RuntimesPane(Pane):
    """Tail latency per runtime (from SERVER spans' self time) and how often each stalls."""

    def compose(self) -> ComposeResult:
        yield Static(id="runtimes-title", classes="title")
        yield DataTable(id="runtime-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        runtimes = self.data.report.runtimes
        self.query_one("#runtimes-title", Static).update(
            Text.assemble(
                ("Runtimes", "bold"),
                (
                    "  self time of SERVER spans; tail ratio = p99 / p50; "
                    "stall time in ms per minute per instance",
                    self.palette.muted,
                ),
            )
            if runtimes
            else Text("No runtime information in this input.", style=self.palette.muted)
        )
        table = self.query_one("#runtime-table", DataTable)
        table.clear(columns=True)
        labels = ("language", "runtime", "svc", "inst", "spans", "p50 ms", "p99 ms", "p99.9 ms")
        for label in labels:
            table.add_column(label, key=label)
        table.add_column("tail ratio", key="ratio")
        table.add_column("stalls", key="stalls")
        table.add_column("ms/min/inst", key="stall_rate")
        top_ratio = max((r.tail_ratio for r in runtimes), default=1.0) or 1.0
        for i, r in enumerate(runtimes):
            ratio = Text(horizontal_bar(r.tail_ratio / top_ratio, 8), style=self.palette.accent)
            ratio.append(f" {r.tail_ratio:5.1f}×")
            table.add_row(
                r.language,
                clip(r.runtime or "–", 18),
                right(str(r.services)),
                right(str(r.instances)),
                right(f"{r.spans:,}"),
                right(format_ms(r.p50_ms)),
                right(format_ms(r.p99_ms), "bold"),
                right(format_ms(r.p999_ms)),
                ratio,
                right(str(r.stalls), self.palette.stall if r.stalls else ""),
                right(f"{r.stall_ms_per_minute_per_instance:.1f}"),
                key=str(i),
            )


# --- Compare ----------------------------------------------------------------------------------

VERDICT_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}


class ComparePane(Pane):
    """Baseline vs current quantiles per operation with the gate's verdict for each, failures
    first (shown only when ``--baseline`` was given)."""

    def __init__(self, data: TriageData, palette: Palette, **kwargs: Any) -> None:
        super().__init__(data, palette, **kwargs)
        self.rows: list[QuantileComparison] = []

    @on(DataTable.RowHighlighted, "#compare-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self.rows[event.cursor_row]
        self.query_one("#compare-detail", Static).update(
            Text.assemble(
                (f"{row.name} {row.quantile_label}: ", "bold"),
                row.reason,
                (
                    f"  ({row.baseline_count:,} baseline / {row.current_count:,} current samples)",
                    self.palette.muted,
                ),
            )
        )

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="compare-detail", classes="title")

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        verdict = self.data.verdict
        title = self.query_one("#compare-title", Static)
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        if verdict is None:
            title.update("No baseline given (tailscope tui INPUT --baseline baseline.json).")
            return
        colour = {
            "fail": self.palette.stall,
            "inconclusive": self.palette.warning,
            "pass": self.palette.accent,
        }
        policy = verdict.policy
        allowance = " and ".join(
            part
            for part in (
                f"+{policy.max_increase_pct:g}%" if policy.max_increase_pct is not None else "",
                f"+{policy.max_increase_ms:g} ms" if policy.max_increase_ms is not None else "",
            )
            if part
        )
        title.update(
            Text.assemble(
                (verdict.summary(), f"bold {colour[verdict.verdict]}"),
                "\n",
                (
                    f"baseline {verdict.baseline_label or ''} {verdict.baseline_created}; "
                    f"fails when the whole {policy.confidence:.0%} interval of the change "
                    f"exceeds {allowance or 'the allowance'}",
                    self.palette.muted,
                ),
            )
        )
        for label in ("operation", "q", "baseline ms", "current ms", "change", "interval"):
            table.add_column(label, key=label)
        table.add_column("verdict", key="verdict")
        table.add_column("why", key="why")
        self.rows = sorted(
            verdict.rows,
            key=lambda r: (VERDICT_ORDER.get(r.verdict, 3), -(r.change_pct or 0.0)),
        )
        for i, row in enumerate(self.rows):
            interval = (
                f"[{row.interval_pct[0]:+.0f}, {row.interval_pct[1]:+.0f}]%"
                if row.interval_pct is not None
                else "–"
            )
            table.add_row(
                clip(row.name, 34),
                row.quantile_label,
                right(format_ms(row.baseline_ms) if row.baseline_ms is not None else "–"),
                right(format_ms(row.current_ms) if row.current_ms is not None else "–"),
                right(signed_percent(row.change_pct, missing="–"), "bold"),
                right(interval),
                Text(row.verdict.upper(), style=f"bold {colour[row.verdict]}"),
                clip(row.reason, 60),
                key=str(i),
            )
