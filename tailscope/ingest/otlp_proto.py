"""OTLP protobuf: one TracesData / ExportTraceServiceRequest message, or the collector file
exporter's ``format: proto`` output (each message prefixed by its length as a 4-byte big-endian
unsigned integer).

Both messages put ``repeated ResourceSpans`` in field 1, so one parser reads either. Ids are
raw bytes already; attribute values are rendered exactly as the OTLP/JSON reader renders them,
so the same spans read from either encoding give identical tables.
"""

from __future__ import annotations

import base64
import gc
import math
from collections.abc import Iterator
from typing import Any, Final

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from tailscope.ingest.columns import (
    INT64_MAX,
    PROMOTED_KEYS,
    BadRecord,
    ResourceColumns,
    SpanColumns,
    resource_columns,
)
from tailscope.ingest.otlp_json import BATCH_SPANS
from tailscope.ingest.problems import ProblemLog
from tailscope.ingest.sniff import proto_framing
from tailscope.schema import ValueType


def _json_double(number: float) -> float | str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def any_value_json(value: AnyValue) -> dict[str, Any]:
    """The spec OTLP/JSON form of a protobuf ``AnyValue``."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        return {"doubleValue": _json_double(value.double_value)}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    if which == "array_value":
        return {"arrayValue": {"values": [any_value_json(v) for v in value.array_value.values]}}
    if which == "kvlist_value":
        return {
            "kvlistValue": {
                "values": [
                    {"key": kv.key, "value": any_value_json(kv.value)}
                    for kv in value.kvlist_value.values
                ]
            }
        }
    return {}


_EMPTY: Final = ValueType.EMPTY.value
_STRING: Final = ValueType.STRING.value
_BOOL: Final = ValueType.BOOL.value
_INT: Final = ValueType.INT.value
_DOUBLE: Final = ValueType.DOUBLE.value
_BYTES: Final = ValueType.BYTES.value
_ARRAY: Final = ValueType.ARRAY.value
_KVLIST: Final = ValueType.KVLIST.value


def any_value_text(value: AnyValue) -> tuple[str, int]:
    """``(value text, ValueType)`` as stored in the ``attributes`` column."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value, _STRING
    if which == "int_value":
        return str(value.int_value), _INT
    if which == "bool_value":
        return ("true" if value.bool_value else "false"), _BOOL
    if which == "double_value":
        return repr(value.double_value), _DOUBLE
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii"), _BYTES
    if which == "array_value":
        return orjson.dumps(any_value_json(value)).decode(), _ARRAY
    if which == "kvlist_value":
        return orjson.dumps(any_value_json(value)).decode(), _KVLIST
    return "", _EMPTY


def _attributes(
    items: Any, keys: list[str], values: list[str], types: list[int]
) -> dict[str, tuple[str, int]] | None:
    promoted: dict[str, tuple[str, int]] | None = None
    kv: KeyValue
    add_key, add_value, add_type = keys.append, values.append, types.append
    for kv in items:
        key = kv.key
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":  # the common cases, inlined
            text, tag = value.string_value, _STRING
        elif which == "int_value":
            text, tag = str(value.int_value), _INT
        else:
            text, tag = any_value_text(value)
        add_key(key)
        add_value(text)
        add_type(tag)
        if key in PROMOTED_KEYS:
            if promoted is None:
                promoted = {}
            promoted.setdefault(key, (text, tag))
    return promoted


def _resource(resource: Any) -> ResourceColumns:
    by_key: dict[str, tuple[str, int]] = {}
    canon: dict[str, Any] = {}
    for kv in resource.attributes:
        by_key.setdefault(kv.key, any_value_text(kv.value))
        canon.setdefault(kv.key, any_value_json(kv.value))
    return resource_columns(by_key, orjson.dumps(canon).decode())


def _fix_id(raw: bytes, size: int, what: str) -> bytes:
    if not raw:
        raise BadRecord(f"missing {what}")
    if len(raw) > size:
        raise BadRecord(f"bad {what}", f"bad {what}: {len(raw)} bytes")
    fixed = raw.rjust(size, b"\x00")
    if fixed == bytes(size):
        raise BadRecord(f"bad {what}", f"bad {what}: all zero")
    return fixed


def _append_span(
    cols: SpanColumns, span: Any, resource: ResourceColumns, scope: tuple[str | None, str | None]
) -> None:
    trace_id = _fix_id(span.trace_id, 16, "trace id")
    span_id = _fix_id(span.span_id, 8, "span id")
    parent: bytes | None = None
    if span.parent_span_id:
        if len(span.parent_span_id) > 8:
            raise BadRecord("bad parent span id")
        parent = span.parent_span_id.rjust(8, b"\x00")
        if parent == bytes(8):
            parent = None
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    if start > INT64_MAX or end > INT64_MAX:
        raise BadRecord("bad start time", "time out of range")
    if end < start:
        raise BadRecord("end before start", f"end before start by {start - end} ns")
    if not 0 <= span.kind <= 5:
        raise BadRecord("unknown span kind", f"unknown span kind: {span.kind}")
    if not 0 <= span.status.code <= 2:
        raise BadRecord("unknown status code", f"unknown status code: {span.status.code}")
    keys: list[str] = []
    values: list[str] = []
    types: list[int] = []
    promoted = _attributes(span.attributes, keys, values, types)
    links = []
    for link in span.links:
        lk: list[str] = []
        lv: list[str] = []
        lt: list[int] = []
        _attributes(link.attributes, lk, lv, lt)
        links.append(
            (_fix_id(link.trace_id, 16, "link id"), _fix_id(link.span_id, 8, "link id"), lk, lv, lt)
        )

    cols.trace_id.append(trace_id)
    cols.span_id.append(span_id)
    cols.parent_span_id.append(parent)
    cols.name.append(span.name)
    cols.kind.append(span.kind)
    cols.start.append(start)
    cols.end.append(end)
    cols.status_code.append(span.status.code)
    cols.status_message.append(span.status.message or None)
    cols.resource.append(resource)
    cols.scope_name.append(scope[0])
    cols.scope_version.append(scope[1])
    cols.promoted.append(promoted)
    cols.trace_state.append(span.trace_state or None)
    cols.flags.append(span.flags or None)  # 0 means "no flags", as a missing JSON field
    cols.attr_keys.extend(keys)
    cols.attr_values.extend(values)
    cols.attr_types.extend(types)
    cols.attr_offsets.append(len(cols.attr_keys))
    for event in span.events:
        cols.event_time.append(event.time_unix_nano)
        cols.event_name.append(event.name)
        _attributes(
            event.attributes,
            cols.event_attr_keys,
            cols.event_attr_values,
            cols.event_attr_types,
        )
        cols.event_attr_offsets.append(len(cols.event_attr_keys))
    cols.event_offsets.append(len(cols.event_time))
    for link_trace, link_span, lk, lv, lt in links:
        cols.link_trace_id.append(link_trace)
        cols.link_span_id.append(link_span)
        cols.link_attr_keys.extend(lk)
        cols.link_attr_values.extend(lv)
        cols.link_attr_types.extend(lt)
        cols.link_attr_offsets.append(len(cols.link_attr_keys))
    cols.link_offsets.append(len(cols.link_trace_id))


def append_message(
    cols: SpanColumns,
    message: TracesData,
    log: ProblemLog,
    offset: int,
    resource_cache: dict[bytes, ResourceColumns] | None = None,
) -> None:
    """Append every span of one decoded TracesData message. ``resource_cache`` maps serialized
    resources to their columns (exports repeat the same few resources in every message)."""
    cache = {} if resource_cache is None else resource_cache
    # The per-span walk allocates millions of short-lived wrapper objects, none of them in
    # reference cycles: pausing the cyclic collector for one message saves about a quarter
    # of the time. It is re-enabled before returning, so callers never see it off.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        _append_resources(cols, message, log, offset, cache)
    finally:
        if paused:
            gc.enable()


def _append_resources(
    cols: SpanColumns,
    message: TracesData,
    log: ProblemLog,
    offset: int,
    cache: dict[bytes, ResourceColumns],
) -> None:
    for rs in message.resource_spans:
        key = rs.resource.SerializeToString()
        resource = cache.get(key)
        if resource is None:
            resource = _resource(rs.resource)
            if len(cache) < 4096:
                cache[key] = resource
        if resource.unknown_service:
            log.stats.unknown_service_resources += 1
        for ss in rs.scope_spans:
            scope = (ss.scope.name or None, ss.scope.version or None)
            spans = ss.spans
            for span in spans:
                log.stats.records += 1
                try:
                    _append_span(cols, span, resource, scope)
                except BadRecord as bad:
                    log.bad(None, bad.reason_class, bad.detail, offset)


def _messages(data: bytes, log: ProblemLog) -> Iterator[tuple[int, bytes]]:
    if proto_framing(data[:16], len(data)) != "framed":
        yield 0, data
        return
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            log.bad(None, "truncated message", "truncated message: partial length prefix", pos)
            return
        length = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 4 + length > len(data):
            log.bad(
                None,
                "truncated message",
                f"truncated message: frame of {length} bytes, {len(data) - pos - 4} left",
                pos,
            )
            return
        yield pos, data[pos + 4 : pos + 4 + length]
        pos += 4 + length


def read(data: bytes, log: ProblemLog) -> Iterator[pa.Table]:
    """Read OTLP protobuf content (single message or length-framed messages)."""
    cols = SpanColumns()
    resource_cache: dict[bytes, ResourceColumns] = {}
    for offset, payload in _messages(data, log):
        message = TracesData()
        try:
            message.ParseFromString(payload)
        except DecodeError as exc:
            log.bad(None, "not protobuf", f"not an OTLP protobuf message: {exc}", offset)
            continue
        append_message(cols, message, log, offset, resource_cache)
        if len(cols) >= BATCH_SPANS:
            yield cols.to_table()
            cols = SpanColumns()
    if len(cols):
        yield cols.to_table()
