"""The tolerant OTLP/JSON reader: one parsed record at a time, accepting what real exporters write.

The spec (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) says hex ids,
camelCase names, integer enums and int64 as strings. Real files also carry base64 ids (what
``google.protobuf.json_format`` writes), UPPERCASE hex, snake_case names, enum names,
``"NaN"``/``"Infinity"`` doubles, ``arrayValue``/``kvlistValue`` attributes, a byte-order mark,
CRLF line ends and metric/log lines mixed into trace exports. All are accepted here; anything
that still cannot be read is skipped as one counted :class:`~tailscope.ingest.model.Problem`
(or raised under ``strict``) with file, line and a one-line reason.

This path is correct for every input and is the reference the vectorised fast path
(:mod:`tailscope.ingest.fast_json`) is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final

import orjson
import pyarrow as pa

from tailscope.ingest.columns import (
    PROMOTED_KEYS,
    SPAN_KINDS,
    STATUS_CODES,
    BadRecord,
    EventRow,
    LinkRow,
    ResourceColumns,
    SpanColumns,
    decode_id,
    parse_enum,
    parse_time,
    resource_columns,
)
from tailscope.ingest.problems import ProblemLog
from tailscope.schema import ValueType

BATCH_SPANS: Final = 65_536
"""Spans per record batch: bounds memory while keeping Arrow conversion efficient."""

_VALUE_KEYS: Final[dict[str, ValueType]] = {
    "stringValue": ValueType.STRING,
    "string_value": ValueType.STRING,
    "boolValue": ValueType.BOOL,
    "bool_value": ValueType.BOOL,
    "intValue": ValueType.INT,
    "int_value": ValueType.INT,
    "doubleValue": ValueType.DOUBLE,
    "double_value": ValueType.DOUBLE,
    "bytesValue": ValueType.BYTES,
    "bytes_value": ValueType.BYTES,
    "arrayValue": ValueType.ARRAY,
    "array_value": ValueType.ARRAY,
    "kvlistValue": ValueType.KVLIST,
    "kvlist_value": ValueType.KVLIST,
}
_NON_TRACE_KEYS: Final = (
    "resourceMetrics",
    "resource_metrics",
    "resourceLogs",
    "resource_logs",
    "resourceProfiles",
    "resource_profiles",
)
_SPECIAL_DOUBLES: Final[dict[str, float]] = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _to_int(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("bool is not an int")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        return int(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    raise ValueError(f"not an int: {raw!r}")


def _to_float(raw: object) -> float:
    if isinstance(raw, str) and raw in _SPECIAL_DOUBLES:
        return _SPECIAL_DOUBLES[raw]
    if isinstance(raw, bool):
        raise ValueError("bool is not a double")
    if isinstance(raw, int | float | str):
        return float(raw)
    raise ValueError(f"not a double: {raw!r}")


def _json_double(number: float) -> float | str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def canonical_any_value(value: object) -> dict[str, Any]:
    """The spec OTLP/JSON form of an ``AnyValue`` given in any accepted spelling."""
    if not isinstance(value, dict):
        raise ValueError("attribute value is not an object")
    for key, raw in value.items():
        tag = _VALUE_KEYS.get(key)
        if tag is None or raw is None:
            continue
        if tag == ValueType.STRING:
            return {"stringValue": str(raw)}
        if tag == ValueType.BOOL:
            if isinstance(raw, str):
                raw = {"true": True, "false": False}[raw.lower()]
            return {"boolValue": bool(raw)}
        if tag == ValueType.INT:
            return {"intValue": str(_to_int(raw))}
        if tag == ValueType.DOUBLE:
            return {"doubleValue": _json_double(_to_float(raw))}
        if tag == ValueType.BYTES:
            return {"bytesValue": str(raw)}
        if tag == ValueType.ARRAY:
            items = raw.get("values") or [] if isinstance(raw, dict) else []
            return {"arrayValue": {"values": [canonical_any_value(v) for v in items]}}
        items = raw.get("values") or [] if isinstance(raw, dict) else []
        return {
            "kvlistValue": {
                "values": [
                    {
                        "key": str(kv.get("key", "")),
                        "value": canonical_any_value(kv.get("value", {})),
                    }
                    for kv in items
                ]
            }
        }
    return {}


def attribute_text(value: object) -> tuple[str, int]:
    """``(value text, ValueType)`` of an OTLP/JSON ``AnyValue`` as the ``attributes`` column
    stores it (see :class:`~tailscope.schema.ValueType`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, raw),) = value.items()
        if key == "stringValue" and isinstance(raw, str):
            return raw, ValueType.STRING
    try:
        canon = canonical_any_value(value)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRecord("bad attribute value", f"bad attribute value: {exc}") from None
    if not canon:
        return "", ValueType.EMPTY
    ((key, raw),) = canon.items()
    tag = _VALUE_KEYS[key]
    if tag == ValueType.BOOL:
        return ("true" if raw else "false"), tag
    if tag == ValueType.DOUBLE:
        return repr(_to_float(raw)), tag
    if tag in (ValueType.ARRAY, ValueType.KVLIST):
        return orjson.dumps(canon).decode(), tag
    return str(raw), tag


def _attributes(
    items: object, keys: list[str], values: list[str], types: list[int]
) -> dict[str, tuple[str, int]] | None:
    """Append an attribute list; return the promoted ones (key → (text, type)) if any."""
    if not items:
        return None
    if not isinstance(items, list):
        raise BadRecord("wrong shape", "wrong shape: attributes is not a list")
    promoted: dict[str, tuple[str, int]] | None = None
    for item in items:
        if not isinstance(item, dict):
            raise BadRecord("wrong shape", "wrong shape: attribute is not an object")
        key = str(item.get("key", ""))
        text, tag = attribute_text(item.get("value", {}))
        keys.append(key)
        values.append(text)
        types.append(tag)
        if key in PROMOTED_KEYS:
            if promoted is None:
                promoted = {}
            promoted.setdefault(key, (text, tag))
    return promoted


def resource_from_json(resource: object) -> ResourceColumns:
    """Resource-level columns of one OTLP/JSON ``resource`` object (any accepted spelling)."""
    attrs = resource.get("attributes") if isinstance(resource, dict) else None
    by_key: dict[str, tuple[str, int]] = {}
    canon: dict[str, Any] = {}
    if isinstance(attrs, list):
        for item in attrs:
            if not isinstance(item, dict):
                continue
            key = str(item.get("key", ""))
            try:
                value = canonical_any_value(item.get("value", {}))
                by_key.setdefault(key, attribute_text(value))
            except (ValueError, KeyError, TypeError, AttributeError, BadRecord):
                continue
            canon.setdefault(key, value)
    return resource_columns(by_key, orjson.dumps(canon).decode())


def _append_span(
    cols: SpanColumns,
    span: object,
    resource: ResourceColumns,
    scope_name: str | None,
    scope_version: str | None,
) -> None:
    """Parse one span object fully, then append it (nothing is appended if it is bad)."""
    if not isinstance(span, dict):
        raise BadRecord("wrong shape", "wrong shape: span is not an object")
    raw_trace = _get(span, "traceId", "trace_id")
    raw_span = _get(span, "spanId", "span_id")
    if not raw_trace:
        raise BadRecord("missing trace id")
    if not raw_span:
        raise BadRecord("missing span id")
    trace_id = decode_id(raw_trace, 16)
    if trace_id is None or trace_id == bytes(16):
        raise BadRecord("bad trace id", f"bad trace id: {str(raw_trace)[:40]!r}")
    span_id = decode_id(raw_span, 8)
    if span_id is None or span_id == bytes(8):
        raise BadRecord("bad span id", f"bad span id: {str(raw_span)[:40]!r}")
    raw_parent = _get(span, "parentSpanId", "parent_span_id")
    parent: bytes | None = None
    if raw_parent:
        parent = decode_id(raw_parent, 8)
        if parent is None:
            raise BadRecord("bad parent span id", f"bad parent span id: {str(raw_parent)[:40]!r}")
        if parent == bytes(8):
            parent = None
    start = parse_time(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "start time")
    end = parse_time(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "end time")
    if end < start:
        raise BadRecord("end before start", f"end before start by {start - end} ns")
    kind = parse_enum(span.get("kind"), SPAN_KINDS, "span kind")
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise BadRecord("wrong shape", "wrong shape: status is not an object")
    status_code = parse_enum(status.get("code"), STATUS_CODES, "status code")
    status_message = status.get("message") or None
    trace_state = _get(span, "traceState", "trace_state") or None
    raw_flags = span.get("flags")
    flags: int | None = None
    if raw_flags is not None:
        try:
            flags = _to_int(raw_flags)
        except ValueError:
            raise BadRecord("bad flags", f"bad flags: {raw_flags!r}") from None
        if not 0 <= flags < 2**32:
            raise BadRecord("bad flags", f"flags out of range: {flags}")
        flags = flags or None  # 0 means "no flags", as protobuf's default
    name = span.get("name")

    # Attributes, events and links go into scratch lists first so a bad one leaves no trace.
    keys: list[str] = []
    values: list[str] = []
    types: list[int] = []
    promoted = _attributes(span.get("attributes"), keys, values, types)
    events = span.get("events") or []
    links = span.get("links") or []
    if not isinstance(events, list) or not isinstance(links, list):
        raise BadRecord("wrong shape", "wrong shape: events or links is not a list")
    ev_rows: list[EventRow] = []
    for event in events:
        if not isinstance(event, dict):
            raise BadRecord("wrong shape", "wrong shape: event is not an object")
        ek: list[str] = []
        ev: list[str] = []
        et: list[int] = []
        _attributes(event.get("attributes"), ek, ev, et)
        when = parse_time(_get(event, "timeUnixNano", "time_unix_nano") or 0, "event time")
        ev_rows.append((when, str(event.get("name") or ""), (ek, ev, et)))
    link_rows: list[LinkRow] = []
    for link in links:
        if not isinstance(link, dict):
            raise BadRecord("wrong shape", "wrong shape: link is not an object")
        link_trace = decode_id(_get(link, "traceId", "trace_id"), 16)
        link_span = decode_id(_get(link, "spanId", "span_id"), 8)
        if link_trace is None or link_span is None:
            raise BadRecord("bad link id")
        lk: list[str] = []
        lv: list[str] = []
        lt: list[int] = []
        _attributes(link.get("attributes"), lk, lv, lt)
        link_rows.append((link_trace, link_span, (lk, lv, lt)))

    cols.append_span(
        ids=(trace_id, span_id, parent),
        name="" if name is None else str(name),
        kind=kind,
        start=start,
        end=end,
        status=(status_code, None if status_message is None else str(status_message)),
        resource=resource,
        scope=(scope_name, scope_version),
        trace_state=None if trace_state is None else str(trace_state),
        flags=flags,
        attributes=(keys, values, types),
        promoted=promoted,
        events=ev_rows,
        links=link_rows,
    )


def is_trace_document(doc: object) -> bool | None:
    """True for a TracesData object, False for a metrics/logs/profiles export, None otherwise."""
    if not isinstance(doc, dict):
        return None
    if "resourceSpans" in doc or "resource_spans" in doc:
        return True
    if any(k in doc for k in _NON_TRACE_KEYS):
        return False
    return None


def append_document(cols: SpanColumns, doc: object, log: ProblemLog, line: int | None) -> None:
    """Append every span of one TracesData / ExportTraceServiceRequest object.

    Bad spans are skipped and logged one by one; a non-trace (metrics/logs) object is counted
    as a non-trace line; any other shape is one ``wrong shape`` problem.
    """
    kind = is_trace_document(doc)
    if kind is False:
        log.stats.non_trace_lines += 1
        return
    if kind is None:
        shape = type(doc).__name__
        if isinstance(doc, dict):
            shape = "object with keys " + ", ".join(sorted(doc)[:5]) if doc else "empty object"
        log.bad(line, "wrong shape", f"wrong shape: not a TracesData object ({shape})")
        return
    assert isinstance(doc, dict)
    resource_spans = _get(doc, "resourceSpans", "resource_spans")
    if not isinstance(resource_spans, list):
        log.bad(line, "wrong shape", "wrong shape: resourceSpans is not a list")
        return
    for ri, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            log.bad(line, "wrong shape", f"wrong shape: resourceSpans[{ri}] is not an object")
            continue
        resource = resource_from_json(rs.get("resource"))
        if resource.unknown_service:
            log.stats.unknown_service_resources += 1
        scope_spans = _get(rs, "scopeSpans", "scope_spans")
        if scope_spans is None:
            scope_spans = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
        if not isinstance(scope_spans, list):
            if scope_spans is not None:
                log.bad(line, "wrong shape", f"wrong shape: resourceSpans[{ri}].scopeSpans")
            continue
        for si, ss in enumerate(scope_spans):
            if not isinstance(ss, dict):
                log.bad(line, "wrong shape", f"wrong shape: scopeSpans[{si}] is not an object")
                continue
            scope = ss.get("scope")
            if scope is None:
                scope = _get(ss, "instrumentationLibrary", "instrumentation_library")
            scope_name = scope_version = None
            if isinstance(scope, dict):
                scope_name = scope.get("name") or None
                scope_version = scope.get("version") or None
            spans = ss.get("spans") or []
            if not isinstance(spans, list):
                log.bad(line, "wrong shape", "wrong shape: spans is not a list")
                continue
            for pi, span in enumerate(spans):
                log.stats.records += 1
                try:
                    _append_span(cols, span, resource, scope_name, scope_version)
                except BadRecord as bad:
                    where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    log.bad(line, bad.reason_class, f"{bad.detail} ({where})")


def _parse_error(exc: orjson.JSONDecodeError, text: bytes) -> tuple[str, str]:
    """Classify a JSON parse failure: ``truncated line`` when it ran out of input."""
    if exc.pos >= len(text.rstrip()) - 1 or "unexpected end" in str(exc).lower():
        return "truncated line", "truncated line: JSON ends early"
    return "not JSON", f"not JSON: {exc.msg} at column {exc.colno}"


def read_document(data: bytes, log: ProblemLog) -> Iterator[pa.Table]:
    """Read a file holding one JSON document (usually pretty-printed)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason_class, detail = _parse_error(exc, data)
        if reason_class == "not JSON":
            detail = f"not JSON: {exc.msg}"
        log.bad(exc.lineno, reason_class, detail)
        return
    cols = SpanColumns()
    docs = doc if isinstance(doc, list) else [doc]
    for item in docs:
        append_document(cols, item, log, None)
    if len(cols):
        yield cols.to_table()


def read_lines(blocks: Iterator[tuple[int, bytes]], log: ProblemLog) -> Iterator[pa.Table]:
    """Read JSON Lines given as blocks of whole lines ``(first line number, bytes)``."""
    cols = SpanColumns()
    for first_line, block in blocks:
        for offset, raw in enumerate(block.split(b"\n")):
            text = raw.strip()
            if not text:
                continue
            line = first_line + offset
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                reason_class, detail = _parse_error(exc, text)
                log.bad(line, reason_class, detail)
                continue
            append_document(cols, doc, log, line)
            if len(cols) >= BATCH_SPANS:
                yield cols.to_table()
                cols = SpanColumns()
    if len(cols):
        yield cols.to_table()
