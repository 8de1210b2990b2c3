"""The fast OTLP/JSON path (the C scanner) gives exactly the tolerant reader's table, and every
quirk it cannot represent is routed to the tolerant reader instead of being dropped. Tests that
call the scanner itself are skipped when it is not built or ``TAILSCOPE_NATIVE=0``; the others
run on whichever path is in use."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from tables import plain
from test_ingest_roundtrip import resource_spans_json, traces_data

from tailscope import schema as s
from tailscope.ingest import fast_json, otlp_json, read_spans
from tailscope.ingest.flat import native
from tailscope.ingest.model import IngestStats, ProgressSink
from tailscope.ingest.problems import ProblemLog

requires_native = pytest.mark.skipif(
    native is None, reason="C scanner not built or TAILSCOPE_NATIVE=0 (tolerant reader only)"
)


def tolerant(block: bytes) -> tuple[pa.Table, IngestStats]:
    stats = IngestStats()
    tables = list(otlp_json.read_lines(iter([(1, block)]), ProblemLog(stats, "t")))
    return pa.concat_tables(tables) if tables else s.empty_table(), stats


def sample_lines(n_lines: int, seed: int) -> bytes:
    """Spec-shaped lines with every scalar value type and awkward doubles and promoted keys."""
    rng = random.Random(seed)
    doubles = [0.5, 1.0, -2.0, 1e-5, 1e-4, 123456.789, 1e16, 1e300, -0.0, 5e-324, 0.1 + 0.2]
    out = []
    for line in range(n_lines):
        spans = []
        for i in range(rng.randrange(0, 6)):
            attrs: list[dict[str, Any]] = [
                {"key": "s", "value": {"stringValue": rng.choice(["", "a", "ü", "x y"])}},
                {"key": "b", "value": {"boolValue": rng.random() < 0.5}},
                {"key": "i", "value": {"intValue": str(rng.randrange(-(2**63), 2**63))}},
                {"key": "d", "value": {"doubleValue": rng.choice(doubles) * rng.random()}},
                {"key": "d2", "value": {"doubleValue": rng.choice(doubles)}},
                {"key": "y", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
            ]
            promoted = [
                (
                    "http.status_code",
                    {"stringValue": rng.choice(["200", "5xx", "-1", "99999999999"])},
                ),
                ("http.response.status_code", {"intValue": str(rng.choice([200, 503, 2**40]))}),
                ("rpc.grpc.status_code", {"intValue": str(rng.randrange(0, 17))}),
                ("rpc.system.name", {"stringValue": "grpc"}),
                ("rpc.system", {"stringValue": "dubbo"}),
                ("db.system", {"boolValue": True}),
                ("server.address", {"stringValue": "db:5432"}),
                ("error.type", {"stringValue": "timeout"}),
                ("http.request.resend_count", {"intValue": str(rng.randrange(0, 3))}),
                ("rpc.method", {"stringValue": "Get"}),
                ("rpc.response.status_code", {"stringValue": "OK"}),
            ]
            attrs += [{"key": k, "value": v} for k, v in rng.sample(promoted, rng.randrange(0, 6))]
            rng.shuffle(attrs)
            span: dict[str, Any] = {
                "traceId": rng.getrandbits(128).to_bytes(16, "big").hex().upper()
                if rng.random() < 0.1
                else rng.getrandbits(128).to_bytes(16, "big").hex(),
                "spanId": rng.getrandbits(64).to_bytes(8, "big").hex(),
                "parentSpanId": rng.choice(["", "0000000000000000", "00f067aa0ba902b7"]),
                "name": rng.choice(["GET /", "SELECT", ""]),
                "kind": rng.randrange(0, 6),
                "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                "endTimeUnixNano": str(1_700_000_000_000_000_000 + i + rng.randrange(0, 10**9)),
                "attributes": attrs,
                "flags": rng.choice([0, 256, 768]),
                "traceState": rng.choice(["", "k=v"]),
                "status": rng.choice([{}, {"code": 2, "message": "boom"}, {"code": 1}]),
                "droppedAttributesCount": 0,
            }
            if rng.random() < 0.2:
                del span["parentSpanId"]
            spans.append(span)
        resource_attrs = [{"key": "host.name", "value": {"stringValue": f"h{line % 3}"}}]
        if line % 5:
            resource_attrs.append(
                {"key": "service.name", "value": {"stringValue": f"svc{line % 4}"}}
            )
        if line % 7 == 0:
            resource_attrs.append({"key": "process.pid", "value": {"intValue": "42"}})
        doc = {
            "resourceSpans": [
                {
                    "resource": {"attributes": resource_attrs},
                    "scopeSpans": [{"scope": {"name": "lib", "version": ""}, "spans": spans}],
                    "schemaUrl": "x",
                }
            ]
        }
        out.append(orjson.dumps(doc))
    return b"\n".join(out) + b"\n"


@requires_native
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_equals_tolerant_path(seed: int) -> None:
    block = sample_lines(60, seed)
    fast, records, unknown = fast_json.native_block_to_table(block)  # must not need the fallback
    slow, stats = tolerant(block)
    assert records == stats.records == slow.num_rows > 0
    assert unknown == stats.unknown_service_resources > 0
    assert plain(fast).equals(plain(slow))


@requires_native
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=traces_data())
def test_fast_path_equals_tolerant_path_on_random_messages(msg: TracesData) -> None:
    block = b"".join(
        orjson.dumps({"resourceSpans": [resource_spans_json(rs)]}) + b"\n"
        for rs in msg.resource_spans
    )
    slow, stats = tolerant(block)
    try:
        fast, records, _ = fast_json.native_block_to_table(block)
    except fast_json.Unsupported:
        return  # e.g. NaN doubles: the tolerant path reads the block
    assert plain(fast).equals(plain(slow))
    assert records == stats.records


SPEC_LINE = sample_lines(1, 11).splitlines()[0]
KIND_NAMES = [
    f"SPAN_KIND_{k}"
    for k in ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
]
QUIRKS: dict[str, Any] = {
    "base64 ids": lambda d: _ids(d, lambda h: base64.b64encode(bytes.fromhex(h)).decode()),
    "enum names": lambda d: _spans(d, lambda sp: sp.update(kind=KIND_NAMES[sp["kind"]])),
    "int64 as numbers": lambda d: _spans(
        d,
        lambda sp: sp.update(
            startTimeUnixNano=int(sp["startTimeUnixNano"]),
            endTimeUnixNano=int(sp["endTimeUnixNano"]),
        ),
    ),
    "snake_case": lambda d: orjson.loads(
        orjson.dumps(d)
        .replace(b'"resourceSpans"', b'"resource_spans"')
        .replace(b'"scopeSpans"', b'"scope_spans"')
        .replace(b'"traceId"', b'"trace_id"')
        .replace(b'"spanId"', b'"span_id"')
        .replace(b'"parentSpanId"', b'"parent_span_id"')
        .replace(b'"startTimeUnixNano"', b'"start_time_unix_nano"')
        .replace(b'"endTimeUnixNano"', b'"end_time_unix_nano"')
        .replace(b'"stringValue"', b'"string_value"')
        .replace(b'"intValue"', b'"int_value"')
    ),
    "unknown fields": lambda d: {**d, "extra": {"deep": [1, 2]}},
}


def _spans(doc: dict[str, Any], change: Any) -> dict[str, Any]:
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                change(sp)
    return doc


def _ids(doc: dict[str, Any], encode: Any) -> dict[str, Any]:
    def change(sp: dict[str, Any]) -> None:
        for key in ("traceId", "spanId", "parentSpanId"):
            if sp.get(key) and sp[key] != "0000000000000000":
                sp[key] = encode(sp[key])

    return _spans(doc, change)


def spec_doc() -> dict[str, Any]:
    doc = orjson.loads(SPEC_LINE)
    assert any(ss["spans"] for rs in doc["resourceSpans"] for ss in rs["scopeSpans"])
    return dict(doc)


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirky_lines_read_like_the_spec_line(tmp_path: Path, quirk: str) -> None:
    spec = tmp_path / "spec.jsonl"
    spec.write_bytes(SPEC_LINE + b"\n")
    quirky = tmp_path / "quirky.jsonl"
    quirky.write_bytes(orjson.dumps(QUIRKS[quirk](spec_doc())) + b"\n")
    want = read_spans([str(spec)])
    got = read_spans([str(quirky)])
    assert got.stats.skipped_records == 0
    assert plain(got.table).equals(plain(want.table))


def test_bom_and_crlf(tmp_path: Path) -> None:
    spec = tmp_path / "spec.jsonl"
    spec.write_bytes(SPEC_LINE + b"\n" + SPEC_LINE.replace(b'"lib"', b'"lib2"') + b"\n")
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes().replace(b"\n", b"\r\n"))
    got = read_spans([str(crlf)])
    assert got.stats.skipped_records == 0
    assert plain(got.table).equals(plain(read_spans([str(spec)]).table))


def test_array_and_kvlist_values_survive(tmp_path: Path) -> None:
    doc = spec_doc()
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [
        {
            "key": "tags",
            "value": {"arrayValue": {"values": [{"intValue": 1}, {"doubleValue": "NaN"}]}},
        },
        {
            "key": "kv",
            "value": {"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": True}}]}},
        },
        {"key": "inf", "value": {"doubleValue": "-Infinity"}},
        {"key": "empty", "value": {}},
    ]
    path = tmp_path / "arrays.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n")
    table = read_spans([str(path)]).table
    attrs = table[s.ATTRIBUTES][0].as_py()
    assert attrs == [
        {
            "key": "tags",
            "value": '{"arrayValue":{"values":[{"intValue":"1"},{"doubleValue":"NaN"}]}}',
            "type": 6,
        },
        {
            "key": "kv",
            "value": '{"kvlistValue":{"values":[{"key":"a","value":{"boolValue":true}}]}}',
            "type": 7,
        },
        {"key": "inf", "value": "-inf", "type": 4},
        {"key": "empty", "value": "", "type": 0},
    ]


def test_semantic_convention_promotion_and_instance(tmp_path: Path) -> None:
    def kv(items: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"key": k, "value": v} for k, v in items.items()]

    def line(resource: dict[str, Any], attrs: dict[str, Any]) -> bytes:
        span = {
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": f"{len(attrs) + 16 * len(resource):016x}",
            "startTimeUnixNano": "1",
            "endTimeUnixNano": "2",
            "attributes": kv(attrs),
        }
        return orjson.dumps(
            {
                "resourceSpans": [
                    {"resource": {"attributes": kv(resource)}, "scopeSpans": [{"spans": [span]}]}
                ]
            }
        )

    svc = {"service.name": {"stringValue": "api"}}
    lines = [
        line(
            {
                **svc,
                "service.instance.id": {"stringValue": "i-1"},
                "host.name": {"stringValue": "h"},
            },
            {
                "http.status_code": {"intValue": "404"},
                "http.response.status_code": {"intValue": "200"},
            },
        ),
        line(
            {
                **svc,
                "host.name": {"stringValue": "h"},
                "process.pid": {"intValue": "7"},
                "telemetry.sdk.language": {"stringValue": "java"},
                "process.runtime.name": {"stringValue": "OpenJDK"},
                "process.runtime.version": {"stringValue": "21"},
            },
            {
                "http.status_code": {"stringValue": "503"},
                "rpc.system.name": {"stringValue": "grpc"},
                "a": {},
            },
        ),
        line(
            {**svc, "host.name": {"stringValue": "h"}},
            {
                "rpc.system": {"stringValue": "dubbo"},
                "rpc.system.name": {"stringValue": "grpc"},
                "x": {},
                "y": {},
            },
        ),
        line(svc, {}),
    ]
    path = tmp_path / "semconv.jsonl"
    path.write_bytes(b"\n".join(lines))
    rows = read_spans([str(path)]).table.to_pylist()
    assert [r[s.HTTP_STATUS_CODE] for r in rows] == [200, 503, None, None]
    assert [r[s.RPC_SYSTEM] for r in rows] == [None, "grpc", "dubbo", None]
    assert [r[s.INSTANCE] for r in rows] == ["i-1", "h:7", "h", "api"]
    assert [r[s.HOST] for r in rows] == ["h", "h", "h", None]
    assert [r[s.LANGUAGE] for r in rows] == [None, "java", None, None]
    assert [r[s.RUNTIME_NAME] for r in rows] == [None, "OpenJDK", None, None]
    assert [r[s.RUNTIME_VERSION] for r in rows] == [None, "21", None, None]


def test_stdin(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out.arrow"
    run = subprocess.run(
        [sys.executable, "-m", "tailscope", "convert", "-", "-o", str(out)],
        input=SPEC_LINE + b"\n",
        capture_output=True,
    )
    assert run.returncode == 0, run.stderr
    spec = tmp_path / "spec.jsonl"
    spec.write_bytes(SPEC_LINE + b"\n")
    assert plain(read_spans([str(out)]).table).equals(plain(read_spans([str(spec)]).table))


@requires_native
def test_fast_path_reads_real_events_and_links_like_the_tolerant_path() -> None:
    from repo_paths import OTLP_CORPUS as OTLP

    read = fast_json.native_block_to_table
    lines = (OTLP / "otel-demo-otel-tui.jsonl").read_bytes().split(b"\n")
    fast_lines = []
    for raw in lines:
        if b'"resourceSpans"' not in raw:
            continue
        try:
            read(raw + b"\n")
        except fast_json.Unsupported:
            continue  # e.g. arrayValue attributes: tolerant path
        fast_lines.append(raw)
    block = b"\n".join(fast_lines) + b"\n"
    fast, records, _ = read(block)
    slow, stats = tolerant(block)
    assert records == stats.records == slow.num_rows > 150
    assert pa.compute.sum(pa.compute.list_value_length(fast[s.EVENTS])).as_py() > 0
    assert pa.compute.sum(pa.compute.list_value_length(fast[s.LINKS])).as_py() > 0
    assert plain(fast).equals(plain(slow))


@pytest.mark.parametrize(
    "name",
    [
        "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",
        "nezha-trainticket-2023-01-29-08_50.jsonl.gz",
    ],
)
@requires_native
def test_fast_path_equals_tolerant_path_on_real_captures(name: str) -> None:
    import gzip

    from repo_paths import OTLP_CORPUS as OTLP

    block = gzip.decompress((OTLP / name).read_bytes())
    fast, _, _ = fast_json.native_block_to_table(block)
    slow, _ = tolerant(block)
    assert plain(fast).equals(plain(slow))


def test_read_ahead_keeps_problem_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Block N+1 is read (and parsed) while block N is processed: problems met while reading
    ahead (a truncated gzip) must still come after the bad records of earlier blocks, and
    ``strict`` must fail on the same first problem as a sequential read."""
    import gzip

    from tailscope.errors import InputError
    from tailscope.ingest import sources

    monkeypatch.setattr(sources, "READ_BYTES", 4096)  # many blocks
    good = sample_lines(200, 5).splitlines()
    lines = [*good[:3], b'{"resourceSpans": [' + b"x" * 50 + b"]}", *good[3:]]
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    result = read_spans([str(path)])
    reasons = [p.reason.split(":")[0] for p in result.stats.problems]
    assert reasons[0].startswith("not JSON") and result.stats.problems[0].line == 4
    assert reasons.index("truncated gzip") > 0
    assert result.stats.records > 100 and result.table.num_rows > 100
    with pytest.raises(InputError, match=":4: not JSON"):
        read_spans([str(path)], strict=True)
    # The same content read sequentially (one block at a time) gives the same table and stats.
    blocks = sources.Source(sources.expand_inputs([str(path)])[0], ProgressSink()).line_blocks
    stats = IngestStats()
    log = ProblemLog(stats, str(path))
    sequential = pa.concat_tables(fast_json.read_lines(blocks(log), log))
    assert plain(sequential).equals(plain(result.table))
    assert stats.problems == result.stats.problems


@requires_native
def test_native_scanner_knows_the_promoted_keys() -> None:
    from tailscope.ingest.flat import PROMOTED_ORDER

    assert native is not None
    assert native.PROMOTED_KEYS == PROMOTED_ORDER == tuple(sorted(s.PROMOTED_KEYS))


def _one_span_line(**span_fields: Any) -> bytes:
    span: dict[str, Any] = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "op",
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "2000",
        **span_fields,
    }
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}
    return orjson.dumps(doc)


# Lines the native scanner must hand to the tolerant reader (which reads or rejects them).
NATIVE_FALLBACK_LINES: dict[str, bytes] = {
    "base64 id": _one_span_line(spanId="7uGbfsPBsXQ="),
    "short hex id": _one_span_line(spanId="e19b7ec3c1b174"),
    "all-zero trace id": _one_span_line(traceId="0" * 32),
    "enum name": _one_span_line(kind="SPAN_KIND_SERVER"),
    "kind out of range": _one_span_line(kind=9),
    "status code name": _one_span_line(status={"code": "STATUS_CODE_ERROR"}),
    "end before start": _one_span_line(endTimeUnixNano="999"),
    "negative time": _one_span_line(startTimeUnixNano=-5),
    "time with sign": _one_span_line(startTimeUnixNano="+1000"),
    "time as float": _one_span_line(startTimeUnixNano=1000.0),
    "time overflows int64": _one_span_line(endTimeUnixNano=str(2**63)),
    "missing end": b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
    + b"5b8efff798038103d269b633813fc60c"
    + b'","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1"}]}]}]}',
    "snake_case field": _one_span_line(parent_span_id="eee19b7ec3c1b175"),
    "array value": _one_span_line(attributes=[{"key": "a", "value": {"arrayValue": {}}}]),
    "NaN double": _one_span_line(attributes=[{"key": "a", "value": {"doubleValue": "NaN"}}]),
    "int as text with space": _one_span_line(
        attributes=[{"key": "a", "value": {"intValue": " 5"}}]
    ),
    "two values": _one_span_line(
        attributes=[{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}]
    ),
    "null name": _one_span_line(name=None),
    "repeated field": _one_span_line().replace(b'"name":"op"', b'"name":"op","name":"op2"'),
    "snake_case metric line": b'{"resource_metrics":[]}',
    "not an object": b"[1,2]",
    "trailing comma": _one_span_line().replace(b'"name":"op"', b'"name":"op",'),
    "invalid UTF-8": _one_span_line().replace(b'"op"', b'"o\xffp"'),
    "lone surrogate": _one_span_line().replace(b'"op"', b'"o\\ud800p"'),
    "control character": _one_span_line().replace(b'"op"', b'"o\x01p"'),
    "leading zero number": _one_span_line().replace(b'"name":"op"', b'"name":"op","x":01'),
    "trailing garbage": _one_span_line() + b" x",
    "truncated": _one_span_line()[:-3],
    "too deep": _one_span_line().replace(b'"name":"op"', b'"name":"op","x":' + b"[" * 100)
    + b"]" * 100,
}


@requires_native
@pytest.mark.parametrize("case", sorted(NATIVE_FALLBACK_LINES))
def test_native_scanner_hands_quirks_to_the_tolerant_reader(case: str) -> None:
    _native = native
    assert _native is not None

    block = _one_span_line() + b"\n" + NATIVE_FALLBACK_LINES[case] + b"\n"
    assert isinstance(_native.scan_json(block), str)
    with pytest.raises(fast_json.Unsupported):
        fast_json.native_block_to_table(block)


@pytest.mark.parametrize(
    "line",
    [
        # escapes in keys and values, unknown fields of every JSON type, nulls for lists
        _one_span_line().replace(b'"name":"op"', b'"n\\u0061me":"o\\"p\\u00e9\\ud83d\\ude00"'),
        _one_span_line(extra={"a": [1, -2.5e3, True, False, None, "x"]}, droppedEventsCount=3),
        _one_span_line(attributes=None, events=None, links=None),
        _one_span_line(kind=0, flags=0, traceState="", parentSpanId="", status={}),
        _one_span_line(startTimeUnixNano=1000, endTimeUnixNano="0002000"),
        _one_span_line(
            attributes=[
                {"key": "i", "value": {"intValue": "-007"}},
                {"key": "j", "value": {"intValue": -0}},
                {"key": "d", "value": {"doubleValue": -0}},
                {"key": "e", "value": {"doubleValue": 1e-320}},
                {"key": "f", "value": {"doubleValue": 12}},
                {"value": {"stringValue": "no key"}},
                {"key": "no value"},
            ],
            events=[{"name": "e"}, {"timeUnixNano": 5, "attributes": []}],
            links=[{"traceId": "0" * 32, "spanId": "0" * 16}],
        ),
        b' \t{"resourceSpans":[]}\r',
    ],
)
@requires_native
def test_native_scanner_reads_legal_variations_exactly(line: bytes) -> None:
    block = line + b"\n"
    fast, records, _ = fast_json.native_block_to_table(block)
    slow, stats = tolerant(block)
    assert stats.skipped_records == 0
    assert records == stats.records
    assert plain(fast).equals(plain(slow))


@requires_native
def test_native_scanner_survives_random_corruption() -> None:
    """Mutated lines: the scanner must never crash, and whatever it accepts must be exactly
    what the tolerant reader reads, with nothing skipped."""
    _native = native
    assert _native is not None

    rng = random.Random(42)
    base = sample_lines(3, 9)
    noise = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"0", b"-", b"e", b"\xc3", b" "]
    accepted = 0
    for _ in range(600):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[pos] = rng.randrange(256)
            elif action < 0.7:
                data[pos:pos] = rng.choice(noise)
            else:
                del data[pos : pos + rng.randrange(1, 8)]
        block = bytes(data)
        if rng.random() < 0.2:
            block = block[: rng.randrange(len(block))]
        scanned = _native.scan_json(block)
        if isinstance(scanned, str):
            continue
        try:
            fast, records, _ = fast_json.native_block_to_table(block, scanned)
        except fast_json.Unsupported:
            continue
        slow, stats = tolerant(block)
        assert stats.skipped_records == 0 and stats.non_trace_lines == 0
        assert records == stats.records
        assert plain(fast).equals(plain(slow))
        accepted += 1
    assert accepted > 20  # mutations inside string values keep lines valid


def test_double_texts_are_python_reprs() -> None:
    import numpy as np

    from tailscope.ingest.flat import double_texts

    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.random(200_000),
            rng.random(200_000) * 10.0 ** rng.integers(-6, 20, 200_000),
            np.round(rng.random(50_000) * 1000, 2),
            rng.integers(-(10**6), 10**6, 50_000).astype(float),
            [0.0, -0.0, 1e-4, 1e16, 1e16 - 2, 2**52 + 0.5, 0.1 + 0.2, 5e-324, 1e300],
            [float("nan"), float("inf"), -float("inf")],
        ]
    )
    assert double_texts(values).to_pylist() == [repr(v) for v in values.tolist()]


def test_c_header_lists_the_schema_promotions() -> None:
    """The scanners' promoted keys (native/flat.h) are the schema's table, sorted, with their
    lengths: read from the header text, so this holds without the extension too."""
    import re

    from repo_paths import REPO

    header = (REPO / "tailscope/ingest/native/flat.h").read_text()
    keys_block = re.search(r"PROMOTED_KEYS\[N_PROMOTED\] = \{(.*?)\};", header, re.S)
    lengths_block = re.search(r"PROMOTED_LENGTHS\[N_PROMOTED\] = \{(.*?)\};", header, re.S)
    count = re.search(r"#define N_PROMOTED (\d+)", header)
    assert keys_block and lengths_block and count
    keys = re.findall(r'"([^"]+)"', keys_block.group(1))
    lengths = [int(n) for n in re.findall(r"\d+", lengths_block.group(1))]
    assert keys == sorted(s.PROMOTED_KEYS)
    assert lengths == [len(k) for k in keys]
    assert int(count.group(1)) == len(keys)


def test_native_scanner_is_built_when_a_compiler_is() -> None:
    """``pip install`` compiles the scanner wherever a C compiler is found; ``version`` says
    which reader is in use, and ``TAILSCOPE_NATIVE=0`` switches it off."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig

    from tailscope.ingest.flat import switched_off

    def version(switch: str) -> str:
        env = {**os.environ, "TAILSCOPE_NATIVE": switch}
        return subprocess.run(
            [sys.executable, "-m", "tailscope", "version"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout

    assert "OTLP/JSON reader: Python" in version("0")
    assert "switched off by TAILSCOPE_NATIVE=0" in version("0")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        assert native is None or not switched_off()
        return
    assert "OTLP/JSON reader: C scanner" in version("1")
    assert "OTLP protobuf reader: C scanner" in version("1")
    assert (native is None) == switched_off()


@requires_native
@pytest.mark.parametrize("seed", [4, 5])
def test_native_scanner_reads_pretty_printed_documents(tmp_path: Path, seed: int) -> None:
    import json

    _native = native
    assert _native is not None

    lines = sample_lines(1, seed).splitlines()
    doc = orjson.loads(lines[0])
    pretty = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    assert isinstance(_native.scan_json_document(pretty), dict)
    fast, records, _ = fast_json.native_block_to_table(pretty, _native.scan_json_document(pretty))
    slow, stats = tolerant(lines[0] + b"\n")
    assert records == stats.records
    assert plain(fast).equals(plain(slow))
    # end to end: the same table as the tolerant document reader, and counted the same
    path = tmp_path / "doc.json"
    path.write_bytes(pretty)
    native_result = read_spans([str(path)])
    assert plain(native_result.table).equals(plain(slow))
    assert native_result.stats.records == stats.records


def test_documents_the_scanner_declines_go_to_the_tolerant_reader(tmp_path: Path) -> None:
    """An array of documents, or a bad record inside one, is read (and counted) as before."""
    doc = orjson.loads(_one_span_line())
    bad = orjson.loads(NATIVE_FALLBACK_LINES["end before start"])
    path = tmp_path / "docs.json"
    path.write_bytes(orjson.dumps([doc, bad], option=orjson.OPT_INDENT_2))
    result = read_spans([str(path)])
    assert result.table.num_rows == 1
    assert result.stats.skipped_records == 1
    assert result.stats.problems[0].reason.startswith("end before start")


def test_gzip_is_decompressed_in_bounded_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A well-compressed chunk must not turn into one huge block (memory, parallelism); the
    content, concatenated members included, comes out whole and in order."""
    import gzip

    from tailscope.ingest import sources

    monkeypatch.setattr(sources, "READ_BYTES", 4096)
    text = sample_lines(80, 3)
    path = tmp_path / "two-members.jsonl.gz"
    path.write_bytes(gzip.compress(text) + gzip.compress(text))
    source = sources.Source(sources.expand_inputs([str(path)])[0], ProgressSink())
    stats = IngestStats()
    chunks = list(source.chunks(ProblemLog(stats, str(path))))
    assert max(len(c) for c in chunks) <= 4096
    assert b"".join(chunks) == text + text
    assert not stats.problems
    assert read_spans([str(path)]).table.num_rows == tolerant(text)[0].num_rows


@requires_native
def test_native_scanner_counts_metric_and_log_lines_like_the_tolerant_reader() -> None:
    block = b"\n".join(
        [
            _one_span_line(),
            b'{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[{"name":"m"}]}]}]}',
            b'{"resourceLogs":[]}',
            # spans win, as in the tolerant reader
            b'{"resourceSpans":[],"resourceLogs":[{"x":1}]}',
            _one_span_line(spanId="eee19b7ec3c1b175"),
        ]
    )
    _native = native
    assert _native is not None

    scanned = _native.scan_json(block + b"\n")
    assert isinstance(scanned, dict) and scanned["n_non_trace"] == 2
    fast, records, _ = fast_json.native_block_to_table(block + b"\n", scanned)
    slow, stats = tolerant(block + b"\n")
    assert stats.non_trace_lines == 2 and stats.skipped_records == 0
    assert records == stats.records == 2
    assert plain(fast).equals(plain(slow))
