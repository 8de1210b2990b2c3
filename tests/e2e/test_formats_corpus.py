"""Every Jaeger and Zipkin file of the public corpus loads with the counts SOURCES.md states,
directly through each reader and through the dispatcher; the one trace present in both OTLP and
Jaeger form gives the same spans and the same critical path; ``tailscope analyze`` runs on each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pytest
from repo_paths import CORPUS as _CORPUS
from typer.testing import CliRunner

from tailscope import schema as s
from tailscope.analysis.critical_path import critical_path
from tailscope.analysis.traces import with_roots
from tailscope.cli.app import app
from tailscope.ingest import jaeger, read_spans, zipkin
from tailscope.ingest.model import IngestStats

CORPUS = _CORPUS
JAEGER = CORPUS / "jaeger"
ZIPKIN = CORPUS / "zipkin"

# Jaeger: file -> (spans, traces, services). Spans and traces as SOURCES.md states them;
# services counted by hand from each file's process table.
JAEGER_EXPECTED = {
    "jaeger-ui-TraceFlamegraph-testTrace.json": (4, 1, 2),
    "jaeger-ui-TraceStatistics-tableValuesTestTrace-spanAmongEachOtherGroupedAndSpans.json": (
        17,
        1,
        2,
    ),
    "jaeger-ui-TraceStatistics-tableValuesTestTrace-spansAmongEachOther.json": (12, 1, 2),
    "jaeger-ui-TraceStatistics-tableValuesTestTrace-spanLongerAsParent.json": (8, 1, 2),
    "jaeger-ui-TraceGraph-testTrace.json": (11, 1, 2),
    "jaeger-ui-TraceTimelineViewer-genaiTestTrace.json": (57, 1, 10),
    "jaeger-ui-oltp2jaeger-multi-out.json": (4, 1, 1),
    "jaeger-ui_01.json": (5, 1, 2),
    "jaeger-domain_01.json": (5, 1, 2),
}

# Zipkin: file -> (records, spans, traces, services, fragments merged, missing duration).
# Records, traces and services as SOURCES.md states them. Spans are distinct (trace id, span id)
# pairs with shared server halves counted apart: computed independently in _zipkin_reference.
# smartthings-mobile: its 84 timestamp-less records are fragments of shared server halves
# (SOURCES: "84 spans lack timestamp"), and 175 - 84 = 91 timestamped spans lack a duration.
ZIPKIN_EXPECTED = {
    "smartthings-mobile-web-install.json": (1041, 957, 1, 16, 84, 91),
    "smartthings-oauth-authorization.json": (175, 175, 1, 8, 0, 19),
    "yelp.json": (16, 16, 1, 6, 0, 0),
    "messaging-kafka.json": (28, 28, 1, 2, 0, 0),
    "messaging.json": (4, 4, 1, 2, 0, 0),
    "messaging2.json": (11, 11, 1, 4, 0, 0),
    "ascend.json": (8, 8, 1, 3, 0, 0),
    "skew.json": (4, 4, 1, 2, 0, 0),
    "simple-db-p6.json": (5, 5, 1, 1, 0, 0),
    "envoy.json": (1, 1, 1, 1, 0, 0),
}


def _counts(table: pa.Table) -> tuple[int, int, int]:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    spans = frame.select(s.TRACE_ID, s.SPAN_ID).n_unique()
    return spans, frame[s.TRACE_ID].n_unique(), frame[s.SERVICE].n_unique()


def test_corpus_lists_are_complete() -> None:
    assert sorted(p.name for p in JAEGER.glob("*.json")) == sorted(JAEGER_EXPECTED)
    assert sorted(p.name for p in ZIPKIN.glob("*.json")) == sorted(ZIPKIN_EXPECTED)


@pytest.mark.parametrize("name", sorted(JAEGER_EXPECTED))
def test_jaeger_file_loads_with_stated_counts(name: str) -> None:
    data = (JAEGER / name).read_bytes()
    assert jaeger.sniff(data[:65536])
    assert not zipkin.sniff(data[:65536])
    stats = IngestStats()
    table = jaeger.read(data, name, stats)
    assert table.schema == s.SPAN_SCHEMA
    spans, traces, services = JAEGER_EXPECTED[name]
    assert _counts(table) == (spans, traces, services)
    assert table.num_rows == spans
    assert stats.records == spans
    assert stats.skipped_records == 0

    result = read_spans([str(JAEGER / name)])
    assert result.table.num_rows == spans
    assert result.stats.duplicates_dropped == 0
    assert _counts(result.table) == (spans, traces, services)


@pytest.mark.parametrize("name", sorted(ZIPKIN_EXPECTED))
def test_zipkin_file_loads_with_stated_counts(name: str) -> None:
    records, spans, traces, services, fragments, no_duration = ZIPKIN_EXPECTED[name]
    data = (ZIPKIN / name).read_bytes()
    assert zipkin.sniff(data[:65536])
    assert not jaeger.sniff(data[:65536])
    assert _zipkin_reference(data) == (records, spans, fragments)
    stats = IngestStats()
    table = zipkin.read(data, name, stats)
    assert table.schema == s.SPAN_SCHEMA
    assert _counts(table) == (spans, traces, services)
    assert stats.records == records
    assert stats.skipped_records == 0
    assert stats.duplicates_dropped == fragments
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    flagged = frame[s.ATTRIBUTES].list.eval(
        pl.element().struct.field("key") == zipkin.DURATION_MISSING_KEY
    )
    assert int(flagged.list.any().sum()) == no_duration

    result = read_spans([str(ZIPKIN / name)])
    assert result.table.num_rows == spans
    assert result.stats.records == records
    assert result.stats.records == spans + result.stats.duplicates_dropped
    assert _counts(result.table) == (spans, traces, services)


def _zipkin_reference(data: bytes) -> tuple[int, int, int]:
    """(records, spans, fragments) counted with plain json: a span is a distinct (trace id, id,
    shared, local endpoint, timestamp); a fragment is a record without a timestamp."""
    import json

    records = json.loads(data)
    timestamped = {
        (
            r["traceId"].rjust(32, "0"),
            r["id"].rjust(16, "0"),
            bool(r.get("shared")),
            json.dumps(r.get("localEndpoint"), sort_keys=True),
            r["timestamp"],
        )
        for r in records
        if "timestamp" in r
    }
    return len(records), len(timestamped), sum(1 for r in records if "timestamp" not in r)


def test_zipkin_trees_are_whole_where_the_file_is_whole() -> None:
    """Re-parenting under shared halves must not orphan anything: the real SmartThings traces
    and yelp have exactly one root each."""
    for name in ("smartthings-mobile-web-install.json", "smartthings-oauth-authorization.json"):
        frame = pl.from_arrow(read_spans([str(ZIPKIN / name)]).table)
        assert isinstance(frame, pl.DataFrame)
        rooted = with_roots(frame)
        assert int(rooted["is_root"].sum()) == 1, name
        assert int(rooted["is_orphan"].sum()) == 0, name


COMPARED = [
    s.TRACE_ID,
    s.SPAN_ID,
    s.PARENT_SPAN_ID,
    s.NAME,
    s.START,
    s.END,
    s.STATUS_CODE,
    s.SERVICE,
    s.LANGUAGE,
    s.SCOPE_NAME,
    s.SCOPE_VERSION,
]


def _frame(path: Path) -> pl.DataFrame:
    frame = pl.from_arrow(read_spans([str(path)]).table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String)).sort(s.SPAN_ID)


def test_same_trace_in_otlp_and_jaeger_gives_the_same_spans() -> None:
    otlp = _frame(CORPUS / "otlp" / "jaeger-ui-otlp2jaeger-multi-in-combined.json")
    jaeger_ui = _frame(JAEGER / "jaeger-ui-oltp2jaeger-multi-out.json")
    assert otlp.height == jaeger_ui.height == 4
    # Jaeger JSON has microsecond resolution: the OTLP end times carry sub-microsecond digits
    # that the Jaeger export truncated (starts are whole microseconds in both).
    assert _to_us(otlp.select(COMPARED), s.END).equals(_to_us(jaeger_ui.select(COMPARED), s.END))
    assert (otlp[s.END] - jaeger_ui[s.END]).is_between(0, 999).all()


def _to_us(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.with_columns(pl.col(c) // 1000 for c in columns)


def test_same_trace_in_otlp_and_jaeger_gives_the_same_critical_path() -> None:
    def path(file: Path) -> pl.DataFrame:
        segments = pl.from_arrow(critical_path(read_spans([str(file)]).table))
        assert isinstance(segments, pl.DataFrame)
        return segments.with_columns(pl.col(pl.Categorical).cast(pl.String)).sort(
            "trace_id", "seg_start"
        )

    otlp = path(CORPUS / "otlp" / "jaeger-ui-otlp2jaeger-multi-in-combined.json")
    jaeger_ui = path(JAEGER / "jaeger-ui-oltp2jaeger-multi-out.json")
    assert otlp.height > 0
    assert _to_us(otlp, "seg_start", "seg_end").equals(_to_us(jaeger_ui, "seg_start", "seg_end"))
    # Segments of the root partition its duration (176.321 ms in the Jaeger file).
    total = int((jaeger_ui["seg_end"] - jaeger_ui["seg_start"]).sum())
    assert total == 176_321_000


@pytest.mark.parametrize(
    "path",
    [JAEGER / n for n in sorted(JAEGER_EXPECTED)]
    + [ZIPKIN / n for n in sorted(ZIPKIN_EXPECTED)]
    + sorted((CORPUS / "otlp").iterdir()),
    ids=lambda p: p.name,
)
def test_analyze_runs_on_every_corpus_file(path: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", str(path), "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.lstrip().startswith("{")


def test_bad_jaeger_span_is_counted_or_fatal_under_strict(tmp_path: Path) -> None:
    good = {"traceID": "a1", "spanID": "b2", "operationName": "ok", "startTime": 1, "duration": 1}
    bad = {**good, "spanID": "b3", "duration": "soon"}
    path = tmp_path / "one-bad.json"
    path.write_bytes(orjson.dumps({"data": [{"spans": [good, bad]}]}))

    result = read_spans([str(path)])
    assert result.table.num_rows == 1
    assert result.stats.skipped == {"bad duration": 1}

    run = _tailscope("analyze", str(path), "--strict", "--format", "json")
    assert run.returncode == 2
    assert run.stdout == ""
    message = run.stderr.strip()
    assert message.endswith("bad duration: 'soon' (span #2 of its trace) (--strict)")
    assert "Traceback" not in message and "\n" not in message


def test_forcing_the_wrong_reader_is_a_clear_input_error() -> None:
    run = _tailscope("analyze", str(JAEGER / "jaeger-ui_01.json"), "--input-format", "zipkin")
    assert run.returncode == 2
    assert "not a Zipkin v2 span list" in run.stderr
    assert "Traceback" not in run.stderr


def _tailscope(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, where typed errors become exit codes."""
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *args], capture_output=True, text=True, check=False
    )


def test_spans_without_a_duration_are_not_latencies() -> None:
    """Zipkin spans exported without a duration are kept (their children keep their parent)
    but their 0 ns stand-in stays out of percentiles and baselines."""
    from tailscope.analysis.pipeline import analyze, prepare_spans
    from tailscope.gate.baseline import build_baseline
    from tailscope.ingest import read_spans

    result = read_spans([str(CORPUS / "zipkin" / "smartthings-mobile-web-install.json")])
    untimed = sum(
        any(a["key"] == s.DURATION_MISSING_KEY and a["value"] == "true" for a in attrs)
        for attrs in result.table[s.ATTRIBUTES].to_pylist()
    )
    assert untimed == 91  # as docs/formats.md states for this file
    baseline = build_baseline(result.table, label=None, created="t", tailscope_version="t")
    report = analyze(prepare_spans(result)).report
    timed = result.table.num_rows - untimed
    assert sum(op.count for op in report.operations) == timed
    assert sum(op.count for op in baseline.operations) == timed


def test_roots_without_a_duration_are_not_requests() -> None:
    from tailscope.analysis.pipeline import root_durations

    frame = pl.DataFrame(
        {
            s.TRACE_ID: [b"t" * 16, b"u" * 16],
            s.SPAN_ID: [b"1" * 8, b"2" * 8],
            s.SERVICE: ["web", "web"],
            s.NAME: ["GET /", "GET /"],
            s.DURATION: [0, 5_000],
            "is_root": [True, True],
            "duration_unknown": [True, False],
        }
    )
    roots = root_durations(frame)
    assert roots["root_row"].to_list() == [1]
    assert roots[s.DURATION].to_list() == [5_000]
