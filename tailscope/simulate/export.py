"""Turn simulated traces into what real exporters write: span tables, OTLP/JSON, OTLP protobuf.

Timestamps leave the true clock here: each span gets ``EPOCH_NS`` plus its host's clock
offset. OTLP output groups spans per resource (one ``ResourceSpans`` per instance, one
``ScopeSpans`` per instrumentation scope), the way the collector's file exporter writes each
export request: ids in lowercase hex, 64-bit integers as strings, enums as integers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pyarrow as pa

from tailscope import schema as s
from tailscope.ingest.columns import AttributeLists, EventLists, LinkLists, build_table
from tailscope.ingest.rows import attribute_from_python, resource_json
from tailscope.schema import SpanKind
from tailscope.simulate.engine import Instance, SimSpan, TraceResult, reported_times

EPOCH_NS = 1_768_478_400 * 1_000_000_000
"""True-clock origin of every simulation: 2026-01-15T12:00:00Z (fixed, for same-seed bytes)."""

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


def span_id_bytes(span_id: int) -> bytes:
    return span_id.to_bytes(8, "big")


def _flags(span: SimSpan) -> int:
    """W3C trace flags (sampled) plus OTLP's has-is-remote bit, and is-remote when the parent
    came over the wire (SERVER/CONSUMER spans with a parent)."""
    remote = span.parent_id is not None and span.kind in (SpanKind.SERVER, SpanKind.CONSUMER)
    return 0x301 if remote else 0x101


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


_KV_CACHE: dict[tuple[str, Any], dict[str, Any]] = {}


def _kv(attrs: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """OTLP/JSON ``KeyValue`` objects; the few distinct (key, value) pairs are built once."""
    out = []
    for pair in attrs:
        value_type = type(pair[1])
        if value_type is not str and value_type is not int:  # True == 1 == 1.0 as dict keys
            out.append({"key": pair[0], "value": _any_value(pair[1])})
            continue
        kv = _KV_CACHE.get(pair)
        if kv is None:
            kv = {"key": pair[0], "value": _any_value(pair[1])}
            if len(_KV_CACHE) < 100_000:
                _KV_CACHE[pair] = kv
        out.append(kv)
    return out


def _grouped(
    traces: Sequence[TraceResult],
) -> dict[int, tuple[Instance, list[tuple[bytes, SimSpan]]]]:
    """Spans grouped by instance (resource), instances in index order, spans in trace order."""
    groups: dict[int, tuple[Instance, list[tuple[bytes, SimSpan]]]] = {}
    for trace in traces:
        for span in trace.spans:
            inst = span.instance
            entry = groups.get(inst.index)
            if entry is None:
                entry = (inst, [])
                groups[inst.index] = entry
            entry[1].append((trace.trace_id, span))
    return dict(sorted(groups.items()))


def otlp_json_request(
    traces: Sequence[TraceResult], host_offsets_ns: dict[str, int]
) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON (the object of one JSON Lines line)."""
    resource_spans = []
    for inst, spans in _grouped(traces).values():
        offset = EPOCH_NS + host_offsets_ns.get(inst.host, 0)
        out = []
        for trace_id, span in spans:
            obj: dict[str, Any] = {
                "traceId": trace_id.hex(),
                "spanId": span_id_bytes(span.span_id).hex(),
                "parentSpanId": ""
                if span.parent_id is None
                else span_id_bytes(span.parent_id).hex(),
                "flags": _flags(span),
                "name": span.name,
                "kind": int(span.kind),
                "startTimeUnixNano": str(reported_times(span)[0] + offset),
                "endTimeUnixNano": str(reported_times(span)[1] + offset),
                "attributes": _kv(span.attributes),
            }
            if span.events:
                obj["events"] = [
                    {"timeUnixNano": str(t + offset), "name": name, "attributes": _kv(attrs)}
                    for t, name, attrs in span.events
                ]
            status: dict[str, Any] = {}
            if span.status_message:
                status["message"] = span.status_message
            if span.status:
                status["code"] = int(span.status)
            obj["status"] = status
            out.append(obj)
        resource_spans.append(
            {
                "resource": {"attributes": _kv(inst.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": inst.scope_name, "version": inst.scope_version},
                        "spans": out,
                    }
                ],
                "schemaUrl": SCHEMA_URL,
            }
        )
    return {"resourceSpans": resource_spans}


def otlp_json_line(traces: Sequence[TraceResult], host_offsets_ns: dict[str, int]) -> bytes:
    """One JSON Lines line (newline included) as the collector's file exporter writes it."""
    return orjson.dumps(otlp_json_request(traces, host_offsets_ns)) + b"\n"


def otlp_proto_message(traces: Sequence[TraceResult], host_offsets_ns: dict[str, int]) -> bytes:
    """One serialized ``ExportTraceServiceRequest`` (no framing), same content as the JSON."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    for inst, spans in _grouped(traces).values():
        offset = EPOCH_NS + host_offsets_ns.get(inst.host, 0)
        rs = request.resource_spans.add()
        _set_attributes(rs.resource.attributes, inst.attributes)
        rs.schema_url = SCHEMA_URL
        ss = rs.scope_spans.add()
        ss.scope.name = inst.scope_name
        ss.scope.version = inst.scope_version
        for trace_id, span in spans:
            out = ss.spans.add()
            out.trace_id = trace_id
            out.span_id = span_id_bytes(span.span_id)
            if span.parent_id is not None:
                out.parent_span_id = span_id_bytes(span.parent_id)
            out.flags = _flags(span)
            out.name = span.name
            out.kind = int(span.kind)  # type: ignore[assignment]
            shown_start, shown_end = reported_times(span)
            out.start_time_unix_nano = shown_start + offset
            out.end_time_unix_nano = shown_end + offset
            _set_attributes(out.attributes, span.attributes)
            for t, name, attrs in span.events:
                event = out.events.add()
                event.time_unix_nano = t + offset
                event.name = name
                _set_attributes(event.attributes, attrs)
            if span.status:
                out.status.code = int(span.status)  # type: ignore[assignment]
            if span.status_message:
                out.status.message = span.status_message
    data: bytes = request.SerializeToString(deterministic=True)
    return data


def _set_attributes(target: Any, attrs: Sequence[tuple[str, Any]]) -> None:
    for key, value in attrs:
        kv = target.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = str(value)


def _encoded(attrs: Sequence[tuple[str, Any]]) -> Iterator[tuple[str, str, int]]:
    """Attributes as (key, value text, ValueType); str and int values are cached (the same few
    repeat on every span)."""
    for pair in attrs:
        cacheable = type(pair[1]) in (str, int)
        encoded = _ATTRIBUTE_CACHE.get(pair) if cacheable else None
        if encoded is None:
            encoded = attribute_from_python(pair[0], pair[1])
            if cacheable and len(_ATTRIBUTE_CACHE) < 100_000:
                _ATTRIBUTE_CACHE[pair] = encoded
        yield encoded


_ATTRIBUTE_CACHE: dict[tuple[str, Any], tuple[str, str, int]] = {}


def table_from_traces(traces: Sequence[TraceResult], host_offsets_ns: dict[str, int]) -> pa.Table:
    """The exported spans as a :data:`~tailscope.schema.SPAN_SCHEMA` table (skewed clock)."""
    cols: dict[str, list[Any]] = {name: [] for name in s.COLUMNS}
    attributes = AttributeLists()
    events = EventLists()
    links = LinkLists()
    resources: dict[int, str] = {}
    for trace in traces:
        for span in trace.spans:
            inst = span.instance
            offset = EPOCH_NS + host_offsets_ns.get(inst.host, 0)
            resource = resources.get(inst.index)
            if resource is None:
                resource = resource_json(dict(inst.attributes))
                resources[inst.index] = resource
            attrs = dict(span.attributes)
            cols[s.TRACE_ID].append(trace.trace_id)
            cols[s.SPAN_ID].append(span_id_bytes(span.span_id))
            cols[s.PARENT_SPAN_ID].append(
                None if span.parent_id is None else span_id_bytes(span.parent_id)
            )
            cols[s.NAME].append(span.name)
            cols[s.KIND].append(int(span.kind))
            shown_start, shown_end = reported_times(span)
            cols[s.START].append(shown_start + offset)
            cols[s.END].append(shown_end + offset)
            cols[s.DURATION].append(span.end - span.start)
            cols[s.STATUS_CODE].append(int(span.status))
            cols[s.STATUS_MESSAGE].append(span.status_message)
            cols[s.SERVICE].append(inst.service.name)
            cols[s.INSTANCE].append(inst.name)
            cols[s.HOST].append(inst.host)
            cols[s.LANGUAGE].append(inst.language)
            cols[s.RUNTIME_NAME].append(inst.runtime_name)
            cols[s.RUNTIME_VERSION].append(inst.runtime_version)
            cols[s.SCOPE_NAME].append(inst.scope_name)
            cols[s.SCOPE_VERSION].append(inst.scope_version)
            for column, kind, keys in s.PROMOTIONS:
                value = next((attrs[k] for k in keys if k in attrs), None)
                cols[column].append(value if value is None or kind == "int32" else str(value))
            cols[s.TRACE_STATE].append(None)
            cols[s.FLAGS].append(_flags(span))
            attributes.append_items(_encoded(span.attributes))
            cols[s.RESOURCE_ATTRIBUTES].append(resource)
            for t, name, event_attrs in span.events:
                events.times.append(t + offset)
                events.names.append(name)
                events.attributes.append_items(_encoded(event_attrs))
            events.close()
            links.close()
    cols[s.ATTRIBUTES] = attributes.build()
    cols[s.EVENTS] = events.build()
    cols[s.LINKS] = links.build()
    return build_table(cols)
