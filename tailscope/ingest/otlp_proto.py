"""OTLP protobuf: one TracesData / ExportTraceServiceRequest message, or the collector file
exporter's ``format: proto`` output (each message prefixed by its length as a 4-byte big-endian
unsigned integer).

Both messages put ``repeated ResourceSpans`` in field 1, so one parser reads either. Ids are
raw bytes already; attribute values are rendered exactly as the OTLP/JSON reader renders them,
so the same spans read from either encoding give identical tables.

Two paths, one result. The native path (``_native.scan_proto``, C, see
``native/proto_scan.c``) walks the wire format into column buffers that
:func:`~tailscope.ingest.flat.table_from_flat` assembles; it streams, batching frames (or
cutting a single message) into pieces of about :data:`BATCH_BYTES` converted on worker
threads. It declines anything it cannot read exactly as the upb path does (malformed data,
bad records, doubles inside array/kvlist values ...), and upb reads those messages instead:
upb parses, :func:`_append_span` walks each span in Python and counts problems. Tests read
inputs both ways (``fast=False``) and require identical tables, counts and problems.
"""

from __future__ import annotations

import base64
import gc
import math
import sys
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any, Final, NamedTuple

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from tailscope.ingest.columns import (
    INT64_MAX,
    PROMOTED_KEYS,
    BadRecord,
    EventRow,
    LinkRow,
    ResourceColumns,
    SpanColumns,
    resource_columns,
)
from tailscope.ingest.flat import (
    RESOURCE_CACHE_SIZE,
    Unsupported,
    account,
    native,
    scanned_table,
)
from tailscope.ingest.otlp_json import BATCH_SPANS
from tailscope.ingest.problems import HeldLog, ProblemLog
from tailscope.ingest.sniff import proto_framing, read_varint
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
    if any(event.time_unix_nano > INT64_MAX for event in span.events):
        raise BadRecord("bad event time", "event time out of range")
    if not 0 <= span.kind <= 5:
        raise BadRecord("unknown span kind", f"unknown span kind: {span.kind}")
    if not 0 <= span.status.code <= 2:
        raise BadRecord("unknown status code", f"unknown status code: {span.status.code}")
    keys: list[str] = []
    values: list[str] = []
    types: list[int] = []
    promoted = _attributes(span.attributes, keys, values, types)
    links: list[LinkRow] = []
    for link in span.links:
        lk: list[str] = []
        lv: list[str] = []
        lt: list[int] = []
        _attributes(link.attributes, lk, lv, lt)
        links.append(
            (
                _fix_id(link.trace_id, 16, "link id"),
                _fix_id(link.span_id, 8, "link id"),
                (lk, lv, lt),
            )
        )
    events: list[EventRow] = []
    for event in span.events:
        ek: list[str] = []
        ev: list[str] = []
        et: list[int] = []
        _attributes(event.attributes, ek, ev, et)
        events.append((event.time_unix_nano, event.name, (ek, ev, et)))

    cols.append_span(
        ids=(trace_id, span_id, parent),
        name=span.name,
        kind=span.kind,
        start=start,
        end=end,
        status=(span.status.code, span.status.message or None),
        resource=resource,
        scope=scope,
        trace_state=span.trace_state or None,
        flags=span.flags or None,  # 0 means "no flags", as a missing JSON field
        attributes=(keys, values, types),
        promoted=promoted,
        events=events,
        links=links,
    )


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
            if len(cache) < RESOURCE_CACHE_SIZE:
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


# ---------------------------------------------------------------- native scan and streaming

BATCH_BYTES: Final = 8 * 1024 * 1024
"""Encoded span data scanned natively in one go: frames are joined, and a single message is
cut at top-level field boundaries, into pieces of about this size."""


class _Batch(NamedTuple):
    """Whole messages ``(byte offset, payload)`` and what the scanner reads: their payloads
    joined (concatenated protobuf messages are one message holding all their fields)."""

    messages: list[tuple[int, bytes]]
    joined: bytes


def _whole_fields(payload: bytes) -> bool:
    """True when ``payload`` is nothing but complete ``resource_spans`` fields, so joining it
    to other payloads changes no field boundary (a truncated last field would otherwise read
    on into the next message)."""
    pos = 0
    while pos < len(payload):
        length = read_varint(payload, pos + 1) if payload[pos] == 0x0A else None
        if length is None:
            return False
        pos = length[1] + length[0]
    return pos == len(payload)


def _resource_of(encoded: bytes | None) -> ResourceColumns:
    if encoded is None:
        return _resource(Resource())
    try:
        return _resource(Resource.FromString(encoded))
    except DecodeError:  # the scanner validated it: cannot happen
        raise Unsupported("resource") from None


def _scope_of(encoded: bytes | None) -> tuple[str | None, str | None]:
    if encoded is None:
        return None, None
    try:
        scope = InstrumentationScope.FromString(encoded)
    except DecodeError:  # the scanner validated it: cannot happen
        raise Unsupported("scope") from None
    return scope.name or None, scope.version or None


WORKERS: Final = 2
"""Batches converted at once: the scan releases the GIL and so do most Arrow kernels of the
assembly, so two batches in flight keep both cores of a small machine busy."""


def _convert(
    batch: _Batch, cache: dict[bytes | None, ResourceColumns]
) -> tuple[pa.Table, int, int] | None:
    """(table, spans, resources without service.name) of one batch read natively, or None
    when it needs upb."""
    if native is None:
        return None
    try:
        return scanned_table(
            native.scan_proto(batch.joined), batch.joined, _resource_of, _scope_of, cache
        )
    except Unsupported:
        return None


def _converted(
    batches: Iterator[_Batch], cache: dict[bytes | None, ResourceColumns]
) -> Generator[tuple[_Batch, tuple[pa.Table, int, int] | None], None, None]:
    """Each batch with its :func:`_convert` result, in order; :data:`WORKERS` threads convert
    the next batches while the caller consumes this one."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tailscope-proto") as pool:
        pending: deque[tuple[_Batch, Future[tuple[pa.Table, int, int] | None]]] = deque()
        for batch in batches:
            pending.append((batch, pool.submit(_convert, batch, cache)))
            if len(pending) > WORKERS:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def _read_upb(messages: Iterable[tuple[int, bytes]], log: ProblemLog) -> Iterator[pa.Table]:
    """The tolerant path: upb parses each message, a Python loop appends its spans."""
    cols = SpanColumns()
    resource_cache: dict[bytes, ResourceColumns] = {}
    for offset, payload in messages:
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


def _read_batches(batches: Iterator[_Batch], log: ProblemLog) -> Iterator[pa.Table]:
    cache: dict[bytes | None, ResourceColumns] = {}
    for batch, done in _converted(batches, cache):
        if done is None:
            yield from _bisect(batch, log, cache)
        else:
            yield from account(log, *done)


def _bisect(
    batch: _Batch, log: ProblemLog, cache: dict[bytes | None, ResourceColumns]
) -> Iterator[pa.Table]:
    """A batch the scanner declined: halves are tried natively in turn, down to the messages
    that need upb, so one bad span costs a few scans instead of the whole batch in upb."""
    if len(batch.messages) == 1:
        yield from _read_upb(batch.messages, log)
        return
    middle = len(batch.messages) // 2
    for part in (batch.messages[:middle], batch.messages[middle:]):
        half = _Batch(part, b"".join(payload for _, payload in part))
        done = _convert(half, cache)
        if done is None:
            yield from _bisect(half, log, cache)
        else:
            yield from account(log, *done)


def _read_single(pieces: Iterator[bytes], log: ProblemLog) -> Iterator[pa.Table]:
    """One (possibly huge) message, given as pieces of whole top-level fields: each piece is
    a message of its own, read natively or else by upb. Tables and problems are held until
    the last piece, so a message upb rejects in any piece yields nothing, as it always did."""
    held = HeldLog(log, own_stats=True)
    tables: list[pa.Table] = []
    upb_cache: dict[bytes, ResourceColumns] = {}
    batches = (_Batch([(0, piece)], piece) for piece in pieces)
    with closing(_converted(batches, {})) as converted:
        for batch, done in converted:
            if done is not None:
                tables.extend(account(held, *done))
                continue
            message = TracesData()
            try:
                message.ParseFromString(batch.joined)
            except DecodeError as exc:
                log.bad(None, "not protobuf", f"not an OTLP protobuf message: {exc}", 0)
                return
            cols = SpanColumns()
            append_message(cols, message, held, 0, upb_cache)
            tables.append(cols.to_table())
    held.replay_into(log)
    yield from (table for table in tables if table.num_rows)


def _field_end(buffer: bytes, pos: int) -> int | None:
    """Where the field starting at ``buffer[pos]`` ends (possibly beyond the buffer), or None
    when its header is not a plain field (field number 0, a group, a cut or overlong varint)."""
    tag = read_varint(buffer, pos)
    if tag is None or tag[0] >> 3 == 0:
        return None
    wire, pos = tag[0] & 7, tag[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    if wire not in (0, 2):
        return None
    value = read_varint(buffer, pos)
    if value is None:
        return None
    return value[1] + (value[0] if wire == 2 else 0)


def _more(buffer: bytes, start: int, chunks: Iterator[bytes], want: int) -> tuple[bytes, bool]:
    """``buffer[start:]`` topped up to ``want`` bytes, and whether the content ran out first."""
    topped = _refill(buffer, start, chunks, want)
    return topped, len(topped) < want


def _message_pieces(buffer: bytes, chunks: Iterator[bytes], step: int) -> Iterator[bytes]:
    """A single message cut as the chunks arrive into pieces of about ``step`` bytes, each a
    run of whole top-level fields (joined, they are the message again). Where the top level
    is not plain fields (a group, a bad tag, data cut short), the rest of the content is the
    last piece: the scanner declines it and upb decides."""
    start = pos = 0  # the current piece starts at buffer[start]; the next field at buffer[pos]
    exhausted = False
    while True:
        if not exhausted and len(buffer) - pos < 21:  # room for a tag and a length
            buffer, exhausted = _more(buffer, start, chunks, pos - start + 21)
            pos, start = pos - start, 0
        if pos == len(buffer):
            if pos > start:
                yield buffer[start:pos]
            return
        end = _field_end(buffer, pos)
        if end is not None and end > len(buffer) and not exhausted:
            buffer, exhausted = _more(buffer, start, chunks, end - start)
            pos, end, start = pos - start, end - start, 0
        if end is None or end > len(buffer):
            yield _refill(buffer, start, chunks, sys.maxsize)
            return
        pos = end
        if pos - start >= step:
            yield buffer[start:pos]
            start = pos


def _frames(
    buffer: bytes, chunks: Iterator[bytes], ending: list[tuple[str, int]]
) -> Iterator[tuple[int, bytes]]:
    """``(offset of the length prefix, payload)`` of each collector frame, reading further
    chunks only when the current frame needs them. ``buffer`` is the content read so far.
    A truncated last frame goes to ``ending`` as (detail, offset): it is reported after the
    frames before it, which may still be converting on worker threads."""
    pos = 0
    base = 0  # offset of buffer[0] in the input
    while True:
        if len(buffer) - pos < 4:
            buffer, base, pos = _refill(buffer, pos, chunks, 4), base + pos, 0
            if not buffer:
                return
            if len(buffer) < 4:
                ending.append(("truncated message: partial length prefix", base))
                return
        length = int.from_bytes(buffer[pos : pos + 4], "big")
        if len(buffer) - pos < 4 + length:
            buffer, base, pos = _refill(buffer, pos, chunks, 4 + length), base + pos, 0
            if len(buffer) < 4 + length:
                detail = f"truncated message: frame of {length} bytes, {len(buffer) - 4} left"
                ending.append((detail, base))
                return
        yield base + pos, buffer[pos + 4 : pos + 4 + length]
        pos += 4 + length


def _refill(buffer: bytes, pos: int, chunks: Iterator[bytes], need: int) -> bytes:
    """``buffer[pos:]`` followed by enough further chunks to hold ``need`` bytes (or all)."""
    parts = [buffer[pos:]]
    have = len(parts[0])
    while have < need:
        chunk = next(chunks, None)
        if chunk is None:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _framed_batches(frames: Iterator[tuple[int, bytes]], batch_bytes: int) -> Iterator[_Batch]:
    """Frames grouped into batches of about ``batch_bytes``; a frame whose top level is not
    just complete ``resource_spans`` fields (truncated, or odd) is a batch of its own."""
    pending: list[tuple[int, bytes]] = []
    size = 0
    for offset, payload in frames:
        if not _whole_fields(payload):
            if pending:
                yield _Batch(pending, b"".join(p for _, p in pending))
                pending, size = [], 0
            yield _Batch([(offset, payload)], payload)
            continue
        pending.append((offset, payload))
        size += len(payload)
        if size >= batch_bytes:
            yield _Batch(pending, b"".join(p for _, p in pending))
            pending, size = [], 0
    if pending:
        yield _Batch(pending, b"".join(p for _, p in pending))


def _framed(chunks: Iterator[bytes]) -> tuple[bool, bytes]:
    """Whether the content is collector-framed, decided exactly as :func:`proto_framing`
    decides on the whole content, and the content read for that: only as far as the first
    ``resource_spans`` of a single message, or else the first frame, could reach."""
    buffer = _refill(b"", 0, chunks, 16)
    single = read_varint(buffer, 1) if buffer[:1] == b"\x0a" else None
    if single is not None:
        buffer = _refill(buffer, 0, chunks, single[0] + single[1])
    elif len(buffer) >= 5 and buffer[4] == 0x0A:
        buffer = _refill(buffer, 0, chunks, 4 + int.from_bytes(buffer[:4], "big"))
    return proto_framing(buffer[:16], len(buffer)) == "framed", buffer


def read_chunks(
    chunks: Iterable[bytes],
    log: ProblemLog,
    *,
    fast: bool = True,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[pa.Table]:
    """Read OTLP protobuf content given as chunks of any size, as it arrives: frames are cut
    from the chunks, and a single message into pieces of whole top-level fields, so memory
    does not grow with the input beyond the tables. ``batch_bytes`` is how much encoded data
    one native scan takes. ``fast=False`` (or no C scanner) reads every message with upb, the
    reference path."""
    fast = fast and native is not None
    stream = iter(chunks)
    framed, buffer = _framed(stream)
    if not framed:
        if fast:
            yield from _read_single(_message_pieces(buffer, stream, batch_bytes), log)
            for _ in stream:  # a rejected message: still read to the end (gzip checks)
                pass
        else:
            yield from _read_upb([(0, _refill(buffer, 0, stream, sys.maxsize))], log)
        return
    ending: list[tuple[str, int]] = []
    frames = _frames(buffer, stream, ending)
    if fast:
        yield from _read_batches(_framed_batches(frames, batch_bytes), log)
    else:
        yield from _read_upb(frames, log)
    for detail, offset in ending:
        log.bad(None, "truncated message", detail, offset)
