"""Behaviour of ``tailscope tui`` driven by Textual's pilot: navigate, filter, sort, open traces
and go back, asserting on what the widgets hold. Data: the hand-built case of test_tui_sample."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from test_tui_sample import sample_report, sample_triage, trace_hex
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent

from tailscope.errors import InputError
from tailscope.tui.app import HelpScreen, TraceIdScreen, TraceListScreen, TriageApp, TriageScreen
from tailscope.tui.data import TriageData
from tailscope.tui.load import LoadProgress
from tailscope.tui.panes import FILTER_DELAY_S, OverviewPane, TracePane

SIZE = (100, 30)
FILTER_WAIT_S = FILTER_DELAY_S + 0.2
"""The filter applies once typing pauses; wait that long (plus slack) before looking."""


async def wait_until_loaded(app: TriageApp, pilot: Pilot[None]) -> None:
    """Let the loader's worker finish: the triage screen is up, or the app ended with a failure."""
    for _ in range(600):
        if app.failure is not None or not app.is_running:
            return
        if isinstance(app.screen, TriageScreen):
            await pilot.pause()  # let the new screen mount its panes
            return
        await pilot.pause(0.05)
    raise AssertionError("the loader did not finish within 30 s")


def cell_text(value: Any) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def rows(app: TriageApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[cell_text(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(app: TriageApp, selector: str) -> str:
    content = app.screen.query_one(selector, Static).render()
    return content.plain if isinstance(content, Text) else str(content)


def active_tab(app: TriageApp) -> str:
    return app.screen.query_one("#tabs", TabbedContent).active


def test_overview_lists_operations_by_p99_with_input_summary() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # GIVEN the sample report WHEN the app opens
            table = rows(app, "#operations")
            # THEN every operation is listed, slowest p99 first
            assert len(table) == len(sample_report().operations)
            p99s = [float(r[6].replace(",", "")) for r in table]
            assert p99s == sorted(p99s, reverse=True)
            assert table[0][:2] == ["frontend", "GET /checkout"]
            # AND the header says what was read and what was skipped, and why
            summary = static_text(app, "#summary")
            assert "42 spans" in summary and "6 traces" in summary
            assert "skipped 3" in summary and "truncated line 2" in summary
            # AND the distribution panel shows the highlighted operation's quantiles
            panel = static_text(app, "#distribution")
            assert "frontend · GET /checkout" in panel and "352.0 ms" in panel

    asyncio.run(run())


def test_overview_shows_the_models_verdict_first() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # GIVEN a report whose entry point has a verdict WHEN the app opens
            verdict = sample_report().roots[0].verdict
            assert verdict is not None
            # THEN the overview shows that sentence verbatim, with its entry point
            shown = " ".join(static_text(app, "#verdicts").split())
            assert shown == " ".join(f"frontend GET /checkout: {verdict.text}".split())
            # AND the hops pane labels the ranking status
            await pilot.press("2")
            await pilot.pause()
            assert rows(app, "#root-table")[0][-1] == "conclusive"

    asyncio.run(run())


def test_filter_by_typing_and_clear_with_escape() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # WHEN the user presses / and types two words
            await pilot.press("slash", *"inventory stock")
            await pilot.pause(FILTER_WAIT_S)
            # THEN only the matching operation is left, and the panel follows it
            assert [r[:2] for r in rows(app, "#operations")] == [["inventory", "GET /stock"]]
            assert "inventory · GET /stock" in static_text(app, "#distribution")
            # WHEN a filter matches nothing THEN the panel says so
            await pilot.press("x")
            await pilot.pause(FILTER_WAIT_S)
            assert rows(app, "#operations") == []
            assert "No operation matches" in static_text(app, "#distribution")
            # WHEN escape is pressed THEN the filter is cleared and hidden
            await pilot.press("escape")
            await pilot.pause(FILTER_WAIT_S)
            assert len(rows(app, "#operations")) == len(sample_report().operations)
            assert not app.screen.query_one("#filter", Input).display

    asyncio.run(run())


def test_sort_next_column_reverse_and_header_click() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            pane = app.screen.query_one(OverviewPane)
            # WHEN s is pressed THEN the table is sorted by the next column (p99.9), descending
            await pilot.press("s")
            await pilot.pause()
            assert (pane.sort_column, pane.descending) == ("p999_ms", True)
            p999 = [float(r[7].replace(",", "")) for r in rows(app, "#operations")]
            assert p999 == sorted(p999, reverse=True)
            # WHEN r is pressed THEN the order flips
            await pilot.press("r")
            await pilot.pause()
            p999 = [float(r[7].replace(",", "")) for r in rows(app, "#operations")]
            assert p999 == sorted(p999)
            # WHEN the "count" header is clicked THEN it sorts by count, largest first
            table = app.screen.query_one("#operations", DataTable)
            count_x = sum(c.get_render_width(table) for c in table.ordered_columns[:3]) + 2
            await pilot.click("#operations", offset=(count_x, 0))
            await pilot.pause()
            assert pane.sort_column == "count"
            counts = [int(r[3]) for r in rows(app, "#operations")]
            assert counts == sorted(counts, reverse=True)

    asyncio.run(run())


def test_hops_show_shares_per_root_and_open_exemplars() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # WHEN the user switches to the Hops screen
            await pilot.press("2")
            await pilot.pause()
            assert active_tab(app) == "hops"
            # THEN the first root's hops are listed with their tail share and interval
            hops = rows(app, "#hop-table")
            assert hops[0][0] == "inventory GET /stock"
            assert "86% [74, 95]" in hops[0][4]
            assert "81% [70, 92]" in hops[0][5]
            # WHEN the second (inconclusive) root is highlighted THEN it has no hops and says why
            await pilot.press("down")
            await pilot.pause()
            assert rows(app, "#hop-table") == []
            assert "too few tail requests" in static_text(app, "#hops-title")
            # WHEN the user goes back to the first root, into the hops, and presses Enter
            await pilot.press("up", "enter", "enter")
            await pilot.pause()
            # THEN the hop's exemplar traces are offered
            assert isinstance(app.screen, TraceListScreen)
            options = app.screen.query_one(OptionList)
            assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
                trace_hex(1),
                trace_hex(4),
            ]
            # WHEN the second one is chosen THEN the Trace screen shows it
            await pilot.press("down", "enter")
            await pilot.pause()
            assert active_tab(app) == "trace"
            view = app.screen.query_one(TracePane).view
            assert view is not None and view.trace_id == trace_hex(4)
            assert len(rows(app, "#waterfall")) == 7
            # WHEN escape is pressed THEN the user is back on the Hops screen
            await pilot.press("escape")
            await pilot.pause()
            assert active_tab(app) == "hops"

    asyncio.run(run())


def test_stalls_screen_timeline_cascades_and_opening_an_affected_trace() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("3")
            await pilot.pause()
            # THEN each stalled instance has a timeline line with its stall count and time
            timeline = static_text(app, "#timeline")
            assert "3 stall(s) on 2 instance(s)" in timeline
            inventory_line = next(ln for ln in timeline.splitlines() if "inventory-1" in ln)
            assert "2×" in inventory_line and "400.0 ms" in inventory_line
            # AND the cascade reads stall → timeouts → retries → roots
            cascade = rows(app, "#cascades")
            assert len(cascade) == 1
            assert cascade[0][0].startswith("inventory-1 +0.0s 280.0ms")
            assert cascade[0][1:5] == ["1", "1", "×2.00", "+281.0 ms"]
            assert rows(app, "#unexplained")[0][0] == "checkout → postgres"
            # WHEN Enter is pressed on the cascade and its first trace chosen
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TraceListScreen)
            await pilot.press("enter")
            await pilot.pause()
            # THEN the waterfall shows the stall overlaid on the inventory span
            assert active_tab(app) == "trace"
            waterfall = rows(app, "#waterfall")
            inventory = next(r for r in waterfall if "inventory: GET /stock" in r[0])
            assert "▓" in inventory[2] and "▓" in inventory[3]
            payments = next(r for r in waterfall if "payments" in r[0])
            assert "⇄" in payments[2]

    asyncio.run(run())


def test_trace_detail_follows_cursor_and_jump_by_id() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("4")
            await pilot.pause()
            # GIVEN the slowest exemplar opened by default WHEN the cursor moves to the
            # timed-out client call THEN the detail panel shows its error, attributes, events
            await pilot.press("down", "down", "down")
            await pilot.pause()
            detail = static_text(app, "#span-detail")
            assert "checkout: GET /stock" in detail
            assert "ERROR deadline exceeded" in detail
            assert "server.address = inventory" in detail
            assert "exception" in detail and "TimeoutException" in detail
            # WHEN t is pressed and a short id typed THEN that trace opens (zero-padded)
            await pilot.press("t", "5", "enter")
            await pilot.pause()
            view = app.screen.query_one(TracePane).view
            assert view is not None and view.trace_id == trace_hex(5)
            # WHEN an id that is not hex is typed THEN the prompt stays and says so
            await pilot.press("t", *"zz", "enter")
            await pilot.pause()
            assert isinstance(app.screen, TraceIdScreen)
            assert "not a trace id" in str(app.screen.query_one("#trace-id-error").render())
            await pilot.press("escape")
            # WHEN an unknown id is typed THEN the Trace screen says it is not in the input
            await pilot.press("t", *"abc", "enter")
            await pilot.pause()
            assert app.screen.query_one(TracePane).view is None
            assert "is not in the input" in static_text(app, "#trace-title")

    asyncio.run(run())


def test_runtimes_help_and_quit() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("5")
            await pilot.pause()
            runtimes = rows(app, "#runtime-table")
            assert [r[0] for r in runtimes] == ["java", "go", "rust"]
            assert runtimes[0][8].endswith("15.3×")
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, TriageScreen)
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    asyncio.run(run())


def test_every_screen_draws_at_80x24() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for key, tab in zip(
                "12345", ("overview", "hops", "stalls", "trace", "runtimes"), strict=True
            ):
                await pilot.press(key)
                await pilot.pause()
                assert active_tab(app) == tab
            # the waterfall bars fit: name + ms + marks + bar stay within 80 cells
            pane = app.screen.query_one(TracePane)
            assert pane.bar_width() + pane._name_width() + 9 + 4 <= 80

    asyncio.run(run())


def test_theme_change_recolours_graphics() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.theme = "textual-light"
            await pilot.pause()
            pane = app.screen.query_one(OverviewPane)
            assert pane.palette.accent == app.current_theme.primary
            assert not app.current_theme.dark

    asyncio.run(run())


class _Progress(LoadProgress):
    pass


def test_loader_runs_in_a_worker_and_shows_the_data() -> None:
    async def run() -> None:
        seen: list[str] = []

        def loader(progress: LoadProgress) -> TriageData:
            progress.start("sample.otlp.json", 100)
            progress.advance(100)
            progress.finish()
            progress.stage("Analysing")
            seen.append("loaded")
            return sample_triage()

        app = TriageApp(loader=loader)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until_loaded(app, pilot)
            assert seen == ["loaded"]
            assert isinstance(app.screen, TriageScreen)
            assert len(rows(app, "#operations")) == len(sample_report().operations)

    asyncio.run(run())


def test_loader_error_ends_the_app_with_the_typed_error() -> None:
    async def run() -> None:
        def loader(progress: LoadProgress) -> TriageData:
            raise InputError("no spans could be read from empty.json")

        app = TriageApp(loader=loader)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until_loaded(app, pilot)
        assert isinstance(app.failure, InputError)
        assert app.return_code == 2

    asyncio.run(run())


def test_report_without_spans_says_traces_are_unavailable() -> None:
    async def run() -> None:
        app = TriageApp(data=TriageData(report=sample_report()))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("4")
            await pilot.pause()
            assert "not available" in static_text(app, "#trace-title")
            assert rows(app, "#waterfall") == []

    asyncio.run(run())


def test_compare_lists_gate_rows_failures_first() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage(with_verdict=True))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # WHEN the user opens the Compare screen (a baseline was given)
            await pilot.press("6")
            await pilot.pause()
            assert active_tab(app) == "compare"
            # THEN the overall verdict heads it and rows come failures first
            assert static_text(app, "#compare-title").startswith("FAIL: 1 operation(s) gated")
            table = rows(app, "#compare-table")
            assert [(r[1], r[6]) for r in table] == [
                ("p99", "FAIL"),
                ("p99.9", "INCONCLUSIVE"),
                ("p50", "PASS"),
            ]
            # AND the change is current vs baseline (hand-computed: 352 / 120 - 1 = +193.3 %)
            assert table[0][2:5] == ["120.0", "352.0", "+193.3%"]
            # AND the highlighted row's full reason is spelled out below the table
            assert "whole interval > +10%" in static_text(app, "#compare-detail")

    asyncio.run(run())


def test_compare_is_absent_without_a_baseline() -> None:
    async def run() -> None:
        app = TriageApp(data=sample_triage())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("6")
            await pilot.pause()
            assert active_tab(app) == "overview"
            assert not app.screen.query("#compare-table")

    asyncio.run(run())
