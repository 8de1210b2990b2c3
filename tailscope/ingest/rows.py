"""Build span tables from Python rows: the tolerant path used by small or quirky inputs.

Readers of small formats (Jaeger, Zipkin) make one :class:`SpanRow` per span, with its promoted
columns already decided; :func:`table_from_rows` hands them to the one Python table builder,
:func:`tailscope.ingest.columns.build_table`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from tailscope import schema as s
from tailscope.ingest.columns import AttributeLists, EventLists, LinkLists, build_table
from tailscope.schema import ValueType

Attribute = tuple[str, str, int]
"""(key, value text, :class:`ValueType`) — one element of the ``attributes`` column."""


def attribute_from_python(key: str, value: Any) -> Attribute:
    """Encode a plain Python value (str, bool, int, float, bytes, list, dict) as an attribute.

    Lists and dicts become OTLP/JSON ``arrayValue``/``kvlistValue`` text, so they survive.
    """
    if isinstance(value, bool):
        return (key, "true" if value else "false", ValueType.BOOL)
    if isinstance(value, int):
        return (key, str(value), ValueType.INT)
    if isinstance(value, float):
        return (key, repr(value), ValueType.DOUBLE)
    if isinstance(value, str):
        return (key, value, ValueType.STRING)
    if isinstance(value, bytes | bytearray):
        return (key, base64.b64encode(bytes(value)).decode("ascii"), ValueType.BYTES)
    if isinstance(value, list | tuple):
        text = orjson.dumps({"arrayValue": {"values": [_any_value(v) for v in value]}})
        return (key, text.decode(), ValueType.ARRAY)
    if isinstance(value, dict):
        kv = [{"key": str(k), "value": _any_value(v)} for k, v in value.items()]
        return (key, orjson.dumps({"kvlistValue": {"values": kv}}).decode(), ValueType.KVLIST)
    if value is None:
        return (key, "", ValueType.EMPTY)
    return (key, str(value), ValueType.STRING)


def _any_value(value: Any) -> dict[str, Any]:
    """A plain Python value as an OTLP/JSON ``AnyValue`` object."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes | bytearray):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [{"key": str(k), "value": _any_value(v)} for k, v in value.items()]
            }
        }
    return {}


def resource_json(attributes: dict[str, Any]) -> str:
    """Plain resource attributes as the ``resource_attributes`` column's JSON object text."""
    return orjson.dumps({k: _any_value(v) for k, v in attributes.items()}).decode()


@dataclass(slots=True)
class SpanRow:
    """One span as Python values; field names are the :data:`~tailscope.schema.SPAN_SCHEMA`
    columns. Ids are raw bytes (16 / 8), times integer Unix nanoseconds."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: str
    kind: int
    start_unix_nano: int
    end_unix_nano: int
    service_name: str
    service_instance: str
    status_code: int = 0
    status_message: str | None = None
    host_name: str | None = None
    sdk_language: str | None = None
    runtime_name: str | None = None
    runtime_version: str | None = None
    scope_name: str | None = None
    scope_version: str | None = None
    http_status_code: int | None = None
    rpc_grpc_status_code: int | None = None
    rpc_response_status_code: str | None = None
    rpc_method: str | None = None
    rpc_system: str | None = None
    server_address: str | None = None
    error_type: str | None = None
    http_resend_count: int | None = None
    db_system: str | None = None
    trace_state: str | None = None
    flags: int | None = None
    attributes: list[Attribute] = field(default_factory=list)
    resource_attributes: str = "{}"
    events: list[tuple[int, str, list[Attribute]]] = field(default_factory=list)
    links: list[tuple[bytes, bytes, list[Attribute]]] = field(default_factory=list)


def table_from_rows(rows: list[SpanRow]) -> pa.Table:
    """Build a :data:`~tailscope.schema.SPAN_SCHEMA` table from rows (duration is end - start)."""
    simple = [n for n in s.COLUMNS if n not in (s.DURATION, s.ATTRIBUTES, s.EVENTS, s.LINKS)]
    cols: dict[str, list[Any]] = {name: [] for name in simple}
    durations: list[int] = []
    attributes = AttributeLists()
    events = EventLists()
    links = LinkLists()
    for row in rows:
        for n in simple:
            cols[n].append(getattr(row, n))
        durations.append(row.end_unix_nano - row.start_unix_nano)
        attributes.append_items(row.attributes)
        for when, name, event_attributes in row.events:
            events.times.append(when)
            events.names.append(name)
            events.attributes.append_items(event_attributes)
        events.close()
        for trace_id, span_id, link_attributes in row.links:
            links.trace_ids.append(trace_id)
            links.span_ids.append(span_id)
            links.attributes.append_items(link_attributes)
        links.close()
    return build_table(
        {
            **cols,
            s.DURATION: durations,
            s.ATTRIBUTES: attributes.build(),
            s.EVENTS: events.build(),
            s.LINKS: links.build(),
        }
    )
