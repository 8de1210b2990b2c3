"""``tailscope tui`` on real fixture files through the real pipeline (ingest → analyze → gate):
the loader in the worker, drill-down from a cascade into a trace, and the Compare screen.

Span counts and root durations are checked against the fixture parsed independently here with
gzip + json (no tailscope code); the fixture's size against fixtures/README.md.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest
from repo_paths import REPO as _REPO
from test_tui_app import wait_until_loaded
from textual.widgets import DataTable, OptionList, Static, TabbedContent

from tailscope.errors import BaselineError, InputError
from tailscope.gate import build_baseline, encode_baseline
from tailscope.ingest import read_spans
from tailscope.tui.app import TraceListScreen, TriageApp, TriageScreen
from tailscope.tui.data import TriageData, trace_view
from tailscope.tui.load import LoadProgress, triage_loader
from tailscope.tui.panes import TracePane

REPO = _REPO
GC_CASCADE = REPO / "fixtures" / "gc-cascade.jsonl.gz"
STEADY = REPO / "fixtures" / "steady.jsonl.gz"
SIZE = (120, 35)


class _Recorder(LoadProgress):
    """Keeps what the loader reported, to check the loading screen is fed."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.bytes_read = 0

    def advance(self, n_bytes: int) -> None:
        self.bytes_read += n_bytes

    def stage(self, text: str) -> None:
        self.stages.append(text)


@pytest.fixture(scope="module")
def gc_cascade() -> TriageData:
    return triage_loader([str(GC_CASCADE)])(LoadProgress())


def spans_by_trace(path: Path) -> dict[str, list[dict[str, object]]]:
    """Spans of an OTLP/JSON Lines export by trace id, parsed with json alone (the reference)."""
    by_trace: dict[str, list[dict[str, object]]] = defaultdict(list)
    with gzip.open(path, "rt") as lines:
        for line in lines:
            for resource in json.loads(line).get("resourceSpans", []):
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        by_trace[span["traceId"].lower()].append(span)
    return by_trace


@pytest.fixture(scope="module")
def reference_spans() -> dict[str, list[dict[str, object]]]:
    return spans_by_trace(GC_CASCADE)


def test_loader_reads_analyses_and_reports_progress() -> None:
    # GIVEN the (small) steady fixture WHEN the TUI's loader runs
    progress = _Recorder()
    data = triage_loader([str(STEADY)])(progress)
    # THEN the report covers every span and trace of the fixture (parsed independently)
    reference = spans_by_trace(STEADY)
    spans = sum(len(v) for v in reference.values())
    assert (data.report.input.spans, data.report.input.traces) == (spans, len(reference))
    assert data.report.input.traces == 1_500  # fixtures/README.md
    assert data.spans is not None and data.spans.height == spans
    assert data.path is not None and data.path.height > 0
    # AND the loading screen was told about bytes and the analysis stage
    assert progress.bytes_read > 0
    assert any(stage.startswith(f"Analysing {spans:,} spans") for stage in progress.stages)


def test_waterfall_matches_the_fixture(
    gc_cascade: TriageData, reference_spans: dict[str, list[dict[str, object]]]
) -> None:
    # GIVEN the first affected trace of the worst cascade
    assert gc_cascade.report.cascades, "the gc-cascade fixture has cascades"
    trace_id = gc_cascade.report.cascades[0].trace_ids[0]
    view = trace_view(gc_cascade, trace_id)
    assert view is not None
    reference = reference_spans[trace_id]
    # THEN the waterfall holds exactly the trace's spans, each once
    assert sorted(w.span_id for w in view.spans) == sorted(
        str(s["spanId"]).lower() for s in reference
    )
    # AND its first row is the root, with the root's exported duration (skew moves, never
    # stretches spans), and the critical path adds up to that duration (1 µs tolerance)
    root = next(s for s in reference if not s.get("parentSpanId"))
    root_ms = (int(str(root["endTimeUnixNano"])) - int(str(root["startTimeUnixNano"]))) / 1e6
    assert view.spans[0].span_id == str(root["spanId"]).lower()
    assert abs(view.spans[0].duration_ms - root_ms) < 1e-3
    assert abs(view.critical_path_ms - root_ms) < 1e-3
    # AND every child comes after its parent
    position = {w.span_id: i for i, w in enumerate(view.spans)}
    for w in view.spans:
        if w.parent_span_id in position:
            assert position[w.parent_span_id] < position[w.span_id]


def test_drill_down_from_cascade_to_trace_in_the_app(
    gc_cascade: TriageData, reference_spans: dict[str, list[dict[str, object]]]
) -> None:
    async def run() -> None:
        app = TriageApp(data=gc_cascade)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            # WHEN the user opens the Stalls screen THEN every cascade is listed
            await pilot.press("3")
            await pilot.pause()
            cascades = app.screen.query_one("#cascades", DataTable)
            assert cascades.row_count == len(gc_cascade.report.cascades)
            # WHEN Enter is pressed on the first cascade THEN its affected traces are offered
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TraceListScreen)
            expected = gc_cascade.report.cascades[0].trace_ids
            options = app.screen.query_one(OptionList)
            offered = [str(options.get_option_at_index(i).id) for i in range(options.option_count)]
            assert sorted(offered) == sorted(expected)
            # WHEN the first (slowest) is opened THEN the waterfall shows all of its spans
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen.query_one("#tabs", TabbedContent).active == "trace"
            pane = app.screen.query_one(TracePane)
            assert pane.view is not None and pane.view.trace_id == offered[0]
            waterfall = app.screen.query_one("#waterfall", DataTable)
            assert waterfall.row_count == len(reference_spans[offered[0]])
            # AND escape returns to the cascades
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen.query_one("#tabs", TabbedContent).active == "stalls"

    asyncio.run(run())


def test_app_with_loader_and_baseline_shows_compare(tmp_path: Path) -> None:
    # GIVEN a baseline made from the steady fixture (same system, no long pauses)
    steady = read_spans([str(STEADY)]).table
    baseline = tmp_path / "steady.baseline.json"
    baseline.write_bytes(
        encode_baseline(
            build_baseline(
                steady, label="steady", created="2026-01-15T00:00:00Z", tailscope_version="0.1.0"
            )
        )
    )

    async def run() -> None:
        app = TriageApp(loader=triage_loader([str(GC_CASCADE)], baseline=baseline))
        async with app.run_test(size=SIZE) as pilot:
            await wait_until_loaded(app, pilot)
            assert isinstance(app.screen, TriageScreen)
            verdict = app.screen.data.verdict
            assert verdict is not None
            # WHEN the user opens Compare
            await pilot.press("6")
            await pilot.pause()
            # THEN every gated row is there, failures first, headed by the overall verdict
            table = app.screen.query_one("#compare-table", DataTable)
            assert table.row_count == len(verdict.rows)
            shown = [str(table.get_row_at(i)[6]) for i in range(table.row_count)]
            order = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
            assert [order[v] for v in shown] == sorted(order[v] for v in shown)
            # the gc-cascade root p99 is far above steady's: the gate fails it
            assert verdict.verdict == "fail" and shown[0] == "FAIL"
            title = str(app.screen.query_one("#compare-title", Static).render())
            assert title.startswith("FAIL")

    asyncio.run(run())


def test_bad_baseline_and_bad_input_end_the_app_with_typed_errors(tmp_path: Path) -> None:
    not_a_baseline = tmp_path / "baseline.json"
    not_a_baseline.write_text('{"hello": 1}')
    not_traces = tmp_path / "notes.txt"
    not_traces.write_text("just some words\n")

    async def run(app: TriageApp) -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until_loaded(app, pilot)

    # GIVEN a file that is not a baseline WHEN the app loads THEN it ends with a BaselineError
    app = TriageApp(loader=triage_loader([str(GC_CASCADE)], baseline=not_a_baseline))
    asyncio.run(run(app))
    assert isinstance(app.failure, BaselineError) and "not a tailscope baseline" in str(app.failure)
    assert app.return_code == 2
    # GIVEN an input that is not a trace export THEN it ends with an InputError (exit 2)
    app = TriageApp(loader=triage_loader([str(not_traces)]))
    asyncio.run(run(app))
    assert isinstance(app.failure, InputError)
    assert app.return_code == 2


def test_tui_and_cli_run_the_same_gate(tmp_path: Path) -> None:
    import subprocess
    import sys

    # GIVEN a baseline of the steady fixture and the gc-cascade run
    baseline = tmp_path / "steady.baseline.json"
    baseline.write_bytes(
        encode_baseline(
            build_baseline(
                read_spans([str(STEADY)]).table,
                label="steady",
                created="2026-01-15T00:00:00Z",
                tailscope_version="0.1.0",
            )
        )
    )
    # WHEN the TUI loader gates it (Compare screen) and the CLI gates it at the same quantiles
    data = triage_loader([str(GC_CASCADE)], baseline=baseline)(LoadProgress())
    verdict = data.report.gate
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailscope",
            "gate",
            str(GC_CASCADE),
            "-b",
            str(baseline),
            "--quantile",
            "0.5",
            "--quantile",
            "0.99",
            "--quantile",
            "0.999",
            "--format",
            "json",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN the report model carries the verdict, and it is the CLI's, row for row
    assert verdict is not None and data.verdict is verdict
    assert done.returncode == (1 if verdict.failed else 0), done.stderr
    document = json.loads(done.stdout)
    assert document["verdict"] == verdict.verdict
    cli_rows = {(r["name"], r["quantile"]): r for r in document["rows"]}
    assert len(cli_rows) == len(verdict.rows)
    for row in verdict.rows:
        cli = cli_rows[(row.name, row.quantile)]
        assert cli["verdict"] == row.verdict
        for key in ("baseline_ms", "current_ms"):
            if getattr(row, key) is None:
                assert cli[key] is None
            else:
                assert cli[key] == pytest.approx(getattr(row, key), rel=1e-9)
