"""How Jaeger and Zipkin fields land in the span schema: checked field by field against values
computed by hand (or with the standard library) from real corpus files and small hand-built
documents, plus bad input (counted skips, never a traceback) and sniffing specificity."""

from __future__ import annotations

import calendar
import hashlib
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_paths import CORPUS as _CORPUS

from tailscope import schema as s
from tailscope.ingest import jaeger, zipkin
from tailscope.ingest.model import IngestStats
from tailscope.schema import SpanKind, StatusCode, ValueType

CORPUS = _CORPUS
JAEGER = CORPUS / "jaeger"
ZIPKIN = CORPUS / "zipkin"


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()  # type: ignore[no-any-return]


def _by_name(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r[s.NAME] == name]


def _attrs(row: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {a["key"]: (a["value"], a["type"]) for a in row[s.ATTRIBUTES]}


def _read_jaeger(doc: object) -> tuple[list[dict[str, Any]], IngestStats]:
    stats = IngestStats()
    table = jaeger.read(orjson.dumps(doc), "hand.json", stats)
    assert table.schema == s.SPAN_SCHEMA
    return _rows(table), stats


def _read_zipkin(doc: object) -> tuple[list[dict[str, Any]], IngestStats]:
    stats = IngestStats()
    table = zipkin.read(orjson.dumps(doc), "hand.json", stats)
    assert table.schema == s.SPAN_SCHEMA
    return _rows(table), stats


def _hex_id(text: str, size: int) -> bytes:
    return bytes.fromhex(text.rjust(2 * size, "0"))


# --- Jaeger -------------------------------------------------------------------------------------


def _jaeger_file(name: str) -> list[dict[str, Any]]:
    stats = IngestStats()
    rows = _rows(jaeger.read((JAEGER / name).read_bytes(), name, stats))
    assert stats.skipped_records == 0
    return rows


def test_jaeger_ui_model_typed_tags_status_and_logs() -> None:
    rows = _jaeger_file("jaeger-ui_01.json")
    trace = _hex_id("1", 16)
    assert {r[s.TRACE_ID] for r in rows} == {trace}
    first = _by_name(rows, "test-general-conversion")[0]
    assert first[s.SPAN_ID] == _hex_id("2", 8)
    start_ns = 1485467191639875 * 1000
    assert (first[s.START], first[s.END], first[s.DURATION]) == (start_ns, start_ns + 5000, 5000)
    assert first[s.SERVICE] == "service-x"
    assert first[s.INSTANCE] == "service-x"  # no host, no client-uuid: the service name
    assert [(e["time_unix_nano"], e["name"]) for e in first[s.EVENTS]] == [
        (start_ns, "some-event"),
        (start_ns, ""),
    ]
    assert first[s.EVENTS][1]["attributes"] == [{"key": "x", "value": "y", "type": 1}]

    tagged = _by_name(rows, "some-operation")
    errored = next(r for r in tagged if r[s.PARENT_SPAN_ID] is None)
    assert _attrs(errored) == {
        "peer.service": ("service-y", ValueType.STRING),
        "peer.ipv4": ("23456", ValueType.INT),
        "error": ("true", ValueType.BOOL),
        "temperature": ("72.5", ValueType.DOUBLE),
        "javascript_limit": ("9223372036854775222", ValueType.INT),
        "blob": ("AAAwOQ==", ValueType.BYTES),
        jaeger.ORIGINAL_SPAN_ID_KEY: ("0000000000000002", ValueType.STRING),
    }
    assert errored[s.STATUS_CODE] == StatusCode.ERROR
    assert first[s.STATUS_CODE] == StatusCode.UNSET


def test_jaeger_reused_span_id_becomes_a_distinct_span_with_a_derived_id() -> None:
    rows = _jaeger_file("jaeger-ui_01.json")
    trace, original = _hex_id("1", 16), _hex_id("2", 8)
    reused = next(r for r in rows if jaeger.ORIGINAL_SPAN_ID_KEY in _attrs(r))
    assert reused[s.SPAN_ID] == jaeger.derived_span_id(trace, original, b"jaeger#1")
    assert (
        reused[s.SPAN_ID] == hashlib.blake2b(trace + original + b"jaeger#1", digest_size=8).digest()
    )
    # Children of id 2 stay with the first span that used it.
    child = next(r for r in rows if r[s.SPAN_ID] == _hex_id("3", 8))
    assert child[s.PARENT_SPAN_ID] == original
    assert child[s.SERVICE] == "service-y"


def test_jaeger_references_parent_links_and_follows_from() -> None:
    rows = _jaeger_file("jaeger-ui_01.json")
    span4 = next(r for r in rows if r[s.SPAN_ID] == _hex_id("4", 8))
    # First CHILD_OF reference *in the same trace* is the parent (the one to trace ff is not).
    assert span4[s.PARENT_SPAN_ID] == _hex_id("2", 8)
    assert jaeger.REFERENCE_TYPE_KEY not in _attrs(span4)
    links = [(x["trace_id"], x["span_id"], x["attributes"][0]["value"]) for x in span4[s.LINKS]]
    assert links == [
        (_hex_id("ff", 16), _hex_id("ff", 8), "CHILD_OF"),
        (_hex_id("1", 16), _hex_id("2", 8), "FOLLOWS_FROM"),
    ]

    graph = _jaeger_file("jaeger-ui-TraceGraph-testTrace.json")
    consumer = _by_name(graph, "op3")
    follows = next(r for r in consumer if r[s.KIND] == SpanKind.CONSUMER)
    producer = next(r for r in graph if r[s.NAME] == "op4")
    assert follows[s.PARENT_SPAN_ID] == producer[s.SPAN_ID]
    assert _attrs(follows)[jaeger.REFERENCE_TYPE_KEY] == ("FOLLOWS_FROM", ValueType.STRING)
    assert [x["span_id"] for x in follows[s.LINKS]] == [producer[s.SPAN_ID]]
    assert producer[s.KIND] == SpanKind.PRODUCER


def test_jaeger_opaque_ids_are_hashed_consistently() -> None:
    rows = _jaeger_file("jaeger-ui-TraceGraph-testTrace.json")
    assert {r[s.TRACE_ID] for r in rows} == {jaeger.opaque_id("trace-123", 16)}
    by_original = {_attrs(r)[jaeger.ORIGINAL_SPAN_ID_KEY][0]: r for r in rows}
    assert by_original["span-1"][s.SPAN_ID] == jaeger.opaque_id("span-1", 8)
    assert by_original["span-4"][s.PARENT_SPAN_ID] == by_original["span-3"][s.SPAN_ID]
    assert by_original["span-5"][s.DB_SYSTEM] == "sql"  # OpenTracing db.type
    assert by_original["span-2"][s.STATUS_CODE] == StatusCode.ERROR  # bool tag written "true"
    assert by_original["span-1"][s.HOST] == "foobar.org"
    assert by_original["span-1"][s.INSTANCE] == "foobar.org"


def test_jaeger_short_ids_are_left_padded() -> None:
    name = "jaeger-ui-TraceStatistics-tableValuesTestTrace-spanLongerAsParent.json"
    raw = orjson.loads((JAEGER / name).read_bytes())
    rows = _jaeger_file(name)
    expected = {(_hex_id(x["traceID"], 16), _hex_id(x["spanID"], 8)) for x in raw["spans"]}
    assert {(r[s.TRACE_ID], r[s.SPAN_ID]) for r in rows} == expected
    assert any(len(x["spanID"]) == 14 for x in raw["spans"])


def test_jaeger_domain_model_matches_the_ui_model_of_the_same_trace() -> None:
    ui = _jaeger_file("jaeger-ui_01.json")
    domain = _jaeger_file("jaeger-domain_01.json")
    # 2017-01-26T16:46:31.639875139-05:00 is 21:46:31 UTC; the UI model keeps microseconds.
    start_ns = calendar.timegm((2017, 1, 26, 21, 46, 31)) * 10**9 + 639_875_139
    assert {r[s.START] for r in domain} == {start_ns}
    assert sorted(r[s.DURATION] for r in domain) == [4000, 5000, 5000, 5000, 5000]

    def shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                r[s.TRACE_ID],
                r[s.SPAN_ID],
                r[s.PARENT_SPAN_ID],
                r[s.NAME],
                r[s.SERVICE],
                r[s.START] // 1000,
                r[s.STATUS_CODE],
                sorted(_attrs(r).items()),
            )
            for r in rows
        )

    assert shape(domain) == shape(ui)


def test_jaeger_process_tags_give_host_instance_and_language() -> None:
    def trace(process: dict[str, Any]) -> dict[str, Any]:
        return {
            "data": [
                {
                    "traceID": "abc",
                    "spans": [
                        {
                            "traceID": "abc",
                            "spanID": "1",
                            "operationName": "op",
                            "startTime": 10,
                            "duration": 2,
                            "processID": "p1",
                        }
                    ],
                    "processes": {"p1": process},
                }
            ]
        }

    tags = [
        {"key": "hostname", "type": "string", "value": "box-1"},
        {"key": "ip", "type": "string", "value": "10.0.0.7"},
        {"key": "client-uuid", "type": "string", "value": "6b2c1f"},
        {"key": "jaeger.version", "type": "string", "value": "Go-2.30.0"},
    ]
    (row,), _ = _read_jaeger(trace({"serviceName": "api", "tags": tags}))
    assert (row[s.SERVICE], row[s.HOST], row[s.INSTANCE], row[s.LANGUAGE]) == (
        "api",
        "box-1",
        "6b2c1f",
        "go",
    )
    assert orjson.loads(row[s.RESOURCE_ATTRIBUTES])["ip"] == {"stringValue": "10.0.0.7"}
    assert (row[s.START], row[s.END]) == (10_000, 12_000)

    pid_tags = [
        {"key": "hostname", "type": "string", "value": "box-2"},
        {"key": "process.pid", "type": "int64", "value": 42},
        {"key": "telemetry.sdk.language", "type": "string", "value": "java"},
        {"key": "jaeger.version", "type": "string", "value": "Node-3.1"},
    ]
    (row,), _ = _read_jaeger(trace({"serviceName": "api", "tags": pid_tags}))
    assert (row[s.INSTANCE], row[s.LANGUAGE]) == ("box-2:42", "java")

    (row,), stats = _read_jaeger(trace({"tags": []}))
    assert row[s.SERVICE] == s.UNKNOWN_SERVICE
    assert stats.unknown_service_resources == 1


@pytest.mark.parametrize(
    ("duration", "expected_ns"),
    [
        (7, 7_000),
        ("7", 7_000),
        ("5000ns", 5_000),
        ("250us", 250_000),
        ("1.5ms", 1_500_000),
        ("2s", 2_000_000_000),
        ("0.000005s", 5_000),
    ],
)
def test_jaeger_durations(duration: object, expected_ns: int) -> None:
    assert jaeger.parse_duration(duration) == expected_ns


def test_jaeger_bad_spans_are_counted_and_skipped() -> None:
    good = {"traceID": "a1", "spanID": "b2", "operationName": "ok", "startTime": 1, "duration": 1}
    doc = {
        "traceID": "a1",
        "spans": [
            good,
            {**good, "spanID": ""},
            {**good, "spanID": "b3", "duration": "soon"},
            {**good, "spanID": "b4", "tags": "nope"},
            {**good, "spanID": "b5", "startTime": "yesterday"},
            "not a span",
        ],
    }
    rows, stats = _read_jaeger(doc)
    assert [r[s.NAME] for r in rows] == ["ok"]
    assert stats.records == 6
    assert stats.skipped == {
        "missing span id": 1,
        "bad duration": 1,
        "wrong shape": 2,
        "bad start time": 1,
    }
    assert all(p.file == "hand.json" for p in stats.problems)

    stats = IngestStats()
    assert jaeger.read(b'{"data": [', "broken.json", stats).num_rows == 0
    assert stats.skipped == {"not JSON": 1}


# --- Zipkin -------------------------------------------------------------------------------------


def _zipkin_file(name: str) -> list[dict[str, Any]]:
    stats = IngestStats()
    rows = _rows(zipkin.read((ZIPKIN / name).read_bytes(), name, stats))
    assert stats.skipped_records == 0
    return rows


def test_zipkin_fields_of_a_real_envoy_span() -> None:
    (row,) = _zipkin_file("envoy.json")
    assert row[s.TRACE_ID] == _hex_id("978883983d506fa5", 16)
    assert row[s.SPAN_ID] == _hex_id("978883983d506fa5", 8)  # shared but alone: keeps its id
    assert row[s.PARENT_SPAN_ID] is None
    assert row[s.KIND] == SpanKind.SERVER
    assert (row[s.START], row[s.DURATION]) == (1570523661059232_000, 127115_000)
    assert row[s.SERVICE] == s.UNKNOWN_SERVICE
    assert (row[s.HOST], row[s.INSTANCE]) == ("169.254.65.45", "169.254.65.45")
    assert row[s.HTTP_STATUS_CODE] == 200
    assert _attrs(row)["http.method"] == ("GET", ValueType.STRING)
    assert _attrs(row)[zipkin.SHARED_KEY] == ("true", ValueType.BOOL)


def test_zipkin_trace_ids_of_both_widths() -> None:
    skew = _zipkin_file("skew.json")
    assert {r[s.TRACE_ID] for r in skew} == {bytes(8) + bytes.fromhex("1e223ff1f80f1c69")}
    messaging = _zipkin_file("messaging.json")
    assert {r[s.TRACE_ID] for r in messaging} == {bytes.fromhex("5aab74dbb904746bb33447baae403ed6")}
    consumer = next(r for r in messaging if r[s.NAME] == "next-message")
    assert consumer[s.KIND] == SpanKind.CONSUMER
    assert _attrs(consumer)["peer.service"] == ("rabbitmq", ValueType.STRING)
    assert consumer[s.SERVER_ADDRESS] is None  # the remote of a consumer is not its server
    producer = next(r for r in messaging if r[s.NAME] == "publish")
    assert producer[s.SERVER_ADDRESS] == "rabbitmq"
    local = next(r for r in messaging if r[s.NAME] == "on-message")
    assert local[s.KIND] == SpanKind.INTERNAL  # no kind: a local span
    assert local[s.INSTANCE] == "192.168.0.10"


def test_zipkin_shared_halves_get_distinct_ids_and_children_follow_the_server() -> None:
    rows = _zipkin_file("skew.json")
    trace, shared_id = bytes(8) + bytes.fromhex("1e223ff1f80f1c69"), _hex_id("74280ae0c10d8062", 8)
    client = next(r for r in rows if r[s.KIND] == SpanKind.CLIENT)
    server = next(r for r in rows if r[s.NAME] == "post" and r[s.KIND] == SpanKind.SERVER)
    child = next(r for r in rows if r[s.NAME] == "async")
    assert client[s.SPAN_ID] == shared_id
    assert client[s.PARENT_SPAN_ID] == _hex_id("bf396325699c84bf", 8)
    salt = b"zipkin-shared|serviceb|192.0.0.0|||1470150004008761"
    assert server[s.SPAN_ID] == jaeger.derived_span_id(trace, shared_id, salt)
    assert server[s.PARENT_SPAN_ID] == shared_id
    assert child[s.PARENT_SPAN_ID] == server[s.SPAN_ID]  # same local endpoint as the server
    assert child[s.SERVICE] == "serviceb"


def test_zipkin_hand_built_fragments_missing_fields_and_errors() -> None:
    base = {"traceId": "0af7651916cd43dd", "localEndpoint": {"serviceName": "web"}}
    doc = [
        {
            **base,
            "id": "0000000000000001",
            "kind": "SERVER",
            "name": "get",
            "timestamp": 1000,
            "duration": 50,
            "tags": {"error": "boom"},
            "annotations": [{"timestamp": 1010, "value": "ws"}],
        },
        {
            **base,
            "id": "0000000000000001",
            "tags": {"late": "tag"},
            "annotations": [{"timestamp": 1040, "value": "wr"}],
        },
        {**base, "id": "2", "parentId": "1", "kind": "CLIENT", "name": "fire", "timestamp": 1020},
        {**base, "id": "3", "name": "lost"},
        {**base, "id": "4", "kind": "SIDEWAYS", "timestamp": 1, "duration": 1},
    ]
    rows, stats = _read_zipkin(doc)
    assert stats.records == 5
    assert stats.duplicates_dropped == 1
    assert stats.skipped == {"missing timestamp": 1, "unknown span kind": 1}
    server, fire = rows
    assert _attrs(server)["late"] == ("tag", ValueType.STRING)
    assert [(e["time_unix_nano"], e["name"]) for e in server[s.EVENTS]] == [
        (1_010_000, "ws"),
        (1_040_000, "wr"),
    ]
    assert (server[s.STATUS_CODE], server[s.STATUS_MESSAGE]) == (StatusCode.ERROR, "boom")
    assert (fire[s.START], fire[s.END], fire[s.DURATION]) == (1_020_000, 1_020_000, 0)
    assert _attrs(fire)[zipkin.DURATION_MISSING_KEY] == ("true", ValueType.BOOL)
    assert fire[s.PARENT_SPAN_ID] == _hex_id("1", 8)


def test_zipkin_error_tag_with_empty_value_is_still_an_error() -> None:
    rows = _zipkin_file("messaging-kafka.json")
    raw = orjson.loads((ZIPKIN / "messaging-kafka.json").read_bytes())
    errored_ids = {_hex_id(x["id"], 8) for x in raw if "error" in (x.get("tags") or {})}
    assert {r[s.SPAN_ID] for r in rows if r[s.STATUS_CODE] == StatusCode.ERROR} == errored_ids
    messages = sorted((r[s.STATUS_MESSAGE] or "") for r in rows if r[s.SPAN_ID] in errored_ids)
    assert messages == ["", "some error", "some error"]


def test_zipkin_list_of_traces_is_accepted() -> None:
    spans = orjson.loads((ZIPKIN / "messaging.json").read_bytes())
    stats = IngestStats()
    nested = zipkin.read(orjson.dumps([spans, spans[:1]]), "nested.json", stats)
    assert nested.num_rows == 5
    assert stats.records == 5


# --- sniffing -----------------------------------------------------------------------------------


def test_sniffers_do_not_claim_otlp_or_arbitrary_json() -> None:
    for path in sorted((CORPUS / "otlp").iterdir()) + sorted((CORPUS / "otlp-invalid").iterdir()):
        head = path.read_bytes()[:65536]
        assert not jaeger.sniff(head), path.name
        assert not zipkin.sniff(head), path.name
    others = [
        b"[1, 2, 3]",
        b'[{"id": "1", "name": "x"}]',
        b'{"traceID": "1", "spanID": "2"}',
        b'[{"traceId": "abc", "id": "1", "annotations": [], "binaryAnnotations": []}]',
        b"traceId,id,operationName\n1,2,3\n",
    ]
    for head in others:
        assert not jaeger.sniff(head), head
        assert not zipkin.sniff(head), head


def test_jaeger_repeats_keep_their_id_and_zipkin_style_server_reuse_is_a_child() -> None:
    client = {
        "traceID": "a1",
        "spanID": "b2",
        "operationName": "call",
        "startTime": 100,
        "duration": 50,
        "tags": [{"key": "span.kind", "type": "string", "value": "client"}],
    }
    server = {
        **client,
        "operationName": "serve",
        "startTime": 110,
        "duration": 30,
        "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
    }
    rows, stats = _read_jaeger({"data": [{"spans": [client, server, server, client]}]})
    assert stats.records == 4
    ids = [r[s.SPAN_ID] for r in rows]
    original = _hex_id("b2", 8)
    derived = jaeger.derived_span_id(_hex_id("a1", 16), original, b"jaeger#1")
    # Identical repeats keep the id of their first copy: the dispatcher drops them.
    assert ids == [original, derived, derived, original]
    assert rows[1][s.PARENT_SPAN_ID] == original
    assert rows[1][s.KIND] == SpanKind.SERVER


def test_jaeger_api_error_document_says_what_the_api_said() -> None:
    stats = IngestStats()
    doc = b'{"data": null, "errors": [{"code": 404, "msg": "trace not found"}]}'
    assert jaeger.read(doc, "err.json", stats).num_rows == 0
    assert stats.skipped == {"no trace": 1}
    assert stats.problems[0].reason.endswith("the API said: trace not found")


def test_zipkin_zero_timestamp_is_unset() -> None:
    span = {"traceId": "1", "id": "2", "name": "x", "timestamp": 0, "duration": 5}
    rows, stats = _read_zipkin([span])
    assert rows == []
    assert stats.skipped == {"missing timestamp": 1}


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
_KEYS = st.sampled_from(
    [
        "traceID",
        "spanID",
        "traceId",
        "id",
        "parentId",
        "operationName",
        "startTime",
        "duration",
        "timestamp",
        "tags",
        "logs",
        "references",
        "process",
        "processID",
        "localEndpoint",
        "kind",
        "shared",
        "annotations",
        "refType",
        "spanId",
        "fields",
        "key",
        "value",
        "type",
        "vType",
    ]
)
_SPANISH = st.recursive(
    _JSON,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=8),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None)
@given(document=st.one_of(_SPANISH, st.fixed_dictionaries({"data": st.lists(_SPANISH)})))
def test_readers_never_raise_on_arbitrary_json(document: object) -> None:
    data = orjson.dumps(document)
    for reader in (jaeger, zipkin):
        stats = IngestStats()
        table = reader.read(data, "fuzz.json", stats)
        assert table.schema == s.SPAN_SCHEMA
        assert table.num_rows + stats.skipped_records + stats.duplicates_dropped >= stats.records


def test_readers_never_raise_on_truncated_corpus_files() -> None:
    for path in [*sorted(JAEGER.glob("*.json")), *sorted(ZIPKIN.glob("*.json"))]:
        data = path.read_bytes()[:8000]
        reader = jaeger if path.parent == JAEGER else zipkin
        stats = IngestStats()
        assert reader.read(data[: len(data) // 2], path.name, stats).num_rows == 0
        assert stats.skipped == {"not JSON": 1}


def test_deeply_nested_lists_are_not_a_crash() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    for reader in (jaeger, zipkin):
        stats = IngestStats()
        assert reader.read(deep, "deep.json", stats).num_rows == 0
        assert stats.skipped_records == 1
