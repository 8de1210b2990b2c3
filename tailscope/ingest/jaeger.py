"""Jaeger JSON reader: the query API / UI download format and Jaeger's proto-JSON model.

Contract (called by the dispatcher, :func:`tailscope.ingest.read_spans`): :func:`sniff` says
whether the first 64 KiB of decompressed content look like Jaeger JSON; :func:`read` turns a
whole document into a table of exactly :data:`~tailscope.schema.SPAN_SCHEMA`, counting every
span object in ``stats.records`` and skipping (with a counted :class:`Problem`) the ones that
cannot be read. It never raises on bad input.

Accepted shapes, all seen in files written by Jaeger itself:

* ``{"data": [trace, ...]}`` (query API, UI "download JSON"), ``{"data": trace}``, a bare trace
  object, a list of traces; extra keys (``_comment``, ``total``, ``errors``) are ignored.
* A trace is ``{"spans": [...], "processes": {id: process}}`` (UI model, hex ids, microsecond
  ``startTime``/``duration``, ``{"key", "type", "value"}`` tags) or Jaeger's internal proto-JSON
  model (base64 ids, RFC 3339 ``startTime``, ``"5000ns"`` durations, ``{"key", "vType",
  "vStr"|"vInt64"|...}`` tags, ``processMap`` list, process embedded in each span).
* UI-derived fields (``relativeStartTime``, ``depth``, nested parent copies inside references)
  are ignored.

Mapping decisions (``docs/formats.md`` has the full table):

* Parent: the first ``CHILD_OF`` reference in the same trace (Jaeger's own rule), else the first
  ``FOLLOWS_FROM`` reference in the same trace. A ``FOLLOWS_FROM`` parent marks the span
  asynchronous: attribute ``jaeger.reference_type=FOLLOWS_FROM`` plus a link to the parent, so
  the critical path can leave it out; ``kind`` still comes from the ``span.kind`` tag only.
  Every other reference becomes a link carrying ``jaeger.reference_type``.
* Ids that are neither hex nor base64 (Jaeger treats ids as opaque text; its UI fixtures use
  ``span-1``) are hashed to 16/8 bytes (:func:`opaque_id`), the text kept as an attribute.
* A span object whose id was already used in the document by a *different* span object
  (Jaeger's converter fixtures do this; Zipkin-style clients do it for client/server halves) is
  a distinct span: it gets a deterministic derived id (:func:`derived_span_id`) and attribute
  ``tailscope.original_span_id``; a server span reusing a client span's id becomes that client's
  child, as Jaeger's ``SpanIDDeduper`` does. Identical repeats keep the id and are dropped as
  duplicates by the dispatcher.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from tailscope import schema as s
from tailscope.ingest.columns import decode_id
from tailscope.ingest.model import IngestStats, Problem
from tailscope.ingest.rows import (
    Attribute,
    SpanRow,
    attribute_from_python,
    resource_json,
    table_from_rows,
)
from tailscope.schema import SpanKind, StatusCode, ValueType

if TYPE_CHECKING:
    import pyarrow as pa

NS_PER_US: Final = 1_000
REFERENCE_TYPE_KEY: Final = "jaeger.reference_type"
"""Span and link attribute naming the Jaeger reference type (``CHILD_OF`` / ``FOLLOWS_FROM``)."""
ORIGINAL_SPAN_ID_KEY: Final = "tailscope.original_span_id"
"""Attribute holding a span's original id when it was replaced: the hex id it reused before it
was given a derived id, or the original text of an id that was neither hex nor base64."""
ORIGINAL_TRACE_ID_KEY: Final = "tailscope.original_trace_id"
"""Attribute holding the original text of a trace id that was neither hex nor base64."""

_SNIFF_OPERATION: Final = re.compile(rb'"operationName"\s*:')
_SNIFF_SPAN_ID: Final = re.compile(rb'"span(ID|Id|_id)"\s*:')
_SNIFF_TRACE_ID: Final = re.compile(rb'"trace(ID|Id|_id)"\s*:')

_KIND_BY_TAG: Final[dict[str, int]] = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_STATUS_BY_TAG: Final[dict[str, int]] = {
    "OK": StatusCode.OK,
    "ERROR": StatusCode.ERROR,
    "UNSET": StatusCode.UNSET,
}
_LANGUAGE_BY_CLIENT: Final[dict[str, str]] = {"node": "nodejs", "golang": "go", "c#": "dotnet"}

_DURATION_UNITS_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
}
_DURATION_TEXT: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$")
_RFC3339: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


class BadSpan(Exception):
    """One span object cannot be read; the message is the one-line reason."""


# --- helpers shared with the Zipkin reader ------------------------------------------------------


def derived_span_id(trace_id: bytes, span_id: bytes, salt: bytes) -> bytes:
    """A deterministic 8-byte span id for a span that reuses another span's id.

    BLAKE2b of trace id, span id and ``salt`` (what distinguishes the two spans: an endpoint, a
    start time, an occurrence number): the same input always gives the same id, so repeated
    reads and both formats of one trace agree. Never all zeros (zero means "no id").
    """
    digest = hashlib.blake2b(trace_id + span_id + salt, digest_size=8).digest()
    return digest if digest != bytes(8) else b"\x00" * 7 + b"\x01"


def tag_text(value: object) -> str | None:
    """A tag value as text for promotion (None for missing/empty values)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text or None


def _int32(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if -(2**31) <= number < 2**31 else None


_JAEGER_ONLY: Final = {s.DB_SYSTEM: ("db.type",)}
"""OpenTracing tags read after the promotion table's keys (``schema.PROMOTIONS``)."""
_TEXT_COLUMNS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (s.STATUS_MESSAGE, ("otel.status_description",)),
    *(
        (column, keys + _JAEGER_ONLY.get(column, ()))
        for column, kind, keys in s.PROMOTIONS
        if kind == "text"
    ),
    (s.SCOPE_NAME, ("otel.scope.name", "otel.library.name")),
    (s.SCOPE_VERSION, ("otel.scope.version", "otel.library.version")),
    (s.TRACE_STATE, ("w3c.tracestate",)),
)
"""Text columns and the tags they come from, in order of precedence."""
_INT_COLUMNS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = tuple(
    (column, keys) for column, kind, keys in s.PROMOTIONS if kind == "int32"
)
"""int32 columns and the tags they come from, in order of precedence."""
_LEGACY_PEER_KEYS: Final = ("net.peer.name", "peer.service")
_PROMOTION_KEYS: Final = frozenset(
    {"otel.status_code", "error", *_LEGACY_PEER_KEYS}
    | {key for _, keys in _TEXT_COLUMNS + _INT_COLUMNS for key in keys}
)


def promote_tags(row: SpanRow, tags: dict[str, Any]) -> None:
    """Copy semantic-convention tags into the typed columns of ``row`` (attributes keep them).

    Same precedence as the OTLP reader: ``http.response.status_code`` before the legacy
    ``http.status_code``, ``rpc.system`` before ``rpc.system.name``, ``db.system`` before
    ``db.system.name`` before OpenTracing's ``db.type``; ``server_address`` of a CLIENT or
    PRODUCER span falls back to the legacy ``net.peer.name``, then ``peer.service``. Also maps
    the OpenTelemetry-to-Jaeger translator's ``otel.status_code``/``otel.status_description``,
    ``otel.scope.*``/``otel.library.*`` and ``w3c.tracestate``; an ``error`` tag of ``true``
    means ERROR. Only tags that are present are looked at: most spans carry few of them.
    """
    present = _PROMOTION_KEYS.intersection(tags)
    if not present:
        return

    def first(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            if key in present:
                text = tag_text(tags[key])
                if text is not None:
                    return text
        return None

    status = first(("otel.status_code",))
    if status is not None and status.upper() in _STATUS_BY_TAG:
        row.status_code = _STATUS_BY_TAG[status.upper()]
    elif first(("error",)) == "true":
        row.status_code = StatusCode.ERROR
    for column, keys in _TEXT_COLUMNS:
        text = first(keys)
        if text is not None:
            setattr(row, column, text)
    for column, keys in _INT_COLUMNS:
        for key in keys:
            number = _int32(tags[key]) if key in present else None
            if number is not None:
                setattr(row, column, number)
                break
    if row.server_address is None and row.kind in (SpanKind.CLIENT, SpanKind.PRODUCER):
        row.server_address = first(_LEGACY_PEER_KEYS)


# --- sniffing -----------------------------------------------------------------------------------


def sniff(head: bytes) -> bool:
    """True when ``head`` (first 64 KiB) is a JSON object with Jaeger's ``operationName`` spans.

    OTLP spans say ``name``, Zipkin spans say ``name`` and ``id``: ``operationName`` together
    with a span id and a trace id key is specific to Jaeger.
    """
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    if body.lstrip()[:1] not in (b"{", b"["):
        return False
    if b'"resourceSpans"' in body or b'"resource_spans"' in body:
        return False
    return bool(
        _SNIFF_OPERATION.search(body)
        and _SNIFF_SPAN_ID.search(body)
        and _SNIFF_TRACE_ID.search(body)
    )


# --- reading ------------------------------------------------------------------------------------


def read(data: bytes, file: str, stats: IngestStats) -> pa.Table:
    """Read one Jaeger JSON document into a span table (see the module docstring).

    A document that is not JSON, or has no trace in it, is one counted problem and gives an
    empty table (the dispatcher reports "no spans read" when nothing at all was read).
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        stats.skip(Problem(file, None, f"not JSON: {exc}"), "not JSON")
        return table_from_rows([])
    rows: list[SpanRow] = []
    traces = list(_traces(document))
    if not traces:
        stats.skip(Problem(file, None, _no_trace_reason(document)), "no trace")
    id_uses: dict[tuple[bytes, bytes], _IdUse] = {}
    for trace in traces:
        rows.extend(_read_trace(trace, file, stats, id_uses))
    return table_from_rows(rows)


def _no_trace_reason(document: object) -> str:
    """Say why nothing was found; Jaeger's query API puts its own reason in ``errors``."""
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors:
        first = errors[0]
        message = first.get("msg") if isinstance(first, dict) else first
        return f"no Jaeger trace in document; the API said: {str(message)[:120]}"
    return "no Jaeger trace (no spans list) in document"


def _traces(document: object) -> Iterator[dict[str, Any]]:
    """Every trace object in a document of any accepted shape, in document order (iterative:
    a hostile, deeply nested document cannot exhaust the stack)."""
    pending: list[object] = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, dict):
            if isinstance(item.get("spans"), list):
                yield item
            elif isinstance(item.get("data"), list | dict):
                pending.append(item["data"])


def _process_table(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    processes: dict[str, dict[str, Any]] = {}
    raw = trace.get("processes")
    if isinstance(raw, dict):
        processes.update({str(k): v for k, v in raw.items() if isinstance(v, dict)})
    mapping = trace.get("processMap") or trace.get("process_map")
    if isinstance(mapping, list):
        for item in mapping:
            if isinstance(item, dict) and isinstance(item.get("process"), dict):
                pid = item.get("processID") or item.get("processId") or item.get("process_id")
                processes[str(pid)] = item["process"]
    return processes


class _IdUse:
    """Span objects seen so far under one (trace id, span id), in order: occurrence 0 keeps the
    id, occurrence k > 0 gets ``derived_span_id(..., b"jaeger#k")``."""

    __slots__ = ("first_kind", "objects")

    def __init__(self, first_kind: int) -> None:
        self.first_kind = first_kind
        self.objects: list[object] = []

    def occurrence(self, span: object) -> int:
        """The occurrence number of ``span``: an identical earlier object's, else a new one."""
        for number, earlier in enumerate(self.objects):
            if earlier == span:
                return number
        self.objects.append(span)
        return len(self.objects) - 1


def _read_trace(
    trace: dict[str, Any], file: str, stats: IngestStats, id_uses: dict[tuple[bytes, bytes], _IdUse]
) -> list[SpanRow]:
    processes = _process_table(trace)
    resources: dict[str, _Resource] = {}
    rows: list[SpanRow] = []
    for index, span in enumerate(trace["spans"]):
        stats.records += 1
        try:
            row = _span_row(span, processes, resources, stats)
        except BadSpan as exc:
            reason = str(exc)
            where = f"{reason} (span #{index + 1} of its trace)"
            stats.skip(Problem(file, None, where), reason.split(":", 1)[0])
            continue
        use = id_uses.setdefault((row.trace_id, row.span_id), _IdUse(row.kind))
        occurrence = use.occurrence(span)
        if occurrence:
            _give_distinct_id(row, use.first_kind, occurrence)
        rows.append(row)
    return rows


def _give_distinct_id(row: SpanRow, first_kind: int, occurrence: int) -> None:
    """``row`` reuses the id of an earlier, different span: give it a derived id. A server
    span reusing a client's id is that client's child (Zipkin-style clients do this)."""
    original = row.span_id
    row.span_id = derived_span_id(row.trace_id, original, b"jaeger#%d" % occurrence)
    row.attributes.append((ORIGINAL_SPAN_ID_KEY, original.hex(), ValueType.STRING))
    if row.kind == SpanKind.SERVER and first_kind == SpanKind.CLIENT:
        row.parent_span_id = original


class _Resource:
    """The per-process columns, computed once per distinct process object."""

    __slots__ = (
        "host",
        "instance",
        "json",
        "language",
        "runtime_name",
        "runtime_version",
        "service",
    )

    def __init__(self, process: dict[str, Any] | None, stats: IngestStats) -> None:
        tags = _tags(process.get("tags") if process else None)
        values = {key: value for key, value in tags}
        service = str(process.get("serviceName") or "") if process else ""
        if not service:
            service = s.UNKNOWN_SERVICE
            stats.unknown_service_resources += 1
        host = tag_text(values.get("hostname")) or tag_text(values.get("host.name"))
        pid = tag_text(values.get("process.pid")) or tag_text(values.get("pid"))
        instance = (
            tag_text(values.get("client-uuid"))
            or tag_text(values.get("service.instance.id"))
            or (f"{host}:{pid}" if host and pid else host)
            or service
        )
        self.service = service
        self.instance = instance
        self.host = host
        self.language = tag_text(values.get("telemetry.sdk.language")) or _client_language(
            tag_text(values.get("jaeger.version"))
        )
        self.runtime_name = tag_text(values.get("process.runtime.name"))
        self.runtime_version = tag_text(values.get("process.runtime.version"))
        self.json = resource_json({"service.name": service, **values})


def _client_language(version: str | None) -> str | None:
    """Jaeger clients report ``jaeger.version`` as ``<Language>-<version>`` (``Go-2.30.0``)."""
    if not version or "-" not in version:
        return None
    language = version.split("-", 1)[0].strip().lower()
    return _LANGUAGE_BY_CLIENT.get(language, language) or None


def _resource_for(
    span: dict[str, Any],
    processes: dict[str, dict[str, Any]],
    cache: dict[str, _Resource],
    stats: IngestStats,
) -> _Resource:
    process = span.get("process")
    if isinstance(process, dict):
        key = orjson.dumps(process, option=orjson.OPT_SORT_KEYS).decode()
    else:
        pid = span.get("processID") or span.get("processId") or span.get("process_id")
        process = processes.get(str(pid)) if pid is not None else None
        key = f"processID {pid}" if process is not None else ""
    found = cache.get(key)
    if found is None:
        found = cache[key] = _Resource(process, stats)
    return found


def _get(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _id(raw: object, size: int, what: str) -> bytes:
    """A hex or base64 id of ``size`` bytes; any other non-empty text (Jaeger's UI fixtures use
    ids like ``span-1``) is hashed to ``size`` bytes (:func:`opaque_id`)."""
    return _id_and_opacity(raw, size, what)[0]


def _id_and_opacity(raw: object, size: int, what: str) -> tuple[bytes, bool]:
    if raw is None or raw == "":
        raise BadSpan(f"missing {what}")
    decoded = decode_id(raw, size)
    opaque = decoded is None and isinstance(raw, str)
    if opaque:
        decoded = opaque_id(str(raw), size)
    if decoded is None or decoded == bytes(size):
        raise BadSpan(f"bad {what}: {str(raw)[:40]!r}")
    return decoded, opaque


def _ids(raw_trace: object, raw_span: object) -> tuple[bytes, bytes, list[Attribute]]:
    """Trace and span id, plus the ``tailscope.original_*_id`` attributes of opaque ones."""
    trace_id, opaque_trace = _id_and_opacity(raw_trace, 16, "trace id")
    span_id, opaque_span = _id_and_opacity(raw_span, 8, "span id")
    originals: list[Attribute] = []
    if opaque_trace:
        originals.append((ORIGINAL_TRACE_ID_KEY, str(raw_trace), ValueType.STRING))
    if opaque_span:
        originals.append((ORIGINAL_SPAN_ID_KEY, str(raw_span), ValueType.STRING))
    return trace_id, span_id, originals


def opaque_id(text: str, size: int) -> bytes:
    """A deterministic ``size``-byte id for id text that is neither hex nor base64.

    Jaeger treats ids as opaque strings in its JSON; hashing keeps every reference pointing at
    the same span. The original text is kept in ``tailscope.original_*_id`` attributes.
    """
    return hashlib.blake2b(text.encode(), digest_size=size, person=b"tailscope-id").digest()


def _span_row(
    span: object,
    processes: dict[str, dict[str, Any]],
    resources: dict[str, _Resource],
    stats: IngestStats,
) -> SpanRow:
    if not isinstance(span, dict):
        raise BadSpan("wrong shape: span is not an object")
    trace_id, span_id, originals = _ids(
        _get(span, "traceID", "traceId", "trace_id"), _get(span, "spanID", "spanId", "span_id")
    )
    start = parse_time(span.get("startTime", span.get("start_time")), "start time")
    duration = parse_duration(span.get("duration"))
    name = _get(span, "operationName", "operation_name")
    resource = _resource_for(span, processes, resources, stats)
    tag_pairs = _tags(span.get("tags"))
    tags = {key: value for key, value in tag_pairs}
    attributes: list[Attribute] = [_attribute(k, v) for k, v in tag_pairs]
    parent, links, follows_from = _references(span.get("references"), trace_id)
    if follows_from:
        attributes.append((REFERENCE_TYPE_KEY, "FOLLOWS_FROM", ValueType.STRING))
    attributes.extend(originals)
    kind_tag = tag_text(tags.get("span.kind"))
    row = SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=str(name) if name is not None else "",
        kind=_KIND_BY_TAG.get(kind_tag.lower(), SpanKind.UNSPECIFIED) if kind_tag else 0,
        start_unix_nano=start,
        end_unix_nano=start + duration,
        service_name=resource.service,
        service_instance=resource.instance,
        host_name=resource.host,
        sdk_language=resource.language,
        runtime_name=resource.runtime_name,
        runtime_version=resource.runtime_version,
        attributes=attributes,
        resource_attributes=resource.json,
        events=_events(span.get("logs")),
        links=links,
    )
    promote_tags(row, tags)
    return row


def _references(
    raw: object, trace_id: bytes
) -> tuple[bytes | None, list[tuple[bytes, bytes, list[Attribute]]], bool]:
    """(parent span id, links, whether the parent is a FOLLOWS_FROM reference)."""
    if not raw:
        return None, [], False
    if not isinstance(raw, list):
        raise BadSpan("wrong shape: references is not a list")
    refs: list[tuple[str, bytes, bytes]] = []
    for ref in raw:
        if not isinstance(ref, dict):
            raise BadSpan("wrong shape: reference is not an object")
        ref_type = str(_get(ref, "refType", "ref_type") or "CHILD_OF").upper()
        ref_trace = _id(_get(ref, "traceID", "traceId", "trace_id"), 16, "reference trace id")
        ref_span = _id(_get(ref, "spanID", "spanId", "span_id"), 8, "reference span id")
        refs.append((ref_type, ref_trace, ref_span))
    same_trace = [i for i, (_, ref_trace, _) in enumerate(refs) if ref_trace == trace_id]
    child_of = [i for i in same_trace if refs[i][0] == "CHILD_OF"]
    chosen = (child_of or same_trace)[0] if same_trace else None
    parent = refs[chosen][2] if chosen is not None else None
    follows_from = chosen is not None and refs[chosen][0] == "FOLLOWS_FROM"
    links: list[tuple[bytes, bytes, list[Attribute]]] = [
        (tr, sp, [(REFERENCE_TYPE_KEY, t, ValueType.STRING)])
        for i, (t, tr, sp) in enumerate(refs)
        if i != chosen or follows_from
    ]
    return parent, links, follows_from


_TYPED_VALUE_KEYS: Final = (
    ("vStr", "STRING"),
    ("vBool", "BOOL"),
    ("vInt64", "INT64"),
    ("vFloat64", "FLOAT64"),
    ("vBinary", "BINARY"),
    ("v_str", "STRING"),
    ("v_bool", "BOOL"),
    ("v_int64", "INT64"),
    ("v_float64", "FLOAT64"),
    ("v_binary", "BINARY"),
)


def _tags(raw: object) -> list[tuple[str, Any]]:
    """Jaeger key/value list (either model) as (key, typed Python value); BINARY stays base64
    text wrapped in ``bytes`` only after decoding succeeds."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise BadSpan("wrong shape: tags is not a list")
    out: list[tuple[str, Any]] = []
    for tag in raw:
        if not isinstance(tag, dict) or "key" not in tag:
            raise BadSpan("wrong shape: tag is not a key/value object")
        key = str(tag["key"])
        if "value" in tag:
            value_type = str(tag.get("type") or "string").upper()
            value = tag["value"]
        else:
            value_type = str(tag.get("vType") or tag.get("v_type") or "STRING").upper()
            value = next((tag[k] for k, t in _TYPED_VALUE_KEYS if k in tag and t == value_type), "")
        out.append((key, _typed(value, value_type, key)))
    return out


def _typed(value: object, value_type: str, key: str) -> Any:
    try:
        if value_type in ("INT64", "INT"):
            return int(value)  # type: ignore[call-overload]
        if value_type in ("FLOAT64", "FLOAT", "DOUBLE"):
            return float(value)  # type: ignore[arg-type]
        if value_type == "BOOL":
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (TypeError, ValueError):
        raise BadSpan(f"bad tag value: {key}={str(value)[:40]!r} is not {value_type}") from None
    if value_type == "BINARY":
        return _Base64(str(value))
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class _Base64(str):
    """A BINARY tag value: base64 text, kept as is and typed BYTES."""


def _events(raw: object) -> list[tuple[int, str, list[Attribute]]]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise BadSpan("wrong shape: logs is not a list")
    events: list[tuple[int, str, list[Attribute]]] = []
    for log in raw:
        if not isinstance(log, dict):
            raise BadSpan("wrong shape: log is not an object")
        when = parse_time(log.get("timestamp"), "log time")
        name = ""
        attributes: list[Attribute] = []
        for key, value in _tags(log.get("fields")):
            if key == "event" and not name and isinstance(value, str):
                name = value
            else:
                attributes.append(_attribute(key, value))
        events.append((when, name, attributes))
    return events


def _attribute(key: str, value: Any) -> Attribute:
    if isinstance(value, _Base64):
        return (key, str(value), ValueType.BYTES)
    return attribute_from_python(key, value)


def parse_time(raw: object, what: str) -> int:
    """Unix nanoseconds from microseconds (number or digit string) or RFC 3339 text."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise BadSpan(f"missing {what}")
    number: int
    whole_us = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
    if whole_us or (isinstance(raw, str) and raw.strip().isdigit()):
        number = int(raw) * NS_PER_US  # type: ignore[call-overload]
    elif isinstance(raw, str):
        number = _rfc3339_ns(raw, what)
    else:
        raise BadSpan(f"bad {what}: {raw!r}")
    if not 0 <= number < 2**63:
        raise BadSpan(f"bad {what}: out of range")
    return number


def _rfc3339_ns(text: str, what: str) -> int:
    match = _RFC3339.match(text.strip())
    if match is None:
        raise BadSpan(f"bad {what}: {text[:40]!r}")
    whole, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(whole.replace(" ", "T").replace("t", "T") + zone)
    except ValueError:
        raise BadSpan(f"bad {what}: {text[:40]!r}") from None
    nanos = int((fraction or "0").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def parse_duration(raw: object) -> int:
    """Nanoseconds from microseconds (number) or Go/proto duration text (``5000ns``, ``1.5s``)."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise BadSpan("missing duration")
    if isinstance(raw, int):
        nanos = raw * NS_PER_US
    elif isinstance(raw, float):
        nanos = round(raw * NS_PER_US)
    elif isinstance(raw, str) and raw.strip().isdigit():
        nanos = int(raw) * NS_PER_US
    elif isinstance(raw, str) and (match := _DURATION_TEXT.match(raw)):
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _DURATION_UNITS_NS[unit]
        nanos = int(whole) * scale + int(fraction.ljust(9, "0")[:9]) * scale // 1_000_000_000
    else:
        raise BadSpan(f"bad duration: {str(raw)[:40]!r}")
    if nanos < 0:
        raise BadSpan(f"bad duration: negative ({raw})")
    return nanos
