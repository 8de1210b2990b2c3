"""Zipkin v2 JSON reader: a list of spans, as ``/api/v2/trace/{id}`` and the Zipkin UI write.

Contract (called by the dispatcher, :func:`tailscope.ingest.read_spans`): :func:`sniff` says
whether the first 64 KiB look like Zipkin v2 JSON; :func:`read` turns a whole document (a list
of spans, or a list of such lists as ``/api/v2/traces`` returns) into a table of exactly
:data:`~tailscope.schema.SPAN_SCHEMA`. Every span object is counted in ``stats.records``; the
ones that cannot be read are skipped with a counted :class:`Problem`. It never raises.

Zipkin quirks and what we do (``docs/formats.md`` has the full table):

* **Shared spans.** A ``shared: true`` SERVER span reuses its CLIENT's id. When another span
  with that id is in the input, the server half gets a deterministic derived id
  (:func:`~tailscope.ingest.jaeger.derived_span_id` of trace id, span id, local endpoint and
  start time) and the client as its parent; attribute ``zipkin.shared=true`` marks it. A span
  whose ``parentId`` is such an id is attached, as Zipkin's own ``SpanNode`` does, to the server
  half on the same local endpoint (same service name as a fallback; the latest one started at or
  before the child when several servers answered the same id), else to the client.
* **Fragments.** A record without ``timestamp`` whose trace id, span id and local endpoint match
  a timestamped record is a late fragment of that span (Zipkin's storage merges them): its tags,
  annotations and missing fields are merged into that span and it is counted in
  ``stats.duplicates_dropped``. Without such a partner it cannot be placed in time and is
  skipped as ``missing timestamp``.
* **Missing duration.** The span is kept (its children still need their parent), with
  ``end = start`` and attribute ``zipkin.duration_missing=true`` so latency analyses can leave
  it out.
* No ``kind`` is a local span (Zipkin's definition): kind INTERNAL. No service name is
  ``unknown_service``. 64-bit trace ids are left-padded to 16 bytes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import orjson

from tailscope import schema as s
from tailscope.ingest.columns import decode_id
from tailscope.ingest.jaeger import derived_span_id, promote_tags
from tailscope.ingest.model import IngestStats, Problem
from tailscope.ingest.rows import Attribute, SpanRow, resource_json, table_from_rows
from tailscope.schema import SpanKind, StatusCode, ValueType

if TYPE_CHECKING:
    import pyarrow as pa

NS_PER_US: Final = 1_000
SHARED_KEY: Final = "zipkin.shared"
"""Attribute (BOOL ``true``) on a shared server half."""
DURATION_MISSING_KEY: Final = s.DURATION_MISSING_KEY
"""Attribute (BOOL ``true``) on a span whose duration Zipkin did not know (kept with 0 ns)."""

_KINDS: Final[dict[str, int]] = {
    "CLIENT": SpanKind.CLIENT,
    "SERVER": SpanKind.SERVER,
    "PRODUCER": SpanKind.PRODUCER,
    "CONSUMER": SpanKind.CONSUMER,
}
_FIRST_SPAN: Final = re.compile(rb"^\s*\[\s*(\[\s*)?\{")
_TRACE_ID: Final = re.compile(rb'"traceId"\s*:\s*"[0-9a-fA-F]{1,32}"')
_SPAN_ID: Final = re.compile(rb'"id"\s*:\s*"[0-9a-fA-F]{1,16}"')
_V2_FIELDS: Final = re.compile(rb'"(localEndpoint|timestamp|duration|kind|parentId)"\s*:')
_NOT_V2: Final = re.compile(rb'"(binaryAnnotations|operationName|spanId|resourceSpans)"\s*:')

EndpointKey = tuple[str, str, str, str]
"""(service name, ipv4, ipv6, port) of a local endpoint: how Zipkin tells servers apart."""


class BadSpan(Exception):
    """One span object cannot be read; the message is the one-line reason."""


def sniff(head: bytes) -> bool:
    """True when ``head`` is a JSON list whose objects carry Zipkin v2 keys (``traceId`` and
    ``id`` with hex values plus a v2 field such as ``localEndpoint`` or ``timestamp``).

    Zipkin v1 (``binaryAnnotations``), Jaeger (``operationName``) and OTLP (``spanId``,
    ``resourceSpans``) are not claimed, nor are arbitrary JSON lists.
    """
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    if not _FIRST_SPAN.match(body):
        return False
    return bool(
        _TRACE_ID.search(body)
        and _SPAN_ID.search(body)
        and _V2_FIELDS.search(body)
        and not _NOT_V2.search(body)
    )


def read(data: bytes, file: str, stats: IngestStats) -> pa.Table:
    """Read one Zipkin v2 JSON document into a span table (see the module docstring)."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        stats.skip(Problem(file, None, f"not JSON: {exc}"), "not JSON")
        return table_from_rows([])
    if not isinstance(document, list):
        stats.skip(Problem(file, None, "not a Zipkin v2 span list"), "not a span list")
        return table_from_rows([])
    parsed: list[_Parsed] = []
    for index, span in enumerate(_span_objects(document)):
        stats.records += 1
        try:
            parsed.append(_parse(span, index))
        except BadSpan as exc:
            reason = str(exc)
            where = f"{reason} (span #{index + 1})"
            stats.skip(Problem(file, None, where), reason.split(":", 1)[0])
    spans = _merge_fragments(parsed, file, stats)
    _assign_ids(spans)
    endpoints_without_service = {p.endpoint for p in spans if not p.endpoint[0]}
    stats.unknown_service_resources += len(endpoints_without_service)
    return table_from_rows([p.to_row() for p in spans])


def _span_objects(document: list[Any]) -> Iterator[Any]:
    for item in document:
        if isinstance(item, list):
            yield from item
        else:
            yield item


class _Parsed:
    """One Zipkin span record, parsed; ids and parent are final after :func:`_assign_ids`."""

    __slots__ = (
        "annotations",
        "duration_us",
        "endpoint",
        "index",
        "kind",
        "name",
        "parent_id",
        "raw",
        "remote",
        "shared",
        "span_id",
        "tags",
        "timestamp_us",
        "trace_id",
        "wire_id",
    )

    def __init__(self, raw: dict[str, Any], index: int) -> None:
        self.raw = raw
        self.index = index
        self.trace_id = b""
        self.wire_id = b""
        """The id as written in the file (a shared half's stays the client's)."""
        self.span_id = b""
        self.parent_id: bytes | None = None
        self.name: str | None = None
        self.kind: str | None = None
        self.timestamp_us: int | None = None
        self.duration_us: int | None = None
        self.shared = False
        self.endpoint: EndpointKey = ("", "", "", "")
        self.remote: dict[str, Any] | None = None
        self.tags: dict[str, str] = {}
        self.annotations: list[tuple[int, str]] = []

    def absorb(self, fragment: _Parsed) -> None:
        """Merge a timestamp-less fragment of this span into it (existing values win)."""
        for key, value in fragment.tags.items():
            self.tags.setdefault(key, value)
        self.annotations.extend(fragment.annotations)
        self.name = self.name or fragment.name
        self.kind = self.kind or fragment.kind
        self.remote = self.remote or fragment.remote
        if self.duration_us is None:
            self.duration_us = fragment.duration_us

    def to_row(self) -> SpanRow:
        assert self.timestamp_us is not None
        start = self.timestamp_us * NS_PER_US
        service, ipv4, ipv6, port = self.endpoint
        service = service or s.UNKNOWN_SERVICE
        address = ipv4 or ipv6
        attributes: list[Attribute] = [(k, v, ValueType.STRING) for k, v in self.tags.items()]
        if self.remote:
            attributes.extend(_remote_attributes(self.remote))
        if self.shared:
            attributes.append((SHARED_KEY, "true", ValueType.BOOL))
        if self.duration_us is None:
            attributes.append((DURATION_MISSING_KEY, "true", ValueType.BOOL))
        resource: dict[str, Any] = {"service.name": service}
        if ipv4:
            resource["zipkin.local_endpoint.ipv4"] = ipv4
        if ipv6:
            resource["zipkin.local_endpoint.ipv6"] = ipv6
        if port:
            resource["zipkin.local_endpoint.port"] = int(port)
        row = SpanRow(
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_id,
            name=self.name or "",
            kind=_KINDS.get(self.kind or "", SpanKind.INTERNAL),
            start_unix_nano=start,
            end_unix_nano=start + (self.duration_us or 0) * NS_PER_US,
            service_name=service,
            service_instance=(f"{address}:{port}" if address and port else address) or service,
            host_name=address or None,
            attributes=attributes,
            resource_attributes=resource_json(resource),
            events=[(t * NS_PER_US, value, []) for t, value in self.annotations],
        )
        remote_service = (self.remote or {}).get("serviceName")
        promote_tags(row, {"peer.service": remote_service, **self.tags})
        if "error" in self.tags:
            # Zipkin: the presence of an "error" tag means failure; its value is the message.
            row.status_code = StatusCode.ERROR
            message = self.tags["error"]
            if message and message.lower() != "true":
                row.status_message = message
        return row


def _remote_attributes(remote: dict[str, Any]) -> list[Attribute]:
    out: list[Attribute] = []
    if remote.get("serviceName"):
        out.append(("peer.service", str(remote["serviceName"]), ValueType.STRING))
    address = remote.get("ipv4") or remote.get("ipv6")
    if address:
        out.append(("network.peer.address", str(address), ValueType.STRING))
    if isinstance(remote.get("port"), int) and not isinstance(remote.get("port"), bool):
        out.append(("network.peer.port", str(remote["port"]), ValueType.INT))
    return out


def _id(raw: object, size: int, what: str) -> bytes:
    if raw is None or raw == "":
        raise BadSpan(f"missing {what}")
    if not isinstance(raw, str) or not raw or len(raw) > 2 * size:
        raise BadSpan(f"bad {what}: {str(raw)[:40]!r}")
    decoded = decode_id(raw, size)
    if decoded is None or decoded == bytes(size):
        raise BadSpan(f"bad {what}: {raw[:40]!r}")
    return decoded


def _microseconds(raw: object, what: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise BadSpan(f"bad {what}: {str(raw)[:40]!r}")
    number = int(raw)
    if number < 0 or number * NS_PER_US >= 2**63:
        raise BadSpan(f"bad {what}: out of range ({number})")
    return number


def _parse(raw: object, index: int) -> _Parsed:
    if not isinstance(raw, dict):
        raise BadSpan("wrong shape: span is not an object")
    span = _Parsed(raw, index)
    span.trace_id = _id(raw.get("traceId"), 16, "trace id")
    span.wire_id = span.span_id = _id(raw.get("id"), 8, "span id")
    parent = raw.get("parentId")
    span.parent_id = _id(parent, 8, "parent id") if parent else None
    span.name = str(raw["name"]) if raw.get("name") is not None else None
    kind = raw.get("kind")
    if kind is not None and str(kind).upper() not in _KINDS:
        raise BadSpan(f"unknown span kind: {str(kind)[:40]!r}")
    span.kind = str(kind).upper() if kind is not None else None
    # Zipkin treats a zero timestamp as unset.
    span.timestamp_us = _microseconds(raw.get("timestamp"), "timestamp") or None
    span.duration_us = _microseconds(raw.get("duration"), "duration")
    span.shared = raw.get("shared") is True
    local = raw.get("localEndpoint") or {}
    remote = raw.get("remoteEndpoint")
    if not isinstance(local, dict) or not isinstance(remote, dict | None):
        raise BadSpan("wrong shape: endpoint is not an object")
    span.endpoint = (
        str(local.get("serviceName") or ""),
        str(local.get("ipv4") or ""),
        str(local.get("ipv6") or ""),
        str(local.get("port") or ""),
    )
    span.remote = remote
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise BadSpan("wrong shape: tags is not an object")
    span.tags = {
        str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in tags.items()
    }
    annotations = raw.get("annotations") or []
    if not isinstance(annotations, list):
        raise BadSpan("wrong shape: annotations is not a list")
    for note in annotations:
        if not isinstance(note, dict):
            raise BadSpan("wrong shape: annotation is not an object")
        when = _microseconds(note.get("timestamp"), "annotation timestamp")
        if when is None:
            raise BadSpan("missing annotation timestamp")
        span.annotations.append((when, str(note.get("value") or "")))
    return span


def _merge_fragments(parsed: list[_Parsed], file: str, stats: IngestStats) -> list[_Parsed]:
    """Fold timestamp-less fragments into the span they belong to (see the module docstring)."""
    placed: dict[tuple[bytes, bytes, EndpointKey], list[_Parsed]] = defaultdict(list)
    for span in parsed:
        if span.timestamp_us is not None:
            placed[(span.trace_id, span.wire_id, span.endpoint)].append(span)
    kept: list[_Parsed] = []
    for span in parsed:
        if span.timestamp_us is not None:
            kept.append(span)
            continue
        partners = placed.get((span.trace_id, span.wire_id, span.endpoint))
        if partners:
            partners[0].absorb(span)
            stats.duplicates_dropped += 1
            continue
        reason = "missing timestamp"
        where = f"{reason}: span {span.wire_id.hex()} has no timestamp (span #{span.index + 1})"
        stats.skip(Problem(file, None, where), reason)
    return kept


def _assign_ids(spans: list[_Parsed]) -> None:
    """Give shared server halves their own ids and attach children to the right half."""
    by_id: dict[tuple[bytes, bytes], list[_Parsed]] = defaultdict(list)
    for span in spans:
        by_id[(span.trace_id, span.wire_id)].append(span)
    halves: dict[tuple[bytes, bytes], list[_Parsed]] = {}
    for key, group in by_id.items():
        shared = [p for p in group if p.shared]
        if not shared or len(group) == 1:
            continue
        for half in shared:
            assert half.timestamp_us is not None
            salt = b"zipkin-shared|%s|%d" % ("|".join(half.endpoint).encode(), half.timestamp_us)
            half.span_id = derived_span_id(half.trace_id, half.wire_id, salt)
            half.parent_id = half.wire_id
        halves[key] = sorted(shared, key=lambda p: p.timestamp_us or 0)
    if not halves:
        return
    for span in spans:
        if span.shared or span.parent_id is None:
            continue
        candidates = halves.get((span.trace_id, span.parent_id))
        if not candidates:
            continue
        same = [h for h in candidates if h.endpoint == span.endpoint] or [
            h for h in candidates if h.endpoint[0] == span.endpoint[0]
        ]
        if same:
            span.parent_id = _closest_before(same, span.timestamp_us or 0).span_id


def _closest_before(halves: list[_Parsed], start_us: int) -> _Parsed:
    """The latest-starting half that started at or before ``start_us``, else the earliest."""
    chosen = halves[0]
    for half in halves:
        if (half.timestamp_us or 0) <= start_us:
            chosen = half
    return chosen
