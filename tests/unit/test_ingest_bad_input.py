"""One test per bad-input class: the record is skipped and counted with file, line (or byte
offset) and a one-line reason; ``strict`` turns it into InputError; nothing ever tracebacks."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tailscope.errors import InputError
from tailscope.ingest import read_spans
from tailscope.ingest.model import IngestResult


def span(span_id: str = "00000000000000a1", **extra: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": span_id,
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000005000000",
    }
    fields.update(extra)
    return fields


def line(*spans: dict[str, object]) -> bytes:
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}],
            }
        ]
    }
    return orjson.dumps(doc)


GOOD = line(span("00000000000000a1"), span("00000000000000a2"))


def write(tmp_path: Path, data: bytes, name: str = "in.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_with_one_problem(path: str, reason_class: str) -> IngestResult:
    result = read_spans([path])
    assert result.stats.skipped == {reason_class: 1}
    assert len(result.stats.problems) == 1
    assert result.stats.problems[0].file == path
    with pytest.raises(InputError, match=r"\(--strict\)$"):
        read_spans([path], strict=True)
    return result


def test_not_json_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b"\n{this is not json}\n" + GOOD.replace(b"a1", b"b1") + b"\n")
    result = read_with_one_problem(path, "not JSON")
    (problem,) = result.stats.problems
    assert problem.line == 2
    assert problem.reason.startswith("not JSON: ")
    assert problem.location() == f"{path}:2"
    assert result.table.num_rows == 3  # a1, a2, b1 (a2 repeated: dropped as duplicate)
    assert result.stats.duplicates_dropped == 1


def test_truncated_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b"\n" + GOOD.replace(b"a1", b"c1")[:-40])
    result = read_with_one_problem(path, "truncated line")
    assert result.stats.problems[0].line == 2
    assert result.stats.problems[0].reason == "truncated line: JSON ends early"
    assert result.table.num_rows == 2


def test_wrong_shape_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b'\n{"hello": [1, 2]}\n[1, 2, 3]\n')
    result = read_spans([path])
    assert result.stats.skipped == {"wrong shape": 2}
    reasons = [p.reason for p in result.stats.problems]
    assert reasons == [
        "wrong shape: not a TracesData object (object with keys hello)",
        "wrong shape: not a TracesData object (list)",
    ]
    assert [p.line for p in result.stats.problems] == [2, 3]


@pytest.mark.parametrize(
    ("field", "reason_class"), [("traceId", "missing trace id"), ("spanId", "missing span id")]
)
def test_missing_ids(tmp_path: Path, field: str, reason_class: str) -> None:
    bad = span("00000000000000b1")
    del bad[field]
    path = write(tmp_path, line(span(), bad) + b"\n")
    result = read_with_one_problem(path, reason_class)
    assert result.stats.records == 2
    assert result.table.num_rows == 1
    assert result.stats.problems[0].reason == (
        f"{reason_class} (resourceSpans[0].scopeSpans[0].spans[1])"
    )
    assert result.stats.problems[0].line == 1


def test_end_before_start(tmp_path: Path) -> None:
    bad = span("00000000000000b1", endTimeUnixNano="1699999999999999000")
    path = write(tmp_path, line(span(), bad) + b"\n")
    result = read_with_one_problem(path, "end before start")
    assert result.stats.problems[0].reason.startswith("end before start by 1000 ns")


def test_truncated_gzip(tmp_path: Path) -> None:
    lines = b"".join(
        line(span(f"{i:016x}")) + b"\n" for i in range(1, 400)
    )  # enough for several deflate blocks
    packed = gzip.compress(lines)
    path = write(tmp_path, packed[: len(packed) * 2 // 3], "in.jsonl.gz")
    result = read_spans([path])
    assert result.stats.skipped["truncated gzip"] == 1
    gz = [p for p in result.stats.problems if p.reason.startswith("truncated gzip")]
    assert gz[0].offset is not None and gz[0].line is None
    assert "@" in gz[0].location()
    # what was decompressed before the cut is kept; the cut line itself is a truncated line
    assert 0 < result.table.num_rows < 399
    assert result.stats.skipped.get("truncated line", 0) <= 1
    with pytest.raises(InputError):
        read_spans([path], strict=True)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl: unreadable file \(no such file"):
        read_spans([str(tmp_path / "nope.jsonl")])
    locked = tmp_path / "locked.jsonl"
    locked.write_bytes(GOOD)
    locked.chmod(0)
    try:
        if locked.open("rb"):  # running as root: permissions do not apply
            pytest.skip("running as root")
    except PermissionError:
        with pytest.raises(InputError, match="unreadable file"):
            read_spans([str(locked)])
    finally:
        locked.chmod(0o600)


def test_empty_input(tmp_path: Path) -> None:
    path = write(tmp_path, b"")
    with pytest.raises(
        InputError, match=r"no spans read from .*in.jsonl: 1 bad record.*empty input"
    ):
        read_spans([path])
    other = write(tmp_path, GOOD + b"\n", "good.jsonl")
    result = read_spans([path, other])
    assert result.stats.skipped == {"empty input": 1}
    assert result.table.num_rows == 2
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    with pytest.raises(InputError, match="empty_dir: empty input"):
        read_spans([str(empty_dir)])
    with pytest.raises(InputError, match="empty input: no input files given"):
        read_spans([])


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"trace_id,span_id,duration\n1,2,3\n", "CSV/TSV text"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
        (
            b'{"data": {"items": [1, 2]}}',
            "a JSON object with keys data, items but no resourceSpans",
        ),
        (b"\x00\x01\x02garbage", "binary data starting 00 01 02 67"),
    ],
)
def test_not_a_trace_export_fails_fast(tmp_path: Path, data: bytes, looks_like: str) -> None:
    path = write(tmp_path, data, "thing.dat")
    with pytest.raises(InputError) as err:
        read_spans([path])
    assert str(err.value).startswith(f"{path}: not a trace export: looks like {looks_like}")


def test_non_trace_file_inside_a_directory_is_skipped_and_counted(tmp_path: Path) -> None:
    write(tmp_path, b"# notes\n", "README.md")
    write(tmp_path, GOOD + b"\n", "spans.jsonl")
    result = read_spans([str(tmp_path)])
    assert result.table.num_rows == 2
    assert result.stats.skipped == {"not a trace export": 1}
    assert result.stats.problems[0].reason == "not a trace export: looks like Markdown text"


def test_truncated_protobuf_frame(tmp_path: Path) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    msg = TracesData()
    sp = msg.resource_spans.add().scope_spans.add().spans.add()
    sp.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    sp.span_id = bytes.fromhex("00000000000000a1")
    sp.start_time_unix_nano = 10
    sp.end_time_unix_nano = 20
    payload = msg.SerializeToString()
    framed = len(payload).to_bytes(4, "big") + payload
    path = write(tmp_path, framed + framed[: len(framed) - 5], "spans.pb")
    result = read_with_one_problem(path, "truncated message")
    assert result.stats.problems[0].offset == len(framed)
    assert result.table.num_rows == 1


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b"\n{oops\n")
    out_file = str(tmp_path / "out.parquet")
    ok = subprocess.run(
        [sys.executable, "-m", "tailscope", "convert", path, "-o", out_file],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0
    assert "1 bad record(s) skipped" in ok.stderr
    assert f"{path}:2: not JSON" in ok.stderr
    strict = subprocess.run(
        [sys.executable, "-m", "tailscope", "convert", path, "-o", out_file, "--strict"],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 2
    assert strict.stderr.startswith(f"tailscope: error: {path}:2: not JSON")
    assert len(strict.stderr.strip().splitlines()) == 1
