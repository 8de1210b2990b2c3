"""Real exports written by other tools load with the counts stated in corpus/SOURCES.md and
round-trip through ``tailscope convert`` (Parquet and Arrow) unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest
from repo_paths import CORPUS as _CORPUS
from tables import plain
from typer.testing import CliRunner

from tailscope import schema as s
from tailscope.cli.app import app
from tailscope.errors import InputError
from tailscope.ingest import read_spans

CORPUS = _CORPUS
OTLP = CORPUS / "otlp"

# file: (records, spans, traces, services) exactly as SOURCES.md states them.
EXPECTED = {
    "opentelemetry-proto-example.json": (1, 1, 1, 1),
    "otel-demo-otel-tui.jsonl": (547, 547, 141, 8),
    "jaeger-ui-otlp2jaeger-in.json": (2, 1, 1, 1),
    "jaeger-ui-otlp2jaeger-in-error.json": (1, 1, 1, 1),
    "jaeger-ui-otlp2jaeger-multi-in-combined.json": (4, 4, 1, 1),
    "jaeger-memory-otel_traces_01.json": (4, 4, 2, 1),
    "otlp2parquet-trace.json": (2, 2, 1, 1),
    "otlp2parquet-traces.jsonl": (19, 19, 19, 8),
    "otlp2parquet-trace.pb": (2, 2, 1, 1),
    "otlp2parquet-traces.pb": (19, 19, 19, 8),
    "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz": (22_969, 22_969, 502, 10),
    "nezha-trainticket-2023-01-29-08_50.jsonl.gz": (4_890, 4_890, 71, 25),
}


def test_every_corpus_otlp_file_is_listed() -> None:
    assert sorted(p.name for p in OTLP.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_loads_with_stated_counts(name: str) -> None:
    records, spans, traces, services = EXPECTED[name]
    result = read_spans([str(OTLP / name)])
    table = result.table
    assert table.schema.equals(s.SPAN_SCHEMA, check_metadata=True)
    assert result.stats.records == records
    assert table.num_rows == spans
    assert result.stats.duplicates_dropped == records - spans
    assert pc.count_distinct(table[s.TRACE_ID]).as_py() == traces
    assert len(set(table[s.SERVICE].to_pylist())) == services
    assert result.stats.skipped_records == 0
    assert table[s.DURATION].to_pylist() == [
        e - b for b, e in zip(table[s.START].to_pylist(), table[s.END].to_pylist(), strict=True)
    ]


def test_mixed_collector_export_skips_metric_and_log_lines_quietly() -> None:
    result = read_spans([str(OTLP / "otel-demo-otel-tui.jsonl")])
    # 107 error spans, events and links as SOURCES.md describes; metric/log lines not "bad".
    assert pc.sum(pc.equal(result.table[s.STATUS_CODE], s.StatusCode.ERROR)).as_py() == 107
    assert result.stats.non_trace_lines > 0
    assert result.stats.skipped_records == 0
    assert pc.sum(pc.list_value_length(result.table[s.EVENTS])).as_py() > 0
    assert pc.sum(pc.list_value_length(result.table[s.LINKS])).as_py() > 0


def test_base64_json_and_protobuf_of_the_same_spans_are_identical() -> None:
    from_json = read_spans([str(OTLP / "otlp2parquet-traces.jsonl")]).table
    from_proto = read_spans([str(OTLP / "otlp2parquet-traces.pb")]).table
    key = [(s.TRACE_ID, "ascending"), (s.SPAN_ID, "ascending")]
    assert plain(from_json.sort_by(key)).equals(plain(from_proto.sort_by(key)))


def test_uppercase_hex_ids_decode_like_lowercase() -> None:
    table = read_spans([str(OTLP / "opentelemetry-proto-example.json")]).table
    assert table[s.TRACE_ID][0].as_py() == bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
    assert table[s.SPAN_ID][0].as_py() == bytes.fromhex("EEE19B7EC3C1B174")


def test_resource_without_service_name_is_unknown_service_and_counted() -> None:
    result = read_spans([str(OTLP / "jaeger-ui-otlp2jaeger-in-error.json")])
    assert result.table[s.SERVICE].to_pylist() == [s.UNKNOWN_SERVICE]
    assert result.table[s.INSTANCE].to_pylist() == [s.UNKNOWN_SERVICE]
    assert result.stats.unknown_service_resources == 1


def test_directory_reads_every_file_sorted() -> None:
    result = read_spans([str(OTLP)])
    assert result.stats.files == sorted(str(p) for p in OTLP.iterdir())
    # Files repeat spans of others: the .pb twins of the two otlp2parquet JSON files (2 + 19),
    # the span exported twice inside jaeger-ui-otlp2jaeger-in.json (1), and the same span again
    # in jaeger-ui-otlp2jaeger-in-error.json (1).
    total_records = sum(v[0] for v in EXPECTED.values())
    assert result.stats.records == total_records
    assert result.table.num_rows == total_records - result.stats.duplicates_dropped
    assert result.stats.duplicates_dropped == 2 + 19 + 1 + 1


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
@pytest.mark.parametrize(
    "name",
    ["otel-demo-otel-tui.jsonl", "jaeger-memory-otel_traces_01.json", "otlp2parquet-trace.pb"],
)
def test_convert_round_trips(tmp_path: Path, name: str, suffix: str) -> None:
    out = tmp_path / f"spans{suffix}"
    run = CliRunner().invoke(app, ["convert", str(OTLP / name), "-o", str(out), "--quiet"])
    assert run.exit_code == 0, run.output
    original = read_spans([str(OTLP / name)]).table
    again = read_spans([str(out)])
    assert again.table.schema.equals(s.SPAN_SCHEMA)
    assert plain(again.table).equals(plain(original))
    # and a converted file converts again to the same table
    out2 = tmp_path / f"again{suffix}"
    run = CliRunner().invoke(app, ["convert", str(out), "-o", str(out2), "--quiet"])
    assert run.exit_code == 0, run.output
    assert plain(read_spans([str(out2)]).table).equals(plain(original))


def test_convert_all_corpus_files_to_parquet(tmp_path: Path) -> None:
    for name in sorted(EXPECTED):
        out = tmp_path / f"{name}.parquet"
        run = CliRunner().invoke(app, ["convert", str(OTLP / name), "-o", str(out), "-q"])
        assert run.exit_code == 0, (name, run.output)
        assert read_spans([str(out)]).table.num_rows == EXPECTED[name][1]


INVALID = {
    "trace_invalid_base64.json": "bad trace id: '!!!INVALID_BASE64!!!'",
    "trace_invalid_kind.json": "unknown span kind: 'SPAN_KIND_INVALID_TYPE'",
    "trace_mixed_encoding.json": "bad trace id: 'zzz'",
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_corpus_file_is_a_counted_skip_with_a_clear_reason(name: str) -> None:
    path = CORPUS / "otlp-invalid" / name
    good = OTLP / "opentelemetry-proto-example.json"
    result = read_spans([str(good), str(path)])
    assert result.table.num_rows == 1
    assert result.stats.skipped_records == 1
    (problem,) = result.stats.problems
    assert problem.file == str(path)
    assert problem.reason.startswith(INVALID[name])
    # alone, nothing is readable: one clear InputError naming file and reason
    with pytest.raises(InputError, match=INVALID[name].replace("(", r"\(")[:20]):
        read_spans([str(path)])


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_corpus_file_on_the_command_line_exits_2_without_traceback(
    tmp_path: Path, name: str
) -> None:
    import subprocess
    import sys

    path = CORPUS / "otlp-invalid" / name
    out = subprocess.run(
        [sys.executable, "-m", "tailscope", "convert", str(path), "-o", str(tmp_path / "x.arrow")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tailscope: error: ")
    assert INVALID[name] in lines[0]
