"""The triage app: a loading screen while a worker thread reads and analyses the input, then one
screen of tabs (Overview, Hops, Stalls, Trace, Runtimes) drawing a :class:`TriageData`.

The app is given either the data itself (tests, callers that already analysed) or a loader, a
function that builds the data and reports progress; the loader runs in a Textual thread worker
so the interface keeps drawing while a large file is read. A :class:`TailscopeError` raised by
the loader ends the app and is kept in :attr:`TriageApp.failure` for the CLI to report.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.theme import Theme
from textual.widgets import (
    Footer,
    Header,
    Input,
    Label,
    LoadingIndicator,
    OptionList,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from tailscope.errors import TailscopeError
from tailscope.report.model import InputSummary
from tailscope.tui.bars import Palette, format_ms
from tailscope.tui.data import TraceSummary, TriageData, normalise_trace_id, trace_summaries
from tailscope.tui.load import Loader, LoadProgress
from tailscope.tui.panes import (
    ComparePane,
    HopsPane,
    OpenTraces,
    OverviewPane,
    Pane,
    RuntimesPane,
    StallsPane,
    TracePane,
)

TABS: tuple[tuple[str, str], ...] = (
    ("overview", "1 Overview"),
    ("hops", "2 Hops"),
    ("stalls", "3 Stalls"),
    ("trace", "4 Trace"),
    ("runtimes", "5 Runtimes"),
    ("compare", "6 Compare"),
)

HELP = """\
[b]tailscope tui[/b]: why did p99 go bad?

[b]Screens[/b]
  1  Overview   every operation: count, error rate, p50/p99/p99.9
  2  Hops       per root operation: each hop's share of the p99 tail and variance
  3  Stalls     stop-the-world pauses, the timeout/retry cascades they started
  4  Trace      waterfall of one trace, critical path highlighted
  5  Runtimes   tail latency per language runtime
  6  Compare    baseline vs current quantiles with the gate's verdicts (--baseline)

[b]Keys[/b]
  1-6          switch screens (mouse: click the tabs)
  ↑ ↓ PgUp PgDn move in a table;  Enter opens (traces of a row)
  /            filter operations by service or operation words
  s / r        sort by the next column / reverse (or click a column header)
  t            open a trace by id
  escape, b    back to where you came from
  ctrl+p       command palette (themes: light and dark)
  ?            this help        q  quit

[b]Waterfall[/b]  █ on the critical path   ▓ stall window   ⇄ shifted for clock skew   ! error
"""


def palette_for(theme: Theme) -> Palette:
    """Graphics colours from a Textual theme, so bars follow light and dark themes."""
    return Palette(
        accent=theme.primary,
        critical=theme.accent or theme.secondary or theme.primary,
        stall=theme.error or "red",
        warning=theme.warning or "yellow",
        muted="grey50",
    )


def summary_text(summary: InputSummary) -> Text:
    """The header line: what was read and what was skipped (and why)."""
    text = Text()
    files = summary.files[0] if len(summary.files) == 1 else f"{len(summary.files)} files"
    text.append(f"{files}: ", style="bold")
    text.append(
        f"{summary.spans:,} spans · {summary.traces:,} traces · {summary.services} services"
    )
    if summary.skipped_records:
        reasons = sorted(summary.skipped_by_reason.items(), key=lambda kv: -kv[1])[:3]
        why = ", ".join(f"{reason} {n:,}" for reason, n in reasons)
        text.append(f" · skipped {summary.skipped_records:,}", style="bold red")
        if why:
            text.append(f" ({why})")
    if summary.duplicate_spans:
        text.append(f" · {summary.duplicate_spans:,} duplicates")
    if summary.orphan_spans:
        text.append(f" · {summary.orphan_spans:,} orphans")
    if summary.skew_adjustments:
        text.append(f" · {summary.skew_adjustments:,} skew adjustments")
    return text


class HelpScreen(ModalScreen[None]):
    """Screens and keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(HELP, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


class TraceListScreen(ModalScreen[str | None]):
    """Pick one of several traces (exemplars, a cascade's affected traces)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Back")]

    def __init__(
        self, title: str, trace_ids: tuple[str, ...], summaries: dict[str, TraceSummary]
    ) -> None:
        super().__init__()
        self.title_text = title
        self.trace_ids = trace_ids
        self.summaries = summaries

    def compose(self) -> ComposeResult:
        # Slowest first when the traces are loaded; the rest keep the report's order.
        known = sorted(
            (t for t in self.trace_ids if t in self.summaries),
            key=lambda t: -self.summaries[t].duration_ms,
        )
        ordered = known + [t for t in self.trace_ids if t not in self.summaries]
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text, style="bold"))
            yield Label(
                f"{len(self.trace_ids)} trace(s), slowest first; Enter opens one, escape goes back"
            )
            yield OptionList(*[self._option(t) for t in ordered], id="trace-list")

    def _option(self, trace_id: str) -> Option:
        summary = self.summaries.get(trace_id)
        if summary is None:
            return Option(Text.assemble(trace_id, ("  not in the input", "dim")), id=trace_id)
        label = Text.assemble(
            trace_id,
            (f" {format_ms(summary.duration_ms):>8} ms", "bold"),
            f" {summary.spans:>4} spans",
            (f" {summary.errors:>3} err" if summary.errors else "        ", "red"),
            f"  {summary.root}",
        )
        # One line per trace: the dialog is 95 % of the screen (at most 120) minus its frame.
        label.truncate(max(min(self.app.size.width * 95 // 100, 120) - 14, 40), overflow="ellipsis")
        return Option(label, id=trace_id)

    @on(OptionList.OptionSelected, "#trace-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TraceIdScreen(ModalScreen[str | None]):
    """Type a trace id to open."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Back")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Open trace: 32 hex digits (shorter ids are zero-padded)")
            yield Input(placeholder="trace id", id="trace-id")
            yield Label("", id="trace-id-error")

    @on(Input.Submitted, "#trace-id")
    def _submitted(self, event: Input.Submitted) -> None:
        trace_id = normalise_trace_id(event.value)
        if trace_id is None:
            self.query_one("#trace-id-error", Label).update(f"not a trace id: {event.value!r}")
            return
        self.dismiss(trace_id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LoadingScreen(Screen[None]):
    """Shown while the worker reads and analyses the input: stage, bytes read, time spent."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="loading"):
            yield Label("Reading traces…", id="loading-stage")
            yield ProgressBar(id="loading-bar", show_eta=False)
            yield Label("", id="loading-elapsed")
            yield LoadingIndicator()
        yield Footer()

    def on_mount(self) -> None:
        self.started = time.monotonic()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        elapsed = time.monotonic() - self.started
        self.query_one("#loading-elapsed", Label).update(f"{elapsed:.0f} s  (q quits)")


class TriageScreen(Screen[None]):
    """The tabs, the input summary and the key bindings shared by every tab."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('overview')", "Overview", show=False),
        Binding("2", "show('hops')", "Hops", show=False),
        Binding("3", "show('stalls')", "Stalls", show=False),
        Binding("4", "show('trace')", "Trace", show=False),
        Binding("5", "show('runtimes')", "Runtimes", show=False),
        Binding("6", "show('compare')", "Compare", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("t", "open_trace", "Trace id"),
        Binding("escape,b", "back", "Back"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, data: TriageData) -> None:
        super().__init__()
        self.data = data
        self.history: list[str] = []
        self.current_tab = "overview"
        self.returning = False

    def compose(self) -> ComposeResult:
        palette = palette_for(self.app.current_theme)
        yield Header()
        yield Static(summary_text(self.data.report.input), id="summary")
        with TabbedContent(initial="overview", id="tabs"):
            panes: dict[str, Pane] = {
                "overview": OverviewPane(self.data, palette, id="overview-pane"),
                "hops": HopsPane(self.data, palette, id="hops-pane"),
                "stalls": StallsPane(self.data, palette, id="stalls-pane"),
                "trace": TracePane(self.data, palette, id="trace-pane"),
                "runtimes": RuntimesPane(self.data, palette, id="runtimes-pane"),
                "compare": ComparePane(self.data, palette, id="compare-pane"),
            }
            for tab_id, title in TABS:
                if tab_id == "compare" and self.data.verdict is None:
                    continue
                with TabPane(title, id=tab_id):
                    yield panes[tab_id]
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)
        first = self._first_trace()
        if first is not None:
            self.query_one(TracePane).show_trace(first)
        self.query_one("#operations").focus()

    def _first_trace(self) -> str | None:
        """The slowest exemplar of the slowest root operation: something to show on tab 4."""
        roots = [op for op in self.data.report.operations if op.is_root and op.exemplar_trace_ids]
        pool = roots or [op for op in self.data.report.operations if op.exemplar_trace_ids]
        if not pool:
            return None
        return max(pool, key=lambda op: op.p99_ms).exemplar_trace_ids[0]

    def _theme_changed(self) -> None:
        palette = palette_for(self.app.current_theme)
        for pane in self.query(Pane):
            pane.set_palette(palette)

    def action_show(self, tab: str) -> None:
        if tab == "compare" and self.data.verdict is None:
            self.notify("No baseline given: start with --baseline baseline.json to compare.")
            return
        self.query_one("#tabs", TabbedContent).active = tab
        self._focus_tab(tab)

    def _focus_tab(self, tab: str) -> None:
        first_table = {
            "overview": "#operations",
            "hops": "#root-table",
            "stalls": "#cascades",
            "trace": "#waterfall",
            "runtimes": "#runtime-table",
            "compare": "#compare-table",
        }[tab]
        self.query_one(first_table).focus()

    def action_back(self) -> None:
        while self.history:
            tab = self.history.pop()
            if tab != self.current_tab:
                self.returning = True
                self.action_show(tab)
                return

    def action_filter(self) -> None:
        self.action_show("overview")
        self.query_one(OverviewPane).open_filter()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_open_trace(self) -> None:
        self.app.push_screen(TraceIdScreen(), self.open_trace)

    def open_trace(self, trace_id: str | None) -> None:
        """Show ``trace_id`` on the Trace tab (None: the user cancelled)."""
        if trace_id is None:
            return
        if not self.query_one(TracePane).show_trace(trace_id):
            self.notify(f"trace {trace_id} is not in the input", severity="warning")
        self.action_show("trace")

    @on(OpenTraces)
    def _open_traces(self, message: OpenTraces) -> None:
        if len(message.trace_ids) == 1:
            self.open_trace(message.trace_ids[0])
        else:
            summaries = trace_summaries(self.data, message.trace_ids)
            self.app.push_screen(
                TraceListScreen(message.title, message.trace_ids, summaries), self.open_trace
            )

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Remember where we came from (keys, mouse or Enter) so escape can go back."""
        tab = event.pane.id or "overview"
        if tab != self.current_tab and not self.returning:
            self.history.append(self.current_tab)
        self.returning = False
        self.current_tab = tab


class _ThreadProgress(LoadProgress):
    """Forwards the readers' byte counts from the worker thread to the loading screen."""

    def __init__(self, app: TriageApp) -> None:
        self.app = app
        self.description = ""
        self.total: int | None = None
        self.done = 0
        self.reported = 0

    def start(self, description: str, total_bytes: int | None) -> None:
        self.description, self.total, self.done, self.reported = description, total_bytes, 0, 0
        self.app.call_from_thread(self.app.show_progress, f"Reading {description}", total_bytes, 0)

    def advance(self, n_bytes: int) -> None:
        self.done += n_bytes
        # Redraw at most every 1 % (or 4 MiB when the size is unknown), not per batch.
        step = (self.total or 0) // 100 or 4 << 20
        if self.done - self.reported >= step:
            self.reported = self.done
            self.app.call_from_thread(
                self.app.show_progress, f"Reading {self.description}", self.total, self.done
            )

    def finish(self) -> None:
        self.app.call_from_thread(
            self.app.show_progress, f"Read {self.description}", self.total, self.done
        )

    def stage(self, text: str) -> None:
        self.app.call_from_thread(self.app.show_progress, text, None, 0)


class TriageApp(App[None]):
    """``tailscope tui``: interactive p99 triage of one analysed input."""

    TITLE = "tailscope"
    CSS_PATH = "triage.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(
        self,
        data: TriageData | None = None,
        loader: Loader | None = None,
        subtitle: str = "",
    ) -> None:
        super().__init__()
        if (data is None) == (loader is None):
            raise ValueError("give exactly one of data or loader")
        self.data = data
        self.loader = loader
        self.sub_title = subtitle
        self.failure: TailscopeError | None = None

    def on_mount(self) -> None:
        if self.data is not None:
            self.push_screen(TriageScreen(self.data))
        else:
            self.push_screen(LoadingScreen())
            self.load()

    @work(thread=True, exclusive=True, name="load")
    def load(self) -> None:
        assert self.loader is not None
        try:
            data = self.loader(_ThreadProgress(self))
        except TailscopeError as exc:
            self.call_from_thread(self._failed, exc)
            return
        self.call_from_thread(self._loaded, data)

    def show_progress(self, stage: str, total: int | None, done: int) -> None:
        """Update the loading screen (called on the app thread)."""
        if not isinstance(self.screen, LoadingScreen):
            return
        self.screen.query_one("#loading-stage", Label).update(stage)
        self.screen.query_one("#loading-bar", ProgressBar).update(total=total, progress=done)

    def _loaded(self, data: TriageData) -> None:
        self.data = data
        self.switch_screen(TriageScreen(data))

    def _failed(self, exc: TailscopeError) -> None:
        self.failure = exc
        self.exit(return_code=exc.exit_code)
