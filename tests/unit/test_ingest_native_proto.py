"""The native protobuf scanner gives exactly the upb path's tables and problems, and hands
everything it cannot read exactly (malformed wire data, bad records, array/kvlist values ...)
back to upb instead of dropping or misreading it.

Each input is read twice with :func:`otlp_proto.read_chunks`: ``fast=False`` (upb + the per-span
Python loop, the reference) and ``fast=True`` (scanner + Arrow assembly, upb where the
scanner declines). Tables must be equal and the stats identical.
"""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from repo_paths import OTLP_CORPUS as OTLP
from tables import plain
from test_ingest_roundtrip import traces_data

from tailscope import schema as s
from tailscope.ingest import otlp_proto, read_spans
from tailscope.ingest.flat import native
from tailscope.ingest.model import IngestStats
from tailscope.ingest.problems import ProblemLog

pytestmark = pytest.mark.skipif(
    native is None, reason="C scanner not built or TAILSCOPE_NATIVE=0 (upb reads everything)"
)
_native: Any = native

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def read(
    data: bytes, fast: bool, chunk: int | None = None, batch_bytes: int | None = None
) -> tuple[pa.Table, IngestStats]:
    stats = IngestStats()
    chunks = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    extra: dict[str, Any] = {} if batch_bytes is None else {"batch_bytes": batch_bytes}
    tables = list(otlp_proto.read_chunks(chunks, ProblemLog(stats, "t"), fast=fast, **extra))
    table = pa.concat_tables(tables) if tables else s.empty_table()
    assert table.schema.equals(s.SPAN_SCHEMA)
    return plain(table), stats


def summary(stats: IngestStats) -> tuple[Any, ...]:
    return (stats.records, dict(stats.skipped), stats.problems, stats.unknown_service_resources)


def assert_same(data: bytes, chunk: int | None = None, batch_bytes: int | None = None) -> None:
    """Native equals upb as given, and also streamed in 7-byte chunks cut into tiny pieces."""
    want, want_stats = read(data, fast=False)
    for chunk_, batch in ((chunk, batch_bytes), (7, 16)):
        got, got_stats = read(data, fast=True, chunk=chunk_, batch_bytes=batch)
        assert got.equals(want), (got.to_pylist(), want.to_pylist())
        assert summary(got_stats) == summary(want_stats)


def framed(*messages: bytes) -> bytes:
    return b"".join(len(m).to_bytes(4, "big") + m for m in messages)


# ---------------------------------------------------------------- raw wire encoding
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(num: int, wire: int, payload: bytes | int) -> bytes:
    tag = varint(num << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return tag + varint(payload)
    if wire == 1:
        assert isinstance(payload, int)
        return tag + struct.pack("<Q", payload)
    if wire == 5:
        assert isinstance(payload, int)
        return tag + struct.pack("<I", payload)
    assert isinstance(payload, bytes)
    return tag + varint(len(payload)) + payload


def span_bytes(*extra: bytes, trace: bytes = TRACE, span: bytes = SPAN) -> bytes:
    return (
        field(1, 2, trace)
        + field(2, 2, span)
        + field(5, 2, b"op")
        + field(7, 1, 1_000)
        + field(8, 1, 2_000)
        + b"".join(extra)
    )


def message_of(*spans: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    scope_spans = field(1, 2, scope) + b"".join(field(2, 2, sp) for sp in spans)
    rs = field(1, 2, resource) + field(2, 2, scope_spans)
    return field(1, 2, rs)


def kv(key: bytes, value: bytes | None) -> bytes:
    return field(1, 2, key) + (b"" if value is None else field(2, 2, value))


# ---------------------------------------------------------------- inputs we have
@pytest.mark.parametrize("name", ["otlp2parquet-trace.pb", "otlp2parquet-traces.pb"])
def test_corpus_protobuf_files_scan_natively_and_match_upb(name: str) -> None:
    data = (OTLP / name).read_bytes()
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)
    assert_same(framed(data, data), chunk=7)


def test_simulated_protobuf_output_matches_upb(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tailscope.cli.app import app

    out = tmp_path / "sim.pb"
    args = ["generate", "gc-cascade", "--spans", "3000", "-o", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    payload = data[4 : 4 + int.from_bytes(data[:4], "big")]
    assert isinstance(_native.scan_proto(payload), dict)
    assert_same(data)
    assert_same(data, chunk=4096, batch_bytes=10_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=traces_data())
def test_random_messages_match_upb(msg: TracesData) -> None:
    data = msg.SerializeToString()
    assert_same(data)
    assert_same(data, batch_bytes=1)  # one piece per resource
    frames = []
    for rs in msg.resource_spans:
        one = TracesData()
        one.resource_spans.append(rs)
        frames.append(one.SerializeToString())
    assert_same(framed(*frames), chunk=5)
    assert_same(framed(*frames), batch_bytes=1)


def test_messages_without_array_or_kvlist_values_are_scanned_natively() -> None:
    msg = TracesData()
    rs = msg.resource_spans.add()
    # arrays in the resource are fine: Python decodes the resource with upb
    rs.resource.attributes.add(key="process.command_args").value.array_value.values.add(
        string_value="run"
    )
    sp = rs.scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN, name="x")
    for key, value in [
        ("s", AnyValue(string_value="ü")),
        ("b", AnyValue(bool_value=True)),
        ("i", AnyValue(int_value=-(2**63))),
        ("d", AnyValue(double_value=math.nan)),
        ("y", AnyValue(bytes_value=b"\x00\xff\x10")),
        ("e", AnyValue()),
    ]:
        sp.attributes.add(key=key).value.CopyFrom(value)
    data = msg.SerializeToString()
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)


# ---------------------------------------------------------------- adversarial inputs
def small_message() -> bytes:
    msg = TracesData()
    rs = msg.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    sp = ss.spans.add(trace_id=TRACE, span_id=SPAN, parent_span_id=b"\x01\x02", name="GET")
    sp.start_time_unix_nano = 5
    sp.end_time_unix_nano = 9
    sp.kind = 2  # type: ignore[assignment]
    sp.status.code = 2  # type: ignore[assignment]
    sp.status.message = "boom"
    sp.flags = 257
    sp.trace_state = "k=v"
    sp.attributes.add(key="http.response.status_code").value.int_value = 503
    sp.attributes.add(key="w").value.double_value = 0.25
    sp.events.add(time_unix_nano=7, name="ev").attributes.add(key="k").value.bool_value = False
    sp.links.add(trace_id=TRACE[::-1], span_id=b"\x07").attributes.add(
        key="l"
    ).value.bytes_value = b"ab"
    return msg.SerializeToString()


def test_small_message_scans_natively() -> None:
    assert isinstance(_native.scan_proto(small_message()), dict)
    assert_same(small_message())


def test_truncated_at_every_byte() -> None:
    data = small_message()
    for cut in range(len(data)):
        assert isinstance(_native.scan_proto(data[:cut]), dict | str)
        assert_same(data[:cut])
        assert_same(framed(data[:cut], data), batch_bytes=1 << 20)


def test_random_byte_flips_never_crash_and_match_upb() -> None:
    rng = random.Random(11)
    data = small_message()
    for _ in range(1500):
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        mutated = bytes(flipped)
        assert isinstance(_native.scan_proto(mutated), dict | str)
        assert_same(mutated)


def test_random_bytes_never_crash() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        blob = rng.randbytes(rng.randrange(0, 64))
        assert isinstance(_native.scan_proto(blob), dict | str)
    assert isinstance(_native.scan_proto(bytearray(small_message())), dict)
    with pytest.raises(TypeError):
        _native.scan_proto("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 3, 7, 8, 9, 15, 16, 17])
def test_ids_of_odd_lengths(size: int) -> None:
    ident = bytes(range(1, size + 1))
    cases = [
        message_of(span_bytes(trace=ident)),
        message_of(span_bytes(span=ident)),
        message_of(span_bytes(field(4, 2, ident))),
        message_of(span_bytes(field(13, 2, field(1, 2, ident) + field(2, 2, SPAN)))),
        message_of(span_bytes(field(13, 2, field(1, 2, TRACE) + field(2, 2, ident)))),
    ]
    for data in cases:
        assert_same(data)
    native = _native.scan_proto(cases[0])
    assert isinstance(native, dict) == (size <= 16)


@pytest.mark.parametrize(
    "extra",
    [
        field(4, 2, bytes(8)),  # all-zero parent: a root
        field(4, 2, b"\x00"),
        field(4, 2, b""),
        field(13, 2, field(2, 2, SPAN)),  # link without trace id
        field(13, 2, field(1, 2, bytes(16)) + field(2, 2, SPAN)),  # all-zero link id
    ],
)
def test_parent_and_link_edge_ids(extra: bytes) -> None:
    assert_same(message_of(span_bytes(extra)))


@pytest.mark.parametrize(
    "span",
    [
        span_bytes(trace=b""),
        span_bytes(trace=bytes(16)),
        span_bytes(span=bytes(3)),
        span_bytes(field(8, 1, 999)),  # end before start
        span_bytes(field(7, 1, 2**63)),  # beyond int64
        span_bytes(field(8, 1, 2**64 - 1)),
        span_bytes(field(6, 0, 6)),  # unknown kind
        span_bytes(field(6, 0, -1)),
        span_bytes(field(6, 0, 2**32 + 2)),
        span_bytes(field(15, 2, field(3, 0, 3))),  # unknown status code
        span_bytes(field(11, 2, field(1, 1, 2**63))),  # event time beyond int64
    ],
)
def test_bad_spans_are_left_to_upb(span: bytes) -> None:
    good = span_bytes(span=b"\x09" * 8)
    data = message_of(good, span)
    assert isinstance(_native.scan_proto(data), str)
    assert_same(data)
    assert_same(framed(message_of(good), data, message_of(span_bytes())))


DOUBLES = [0.0, -0.0, 0.1, 1e16, 1e-5, 5e-324, 1.7976931348623157e308, math.inf, -math.inf]


@pytest.mark.parametrize(
    "value",
    [
        field(1, 2, b""),
        field(1, 2, "grüß 🙂".encode()),
        field(2, 0, 0),
        field(2, 0, 1),
        field(2, 0, 2),  # bool given as 2 reads as true
        field(3, 0, 0),
        field(3, 0, -1),
        field(3, 0, -(2**63)),
        field(3, 0, 2**63 - 1),
        *(field(4, 1, struct.unpack("<Q", struct.pack("<d", d))[0]) for d in DOUBLES),
        field(4, 1, 0x7FF8000000000001),  # a NaN with payload
        field(4, 1, 0xFFF8000000000000),  # negative NaN
        field(7, 2, b""),
        field(7, 2, b"\x00"),
        field(7, 2, b"\xff\xfe"),
        field(7, 2, bytes(range(256))),
        b"",  # no member set
        field(9, 0, 5),  # unknown member only
        field(2, 0, 1) + field(3, 0, 4),  # two members: upb keeps the last
        field(1, 2, b"a") + field(1, 2, b"b"),
    ],
)
def test_attribute_values_match_upb(value: bytes) -> None:
    attrs = field(9, 2, kv(b"k", value)) + field(9, 2, kv(b"http.status_code", value))
    event = field(11, 2, field(1, 1, 1_500) + field(3, 2, kv(b"e", value)))
    link = field(13, 2, field(1, 2, TRACE) + field(2, 2, SPAN) + field(4, 2, kv(b"l", value)))
    assert_same(message_of(span_bytes(attrs, event, link)))


def test_missing_value_and_key() -> None:
    assert_same(message_of(span_bytes(field(9, 2, kv(b"k", None)), field(9, 2, b""))))


ODD_TEXT = "".join(map(chr, range(0x20))) + '"\\/\x7f\u2028é🙂'


def _array(*values: AnyValue) -> AnyValue:
    return AnyValue(array_value={"values": list(values)})


def _kvlist(**values: AnyValue) -> AnyValue:
    return AnyValue(kvlist_value={"values": [KeyValue(key=k, value=v) for k, v in values.items()]})


@pytest.mark.parametrize(
    "value",
    [
        _array(AnyValue(int_value=-1), AnyValue(string_value=ODD_TEXT), AnyValue()),
        _array(AnyValue(bool_value=True), AnyValue(bytes_value=b"\x00\xff"), _array()),
        _kvlist(a=AnyValue(bool_value=False), b=_kvlist(), c=_array(_kvlist(d=AnyValue()))),
        AnyValue(kvlist_value={"values": [KeyValue(key=ODD_TEXT)]}),
        _array(),
        _kvlist(),
    ],
)
def test_array_and_kvlist_values_render_natively(value: AnyValue) -> None:
    data = message_of(span_bytes(field(9, 2, kv(b"error.type", value.SerializeToString()))))
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)


@pytest.mark.parametrize(
    "value",
    [
        _array(AnyValue(int_value=1), AnyValue(double_value=0.5)),
        _kvlist(x=_array(AnyValue(double_value=math.nan))),
        AnyValue(string_value_strindex=3),
        _array(AnyValue(string_value_strindex=3)),
    ],
)
def test_doubles_inside_arrays_and_string_tables_fall_back(value: AnyValue) -> None:
    data = message_of(span_bytes(field(9, 2, kv(b"k", value.SerializeToString()))))
    assert isinstance(_native.scan_proto(data), str)
    assert_same(data)


def test_array_members_given_twice_fall_back() -> None:
    twice = field(5, 2, field(1, 2, field(1, 2, b"a") + field(3, 0, 1)))
    data = message_of(span_bytes(field(9, 2, kv(b"k", twice))))
    assert isinstance(_native.scan_proto(data), str)
    assert_same(data)


@pytest.mark.parametrize("wire", [0, 1, 2, 5])
@pytest.mark.parametrize("where", ["top", "resource_spans", "scope_spans", "span", "any", "kv"])
def test_unknown_fields_are_skipped(wire: int, where: str) -> None:
    unknown = field(99, wire, b"xyz" if wire == 2 else 12345)
    value = field(1, 2, b"v") + (unknown if where == "any" else b"")
    attr = kv(b"k", value) + (unknown if where == "kv" else b"")
    span = span_bytes(field(9, 2, attr), unknown if where == "span" else b"")
    scope_spans = field(2, 2, span) + (unknown if where == "scope_spans" else b"")
    rs = field(2, 2, scope_spans) + (unknown if where == "resource_spans" else b"")
    data = field(1, 2, rs) + (unknown if where == "top" else b"")
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)


@pytest.mark.parametrize(
    "data",
    [
        message_of(span_bytes(field(5, 2, b"\xff"))),  # span name not UTF-8
        message_of(span_bytes(field(5, 2, b"\xed\xa0\x80"))),  # a surrogate
        message_of(span_bytes(field(5, 2, b"\xc0\xaf"))),  # overlong
        message_of(span_bytes(field(5, 2, b"\xf4\x90\x80\x80"))),  # above U+10FFFF
        message_of(span_bytes(field(9, 2, kv(b"\xfe", field(1, 2, b"v"))))),
        message_of(span_bytes(field(9, 2, kv(b"k", field(1, 2, b"caf\xe9"))))),
        message_of(span_bytes(), scope=field(1, 2, b"\x80")),
        message_of(span_bytes(), resource=field(1, 2, kv(b"service.name", field(1, 2, b"\xff")))),
        message_of(span_bytes(varint(99 << 3 | 3) + varint(99 << 3 | 4))),  # a group
        message_of(span_bytes(b"\x9c\x06\x00")),  # field 99 wire type 4
        message_of(span_bytes(field(5, 0, 1))),  # name with the wrong wire type
        message_of(span_bytes(field(15, 2, b""), field(15, 2, field(3, 0, 1)))),  # status twice
        field(1, 2, field(1, 2, b"") + field(1, 2, b"")),  # resource twice
        b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",  # 11-byte varint
        b"\x00\x00",  # field number 0
    ],
)
def test_malformed_or_unusual_wire_data_is_left_to_upb(data: bytes) -> None:
    assert isinstance(_native.scan_proto(data), str)
    assert_same(data)
    assert_same(framed(message_of(span_bytes()), data))


@pytest.mark.parametrize("depth", [5, 60, 120])
def test_deeply_nested_resource_values(depth: int) -> None:
    value = field(1, 2, b"leaf")
    for _ in range(depth):
        value = field(5, 2, field(1, 2, value))  # an array holding the value
    resource = field(1, 2, kv(b"deep", value))
    data = message_of(span_bytes(), resource=resource)
    assert isinstance(_native.scan_proto(data), dict) == (depth < 10)
    assert_same(data)


def test_long_scalar_values_and_last_one_wins() -> None:
    data = message_of(
        span_bytes(
            field(5, 2, b"second-name"),
            field(1, 2, TRACE[::-1]),
            field(16, 5, 0),
            field(3, 2, b""),
            field(9, 2, kv(b"k" * 70_000, field(1, 2, b"v" * 100_000))),
        )
    )
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)


def test_resources_without_spans_and_empty_messages() -> None:
    empty_rs = field(1, 2, field(1, 2, field(1, 2, kv(b"host.name", field(1, 2, b"h")))))
    data = empty_rs + message_of(span_bytes()) + field(1, 2, b"")
    assert isinstance(_native.scan_proto(data), dict)
    assert_same(data)
    assert_same(framed(b"", data, b""))
    assert _native.scan_proto(b"")["n_spans"] == 0  # type: ignore[index]


def test_framed_streams_in_any_chunk_size() -> None:
    frames = [small_message(), message_of(span_bytes(span=b"\x05" * 8)), b"", small_message()]
    data = framed(*frames)
    for chunk in (1, 2, 3, 5, 64, len(data)):
        assert_same(data, chunk=chunk)
        assert_same(data, chunk=chunk, batch_bytes=1)
    # truncated frame and partial length prefix at the end
    assert_same(data + b"\x00\x00\x00\x10\x0a", chunk=3)
    assert_same(data + b"\x00\x00", chunk=3)


def test_read_spans_streams_gzip_framed_input(tmp_path: Path) -> None:
    import gzip

    data = framed(small_message(), message_of(span_bytes(span=b"\x05" * 8)))
    path = tmp_path / "spans.pb.gz"
    path.write_bytes(gzip.compress(data))
    table = read_spans([str(path)]).table
    want, _ = read(data, fast=False)
    assert plain(table).equals(want)


def test_bad_messages_among_many_frames() -> None:
    rng = random.Random(5)
    frames = []
    for i in range(40):
        span = span_bytes(span=(i + 1).to_bytes(8, "big"))
        if rng.random() < 0.15:
            span = span_bytes(field(8, 1, 0), span=(i + 1).to_bytes(8, "big"))  # end < start
        frames.append(message_of(span))
    frames[17] = frames[17][:-3]  # one truncated message as well
    assert_same(framed(*frames))
    assert_same(framed(*frames), chunk=50, batch_bytes=300)


def test_problem_order_with_a_truncated_last_frame() -> None:
    frames = [
        message_of(span_bytes(field(6, 0, 9), span=(i + 1).to_bytes(8, "big"))) for i in range(6)
    ]
    data = framed(*frames) + b"\x00\x00\x01\x00\x0a\x01"
    assert_same(data, batch_bytes=1)
    stats = read(data, fast=True, batch_bytes=1)[1]
    assert [p.reason.split(":")[0] for p in stats.problems] == ["unknown span kind"] * 6 + [
        "truncated message"
    ]


@pytest.mark.parametrize("shape", ["single", "framed"])
def test_strict_fails_on_the_same_first_problem(shape: str) -> None:
    from tailscope.errors import InputError

    good = [message_of(span_bytes(span=(i + 1).to_bytes(8, "big"))) for i in range(5)]
    bad = message_of(span_bytes(field(6, 0, 7), span=b"\x77" * 8))
    parts = [*good[:2], bad, *good[2:], bad]
    data = b"".join(parts) if shape == "single" else framed(*parts)
    errors = []
    for fast in (False, True):
        log = ProblemLog(IngestStats(), "t", strict=True)
        with pytest.raises(InputError) as caught:
            list(otlp_proto.read_chunks([data], log, fast=fast, batch_bytes=16))
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "unknown span kind" in errors[0]
