"""Renderers and the report codec: exact JSON round trip, versioning, key numbers visible in
text and Markdown, the renderer registry, and the ``analyze`` command end to end."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from repo_paths import CORPUS as _CORPUS
from repo_paths import REPO as _REPO

from tailscope.analysis.pipeline import Analysis, AnalysisOptions, analyze
from tailscope.cli import main
from tailscope.errors import UsageError
from tailscope.ingest import read_spans
from tailscope.render import RenderOptions, get_renderer
from tailscope.render.sections import ms
from tailscope.report.codec import (
    ReportFormatError,
    report_from_dict,
    report_from_json,
    report_to_dict,
    report_to_json,
)
from tailscope.report.model import (
    Cascade,
    ProblemEntry,
    Report,
    RuntimeSummary,
    Stall,
    UnexplainedTimeout,
)

REPO = _REPO
CORPUS = _CORPUS
NEZHA = CORPUS / "otlp" / "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz"
BAD = CORPUS / "otlp-invalid" / "trace_invalid_kind.json"


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return analyze(read_spans([str(NEZHA)]), AnalysisOptions(bootstrap_resamples=50))


def full_report(analysis: Analysis) -> Analysis:
    """The nezha report with every optional section filled by hand (stalls ... runtimes)."""
    stall = Stall(
        "inventory",
        "inventory-1",
        "host-b",
        10,
        20,
        310.5,
        7,
        3,
        0.9,
        "process",
        ("7 spans of 5 traces in flight",),
    )
    report = replace(
        analysis.report,
        stalls=(stall,),
        cascades=(
            Cascade(
                0,
                "inventory",
                "inventory-1",
                10,
                20,
                4,
                3,
                1.75,
                ("checkout POST /x",),
                ("ab" * 16,),
                123.25,
            ),
        ),
        unexplained_timeouts=(
            UnexplainedTimeout(
                "checkout", "postgres", "SELECT", 2, 250.0, "dependency postgres", ("cd" * 16,)
            ),
        ),
        runtimes=(RuntimeSummary("java", "OpenJDK", 2, 5, 874, 3.5, 9.75, 12.5, 2.8, 1, 4.5),),
    )
    return Analysis(report=report, spans=analysis.spans, path=analysis.path)


def test_json_round_trip_is_exact(analysis: Analysis) -> None:
    report = full_report(analysis).report
    assert report_from_dict(report_to_dict(report)) == report
    assert report_from_json(report_to_json(report)) == report
    document = json.loads(get_renderer("json").render(report, RenderOptions()))
    assert document["schema_version"] == 2
    assert set(document["input"]) >= {
        "files",
        "spans",
        "traces",
        "services",
        "skipped_records",
        "problems",
        "orphan_spans",
        "skew_adjustments",
    }
    op = document["operations"][0]
    assert set(op) >= {
        "service",
        "operation",
        "kind",
        "count",
        "error_rate",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "exemplar_trace_ids",
    }
    hop = document["hops"][0]
    assert set(hop) >= {
        "root_service",
        "root_operation",
        "hop_service",
        "hop_operation",
        "component",
        "requests",
        "mean_ms",
        "p99_ms",
        "on_critical_path",
        "variance_share",
        "variance_share_ci",
        "tail_share",
        "tail_share_ci",
    }
    assert all(len(t) == 32 and t == t.lower() for t in op["exemplar_trace_ids"])
    assert document["stalls"][0]["duration_ms"] == 310.5


def test_wrong_schema_version_and_bad_documents_are_clear_errors(analysis: Analysis) -> None:
    document = report_to_dict(analysis.report)
    with pytest.raises(ReportFormatError, match="schema_version 99 is not supported"):
        report_from_dict({**document, "schema_version": 99})
    broken = {**document, "input": {k: v for k, v in document["input"].items() if k != "spans"}}
    with pytest.raises(ReportFormatError, match=r"missing required field `spans` - at `\$.input`"):
        report_from_dict(broken)
    with pytest.raises(ReportFormatError, match="not a JSON report"):
        report_from_json(b"{nope")


def test_text_and_markdown_show_the_key_numbers(analysis: Analysis) -> None:
    report = full_report(analysis).report
    report = replace(
        report,
        input=replace(
            report.input,
            skipped_records=3,
            problems=(ProblemEntry("x.jsonl", 17, "truncated line"),),
        ),
    )
    root = report.roots[0]
    top_hop = report.hops[0]
    slowest = report.operations[0]
    for name in ("text", "markdown"):
        out = get_renderer(name).render(report, RenderOptions(top=5, width=200))
        for needle in (
            f"{report.input.spans:,} spans",
            f"{root.service} {root.operation}",
            ms(root.p99_ms),
            top_hop.hop_operation,
            f"{top_hop.tail_share * 100:.0f}%",
            slowest.operation,
            ms(slowest.p99_ms),
            ms(report.stalls[0].duration_ms),
            "1.75x",
            "dependency postgres",
            "OpenJDK",
            "x.jsonl:17",
            "truncated line",
            "skipped records: 3",
        ):
            assert needle in out, (name, needle)
    md = get_renderer("markdown").render(report, RenderOptions(top=5))
    assert "| hop | component |" in md


def test_unknown_renderer_lists_valid_names() -> None:
    with pytest.raises(UsageError, match="text, json, markdown"):
        get_renderer("html")


def test_analyze_command_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as done:
        main(["analyze", str(NEZHA), "-o", str(out), "--quiet", "--min-tail-requests", "3"])
    assert done.value.code in (0, None)
    report = report_from_json(out.read_bytes())
    assert report.input.spans == 22969
    assert not report.roots[0].inconclusive
    md = tmp_path / "r.md"
    with pytest.raises(SystemExit):
        main(["analyze", str(NEZHA), "-o", str(md), "-q", "--top", "2"])
    assert md.read_text().startswith("## tailscope analyze")


def test_analyze_command_bad_input_and_bad_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["analyze", str(NEZHA), "--format", "html"])
    assert done.value.code == 2
    assert "choose one of text, json, markdown" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["analyze", "/nonexistent/traces.json", "-q"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tailscope: error:") and "Traceback" not in err


def test_skipped_records_reach_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["analyze", str(BAD), str(NEZHA), "-q", "--format", "json"])
    assert done.value.code in (0, None)
    document = json.loads(capsys.readouterr().out)
    assert document["input"]["skipped_records"] >= 1
    assert document["input"]["problems"][0]["file"].endswith("trace_invalid_kind.json")


def _reference_dict(value: object) -> object:
    """The report as a dict, written independently of the codec: dataclass fields by name,
    tuples as lists, non-finite floats as None (what the JSON text must hold)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _reference_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_reference_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: _reference_dict(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _gated(report: Report) -> Report:
    """The report with a gate verdict holding an infinite and a NaN number."""
    from tailscope.report.model import (
        GatePolicy,
        GateVerdict,
        QuantileComparison,
        ThresholdCheck,
    )

    row = QuantileComparison(
        "web/GET /x",
        "web",
        "GET /x",
        None,
        0.99,
        3000,
        2990,
        40.5,
        55.25,
        14.75,
        36.4,
        (9.5, 20.0),
        (21.0, math.inf),
        "fail",
        "p99 rose",
    )
    odd = replace(row, name="web/GET /y", operation="GET /y", change_pct=math.nan, verdict="pass")
    verdict = GateVerdict(
        "fail",
        (row, odd),
        (ThresholdCheck("stalls", 2, 0, "fail", "longest a/b 300 ms"),),
        GatePolicy(quantiles=(0.5, 0.99), max_increase_ms=2.0),
        "abc123",
        "2026-12-05T00:00:00Z",
        None,
    )
    return replace(report, gate=verdict)


def test_msgspec_codec_round_trips_every_field_and_keeps_the_json_bytes(analysis: Analysis) -> None:
    import orjson

    for report in (analysis.report, full_report(analysis).report, _gated(analysis.report)):
        # the JSON text is byte for byte what an independent dataclass walk + orjson writes
        text = report_to_json(report)
        assert text == orjson.dumps(_reference_dict(report), option=orjson.OPT_INDENT_2)
        assert report_to_dict(report) == _reference_dict(report)
        back = report_from_json(text)
        assert report_from_dict(json.loads(text)) == back
        if report.gate is None:
            assert back == report
    # a gated report: equal except the non-finite numbers, which come back as NaN
    gated = _gated(analysis.report)
    back = report_from_json(report_to_json(gated))
    assert back.gate is not None and gated.gate is not None
    assert replace(back, gate=None) == replace(gated, gate=None)
    assert back.gate.rows[0].interval_pct is not None
    assert back.gate.rows[0].interval_pct[0] == 21.0
    assert math.isnan(back.gate.rows[0].interval_pct[1])
    # an optional number (float | None) that was NaN is read back as None, not NaN
    assert back.gate.rows[1].change_pct is None
    assert back.gate.policy == gated.gate.policy and back.gate.checks == gated.gate.checks
    # a document with a mistyped field names the field
    document = report_to_dict(gated)
    document["gate"]["rows"][0]["verdict"] = "maybe"
    with pytest.raises(ReportFormatError, match=r"\$\.gate\.rows\[0\]\.verdict"):
        report_from_dict(document)
