"""The vectorised OTLP/JSON Lines path: whole blocks of lines parsed by ``pyarrow.json`` with an
explicit nested schema, then flattened into span columns with Arrow compute and numpy.

It only accepts what it can read *exactly* as the tolerant per-record reader
(:mod:`tailscope.ingest.otlp_json`) would: spec-shaped lines with 32/16-digit hex ids, integer
enums, string int64s and scalar attribute values. Anything else in a block (base64 ids, enum
names, snake_case, ``arrayValue``/``kvlistValue``, ``"NaN"``, non-hex link ids, metric/log
lines, bad records ...) raises :class:`Unsupported` before anything is counted, and the caller
reads that block with the tolerant path instead. Tests check that both paths produce identical
tables on the same input, so the fast path can never silently drop what the slow one keeps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, NamedTuple, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tailscope import schema as s
from tailscope.ingest import otlp_json
from tailscope.ingest.columns import INT32_MAX, INT32_MIN, ResourceColumns
from tailscope.ingest.flat import (
    PROMOTED_ORDER,
    RESOURCE_CACHE_SIZE,
    Flat,
    Unsupported,
    account,
    double_texts,
    promoted_columns,
    scanned_table,
)
from tailscope.ingest.flat import native as _native
from tailscope.ingest.problems import Held, HeldLog, ProblemLog, replay

USE_NATIVE = True
"""Use the native scanner when it is built (tests switch it off to check the other path)."""

_VALUE = pa.struct(
    [
        ("stringValue", pa.string()),
        ("boolValue", pa.bool_()),
        ("intValue", pa.string()),
        ("doubleValue", pa.float64()),
        ("bytesValue", pa.string()),
    ]
)
_KV = pa.list_(pa.struct([("key", pa.string()), ("value", _VALUE)]))
_SPAN = pa.struct(
    [
        ("traceId", pa.string()),
        ("spanId", pa.string()),
        ("parentSpanId", pa.string()),
        ("traceState", pa.string()),
        ("flags", pa.int64()),
        ("name", pa.string()),
        ("kind", pa.int64()),
        ("startTimeUnixNano", pa.string()),
        ("endTimeUnixNano", pa.string()),
        ("attributes", _KV),
        (
            "events",
            pa.list_(
                pa.struct(
                    [
                        ("timeUnixNano", pa.string()),
                        ("name", pa.string()),
                        ("attributes", _KV),
                        ("time_unix_nano", pa.string()),
                    ]
                )
            ),
        ),
        (
            "links",
            pa.list_(
                pa.struct(
                    [
                        ("traceId", pa.string()),
                        ("spanId", pa.string()),
                        ("attributes", _KV),
                        ("trace_id", pa.string()),
                        ("span_id", pa.string()),
                    ]
                )
            ),
        ),
        ("status", pa.struct([("code", pa.int64()), ("message", pa.string())])),
        *((name, pa.string()) for name in ("parent_span_id", "trace_state", "trace_id", "span_id")),
    ]
)
_SPAN_TRIPWIRES: Final = ("parent_span_id", "trace_state", "trace_id", "span_id")
"""snake_case spellings of span fields. pyarrow would ignore them silently, so they are parsed
as extra columns that must stay null (a non-string value fails the parse: same outcome)."""
LINE_SCHEMA: Final = pa.schema(
    [
        (
            "resourceSpans",
            pa.list_(
                pa.struct(
                    [
                        ("resource", pa.struct([("attributes", _KV)])),
                        ("instrumentationLibrarySpans", pa.string()),
                        (
                            "scopeSpans",
                            pa.list_(
                                pa.struct(
                                    [
                                        (
                                            "scope",
                                            pa.struct(
                                                [("name", pa.string()), ("version", pa.string())]
                                            ),
                                        ),
                                        ("spans", pa.list_(_SPAN)),
                                        ("instrumentationLibrary", pa.string()),
                                    ]
                                )
                            ),
                        ),
                    ]
                )
            ),
        )
    ]
)
"""The part of a TracesData line the fast path reads. pyarrow ignores other fields, so the
spellings it could silently miss (snake_case, pre-1.0 instrumentationLibrary*) are parsed as
tripwire columns that send the block to the tolerant path when present; ``arrayValue``,
``kvlistValue``, snake_case values and metric/log lines show up as all-null structs."""

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


# Arrow scalars built once: converting a Python value in every compute call costs a failed
# ``import dateutil`` attempt each time (~0.1 ms, a dozen times a block).
_ZERO_I32: Final = pa.scalar(0, pa.int32())
_ZERO_I64: Final = pa.scalar(0, pa.int64())
_INT32_MIN: Final = pa.scalar(INT32_MIN, pa.int64())
_INT32_MAX: Final = pa.scalar(INT32_MAX, pa.int64())
_NULL_INT64: Final = pa.scalar(None, pa.int64())
_NULL_STRING: Final = pa.scalar(None, pa.string())
_EMPTY_STRING: Final = pa.scalar("", pa.string())
_ZERO_HEX_ID: Final = pa.scalar("0" * 16, pa.string())
_TRUE: Final = pa.scalar("true", pa.string())
_FALSE: Final = pa.scalar("false", pa.string())


def _field(array: pa.Array, name: str) -> pa.Array:
    return pc.struct_field(array, name)


def _hex_ids(strings: pa.Array, size: int) -> pa.Array:
    """Decode fixed-length hex strings (any case) into ``binary(size)`` without a Python loop."""
    strings = strings.cast(pa.string())
    if strings.null_count:
        raise Unsupported("missing id")
    n = len(strings)
    if n == 0:
        return pa.array([], pa.binary(size))
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + n + 1
    ]
    if n and not np.all(np.diff(offsets) == 2 * size):
        raise Unsupported("id length")
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    nibbles = _HEX[data].reshape(n, 2 * size)
    if n and nibbles.max() == 255:
        raise Unsupported("not hex")
    raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    if n and not raw.any(axis=1).all():
        raise Unsupported("all-zero id")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(size), n, [None, pa.py_buffer(raw.tobytes())]
    )


def _parent_ids(strings: pa.Array) -> pa.Array:
    """Parent ids: null, empty or all-zero mean "root" (null)."""
    if len(strings) == 0:
        return pa.array([], pa.binary(8))
    present = pc.fill_null(pc.greater(pc.utf8_length(strings), _ZERO_I32), False)
    filled = pc.if_else(present, strings, _ZERO_HEX_ID)
    decoded_raw = filled.cast(pa.string())
    n = len(decoded_raw)
    offsets = np.frombuffer(decoded_raw.buffers()[1], dtype=np.int32)[
        decoded_raw.offset : decoded_raw.offset + n + 1
    ]
    if n and not np.all(np.diff(offsets) == 16):
        raise Unsupported("parent id length")
    data = np.frombuffer(decoded_raw.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    nibbles = _HEX[data].reshape(n, 16)
    if n and nibbles.max() == 255:
        raise Unsupported("parent not hex")
    raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    is_root = ~raw.any(axis=1)
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(8),
        n,
        [pa.array(~is_root).buffers()[1] if is_root.any() else None, pa.py_buffer(raw.tobytes())],
        null_count=int(is_root.sum()),
    )


def _times(strings: pa.Array) -> np.ndarray:
    if strings.null_count:
        raise Unsupported("missing time")
    try:
        times = pc.cast(strings, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise Unsupported("time not an integer string") from None
    values: np.ndarray = np.asarray(times.to_numpy(zero_copy_only=False), dtype=np.int64)
    if len(values) and values.min() < 0:
        raise Unsupported("negative time")
    return values


def _empty_to_null(strings: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(strings, _EMPTY_STRING), _NULL_STRING, strings)


def _list_offsets(lists: pa.Array) -> np.ndarray:
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


_VALUE_FIELDS: Final = ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue")


def _attribute_values(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(value text, ValueType tags) of flattened attribute value structs.

    Each variant is rendered on its own non-null values only; the pieces are concatenated and
    put back in attribute order with one ``take``.
    """
    n = len(values)
    parts = [_field(values, name) for name in _VALUE_FIELDS]
    valid = [np.asarray(p.is_valid().to_numpy(zero_copy_only=False), dtype=bool) for p in parts]
    if n and not np.all(np.sum(valid, axis=0, dtype=np.int8) == 1):
        raise Unsupported("empty or ambiguous attribute value")
    tags = np.select(valid, [1, 2, 3, 4, 5], 0).astype(np.uint8)
    if n == 0 or valid[0].all():
        return parts[0].cast(pa.string()), tags
    pieces: list[pa.Array] = []
    positions: list[np.ndarray] = []
    for tag, (part, ok) in enumerate(zip(parts, valid, strict=True), start=1):
        where = np.flatnonzero(ok)
        if not len(where):
            continue
        sub = pc.drop_null(part)
        if tag == 2:
            sub = pc.if_else(sub, _TRUE, _FALSE)
        elif tag == 3:
            try:
                sub = pc.cast(pc.cast(sub, pa.int64()), pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise Unsupported("intValue not an int64") from None
        elif tag == 4:
            sub = double_texts(sub.to_numpy(zero_copy_only=False))
        pieces.append(sub.cast(pa.string()))
        positions.append(where)
    order = np.concatenate(positions)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n, dtype=np.int64)
    return pa.concat_arrays(pieces).take(pa.array(inverse)), tags


_PROMOTED_KEYS: Final = pa.array(PROMOTED_ORDER, pa.string())


def _promoted_hits(keys: pa.Array, owners: np.ndarray, n_spans: int) -> dict[str, np.ndarray]:
    """For each promoted key present, per span the index of its first attribute with that key
    (or -1). One ``index_in`` pass over all keys, then numpy on the few hits."""
    codes = pc.index_in(keys, value_set=_PROMOTED_KEYS)
    if codes.null_count == len(codes):
        return {}
    code_np = np.asarray(pc.fill_null(codes, -1).to_numpy(zero_copy_only=False))
    hits = np.flatnonzero(code_np >= 0)
    hit_codes = code_np[hits]
    out: dict[str, np.ndarray] = {}
    for code in np.unique(hit_codes).tolist():
        mine = hits[hit_codes == code]
        span_of = owners[mine]
        # hits are in attribute order, so each span's first one starts a run of equal owners
        first = np.ones(len(mine), dtype=bool)
        first[1:] = span_of[1:] != span_of[:-1]
        index = np.full(n_spans, -1, dtype=np.int64)
        index[span_of[first]] = mine[first]
        out[str(_PROMOTED_KEYS[code].as_py())] = index
    return out


def _resource_columns(
    resources: pa.Array,
    line_offsets: np.ndarray,
    block: bytes,
    cache: dict[bytes, ResourceColumns],
) -> tuple[dict[str, pa.Array], int]:
    """Per-resource service/instance/... columns (Python per resource, not per span).

    Resources often carry ``arrayValue`` attributes (``process.command_args``) that the parse
    schema cannot hold; those few resources are re-read from their line with orjson so the
    block can stay on the fast path. ``cache`` maps a resource's JSON text to its columns:
    exports repeat the same few resources on every line.
    """
    plain: list[Any] = resources.to_pylist()
    incomplete = [
        i
        for i, resource in enumerate(plain)
        if any(
            sum(v is not None for v in (item.get("value") or {}).values()) != 1
            for item in (resource or {}).get("attributes") or []
        )
    ]
    if incomplete:
        raw_lines = [line for line in block.split(b"\n") if line.strip()]
        if len(raw_lines) != len(line_offsets) - 1:
            raise Unsupported("cannot match lines to rows")
        owner_line = np.repeat(np.arange(len(raw_lines)), np.diff(line_offsets))
        for i in incomplete:
            line = int(owner_line[i])
            try:
                doc = orjson.loads(raw_lines[line])
                plain[i] = doc["resourceSpans"][i - int(line_offsets[line])].get("resource")
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
                raise Unsupported("resource re-read failed") from None
    rows: list[ResourceColumns] = []
    for resource in plain:
        try:
            key: bytes | None = orjson.dumps(resource)
        except orjson.JSONEncodeError:
            key = None
        row = None if key is None else cache.get(key)
        if row is None:
            row = otlp_json.resource_from_json(resource)
            if key is not None and len(cache) < RESOURCE_CACHE_SIZE:
                cache[key] = row
        rows.append(row)
    unknown = sum(r.unknown_service for r in rows)

    def col(values: list[str | None]) -> pa.Array:
        return pa.array(values, pa.string()).dictionary_encode()

    return {
        s.SERVICE: col([r.service for r in rows]),
        s.INSTANCE: col([r.instance for r in rows]),
        s.HOST: col([r.host for r in rows]),
        s.LANGUAGE: col([r.language for r in rows]),
        s.RUNTIME_NAME: col([r.runtime_name for r in rows]),
        s.RUNTIME_VERSION: col([r.runtime_version for r in rows]),
        s.RESOURCE_ATTRIBUTES: col([r.attributes_json for r in rows]),
    }, unknown


def _attribute_lists(
    attr_lists: pa.Array,
) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray, np.ndarray]:
    """An ``attributes`` column from OTLP/JSON key-value lists: (column, keys, texts, tags,
    offsets)."""
    offsets = _list_offsets(attr_lists)
    kv = attr_lists.flatten()
    keys = pc.fill_null(_field(kv, "key"), "").cast(pa.string())
    values = _field(kv, "value")
    if values.null_count:
        raise Unsupported("attribute without value")
    texts, tags = _attribute_values(values)
    column = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)),
        pa.StructArray.from_arrays(
            [keys, texts, pa.array(tags, pa.uint8())], fields=list(s.ATTRIBUTE_TYPE)
        ),
        type=s.ATTRIBUTES_TYPE,
    )
    return column, keys, texts, tags, offsets


def _events(event_lists: pa.Array) -> pa.Array:
    offsets = _list_offsets(event_lists)
    events = event_lists.flatten()
    if _field(events, "time_unix_nano").null_count < len(events):
        raise Unsupported("snake_case event time")
    times = _times(pc.fill_null(_field(events, "timeUnixNano"), "0"))
    attributes = _attribute_lists(_field(events, "attributes"))[0]
    items = pa.StructArray.from_arrays(
        [
            pa.array(times, pa.int64()),
            pc.fill_null(_field(events, "name"), "").cast(pa.string()),
            attributes,
        ],
        fields=list(s.EVENT_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items, type=s.EVENTS_TYPE)


def _links(link_lists: pa.Array) -> pa.Array:
    offsets = _list_offsets(link_lists)
    links = link_lists.flatten()
    for tripwire in ("trace_id", "span_id"):
        if _field(links, tripwire).null_count < len(links):
            raise Unsupported("snake_case link id")
    items = pa.StructArray.from_arrays(
        [
            _hex_ids(_field(links, "traceId"), 16),
            _hex_ids(_field(links, "spanId"), 8),
            _attribute_lists(_field(links, "attributes"))[0],
        ],
        fields=list(s.LINK_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items, type=s.LINKS_TYPE)


PARSE_BLOCK_BYTES: Final = 2 << 20
"""pyarrow.json's unit of parallel parsing; a line longer than this is retried as one block."""


def _parse(block: bytes, block_size: int) -> pa.Table:
    options = pj.ParseOptions(explicit_schema=LINE_SCHEMA, unexpected_field_behavior="ignore")
    try:
        return pj.read_json(
            pa.BufferReader(block),
            read_options=pj.ReadOptions(block_size=block_size),
            parse_options=options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if "straddl" in str(exc) and block_size < len(block):
            return _parse(block, len(block) + 1)
        raise Unsupported(str(exc)) from None


def block_to_table(
    block: bytes,
    parsed: pa.Table | None = None,
    resource_cache: dict[bytes, ResourceColumns] | None = None,
) -> tuple[pa.Table, int, int]:
    """Parse one block of JSON Lines: (span table, span records, unknown-service resources).

    Raises Unsupported when any line needs the tolerant path; nothing is counted then.
    """
    if parsed is None:
        parsed = _parse(block, PARSE_BLOCK_BYTES)
    lines = parsed.column("resourceSpans").combine_chunks()
    if lines.null_count:
        raise Unsupported("line without resourceSpans")
    resource_spans = lines.flatten()
    scope_lists = _field(resource_spans, "scopeSpans")
    if scope_lists.null_count:
        raise Unsupported("resource without scopeSpans")
    scope_spans = scope_lists.flatten()
    if _field(scope_spans, "instrumentationLibrary").null_count < len(scope_spans):
        raise Unsupported("instrumentationLibrary")
    scope_owner = np.repeat(np.arange(len(resource_spans)), np.diff(_list_offsets(scope_lists)))
    span_lists = _field(scope_spans, "spans")
    span_counts = np.diff(_list_offsets(span_lists))
    spans = span_lists.flatten()
    n = len(spans)
    span_scope = np.repeat(np.arange(len(scope_spans)), span_counts)
    span_resource = scope_owner[span_scope]

    for tripwire in _SPAN_TRIPWIRES:
        if _field(spans, tripwire).null_count < n:
            raise Unsupported(f"snake_case {tripwire}")
    trace_id = _hex_ids(_field(spans, "traceId"), 16)
    span_id = _hex_ids(_field(spans, "spanId"), 8)
    parent = _parent_ids(_field(spans, "parentSpanId"))
    start = _times(_field(spans, "startTimeUnixNano"))
    end = _times(_field(spans, "endTimeUnixNano"))
    if n and np.any(end < start):
        raise Unsupported("end before start")
    kind = pc.fill_null(_field(spans, "kind"), 0)
    status = _field(spans, "status")
    status_code = pc.fill_null(_field(status, "code"), 0)
    if n and (
        pc.min(kind).as_py() < 0
        or pc.max(kind).as_py() > 5
        or pc.min(status_code).as_py() < 0
        or pc.max(status_code).as_py() > 2
    ):
        raise Unsupported("enum out of range")
    flags = _field(spans, "flags")
    if n and flags.null_count < n:
        if pc.min(flags).as_py() < 0 or pc.max(flags).as_py() >= 2**32:
            raise Unsupported("flags out of range")
        flags = pc.if_else(pc.equal(flags, _ZERO_I64), _NULL_INT64, flags)

    attributes, keys, texts, tags, attr_offsets = _attribute_lists(_field(spans, "attributes"))
    owners = np.repeat(np.arange(n), np.diff(attr_offsets))
    hits = _promoted_hits(keys, owners, n)

    resource_cols, unknown = _resource_columns(
        _field(resource_spans, "resource"),
        _list_offsets(lines),
        block,
        {} if resource_cache is None else resource_cache,
    )
    take_resource = pa.array(span_resource)
    scope = _field(scope_spans, "scope")
    take_scope = pa.array(span_scope)

    columns: dict[str, pa.Array] = {
        s.TRACE_ID: trace_id,
        s.SPAN_ID: span_id,
        s.PARENT_SPAN_ID: parent,
        s.NAME: pc.fill_null(_field(spans, "name"), "").dictionary_encode(),
        s.KIND: kind.cast(pa.int8()),
        s.START: pa.array(start, pa.int64()),
        s.END: pa.array(end, pa.int64()),
        s.DURATION: pa.array(end - start, pa.int64()),
        s.STATUS_CODE: status_code.cast(pa.int8()),
        s.STATUS_MESSAGE: _empty_to_null(_field(status, "message")),
        s.SCOPE_NAME: pc.take(
            _empty_to_null(_field(scope, "name")), take_scope
        ).dictionary_encode(),
        s.SCOPE_VERSION: pc.take(
            _empty_to_null(_field(scope, "version")), take_scope
        ).dictionary_encode(),
        **promoted_columns(hits, texts, tags, n),
        s.TRACE_STATE: _empty_to_null(_field(spans, "traceState")),
        s.FLAGS: flags.cast(pa.uint32()),
        s.ATTRIBUTES: attributes,
        s.EVENTS: _events(_field(spans, "events")),
        s.LINKS: _links(_field(spans, "links")),
    }
    for name, per_resource in resource_cols.items():
        columns[name] = pc.take(per_resource, take_resource)
    arrays = [columns[f.name].cast(f.type) for f in s.SPAN_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=s.SPAN_SCHEMA), n, unknown


def _resource_of(encoded: bytes | None) -> ResourceColumns:
    try:
        resource = None if encoded is None else orjson.loads(encoded)
    except orjson.JSONDecodeError:  # cannot happen: the scanner validated it
        raise Unsupported("resource") from None
    return otlp_json.resource_from_json(resource)


def _scope_of(encoded: bytes | None) -> tuple[str | None, str | None]:
    if encoded is None:
        return None, None
    try:
        scope = orjson.loads(encoded)
    except orjson.JSONDecodeError:  # cannot happen: the scanner validated it
        raise Unsupported("scope") from None
    name = scope.get("name") or None
    version = scope.get("version") or None
    if not isinstance(name, str | None) or not isinstance(version, str | None):
        raise Unsupported("scope name or version not a string")
    return name, version


NativeCache: TypeAlias = dict[bytes | None, ResourceColumns]


def native_block_to_table(
    block: Block, scanned: Flat | str | None = None, resource_cache: NativeCache | None = None
) -> tuple[pa.Table, int, int]:
    """:func:`block_to_table` through the native scanner (``tailscope.ingest._native``).

    Raises Unsupported when any line needs the tolerant path; nothing is counted then.
    """
    if _native is None:
        raise Unsupported("native scanner not built")
    if scanned is None:
        scanned = _native.scan_json(block)
    cache: NativeCache = {} if resource_cache is None else resource_cache
    return scanned_table(scanned, block, _resource_of, _scope_of, cache)


Parsed: TypeAlias = "pa.Table | Flat | str | None"
Block: TypeAlias = bytes | memoryview
"""Whole lines: bytes, or a view of a read buffer (plain files are read without copying)."""


def _try_parse(block: Block) -> Parsed:
    """Parse one block off the main thread: the native scan, else pyarrow.json (both release
    the GIL). None or a reason (str) when the block needs the tolerant path."""
    if _native is not None and USE_NATIVE:
        return _native.scan_json(block)
    try:
        return _parse(bytes(block), PARSE_BLOCK_BYTES)
    except Unsupported:
        return None


def read_document(data: bytes, log: ProblemLog) -> Iterator[pa.Table]:
    """A file holding one JSON document (usually pretty-printed): the native scanner reads it
    whole when it can, else the tolerant reader does."""
    if _native is not None and USE_NATIVE:
        scanned = _native.scan_json_document(data)
        try:
            table, records, unknown = native_block_to_table(data, scanned)
        except Unsupported:
            pass
        else:
            yield from account(log, table, records, unknown, _non_trace(scanned))
            return
    yield from otlp_json.read_document(data, log)


READ_AHEAD: Final = 2
"""Blocks parsed ahead on worker threads while the main thread assembles tables (the parse
releases the GIL, so two blocks scan on two cores)."""


def read_lines(
    blocks: Iterator[Block], log: ProblemLog, ahead: HeldLog | None = None
) -> Iterator[pa.Table]:
    """JSON Lines blocks through the fast path, each falling back to the tolerant reader.

    Up to :data:`READ_AHEAD` blocks are parsed on worker threads while the previous one is
    assembled here. ``blocks`` should report its problems to ``ahead`` (replayed into ``log``
    in file order); without it, the blocks are read one at a time.
    """
    caches = _Caches({}, {})
    line = 1
    if ahead is None:
        for block in blocks:
            parsed = _try_parse(block)
            yield from _one_block(line, block, parsed, log, caches)
            line += _newlines(block, parsed)
        return
    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="tailscope-json") as pool:
        queue: deque[tuple[Block, Future[Parsed], list[Held]]] = deque()
        tail: list[Held] = []  # problems met after the last block
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            while len(queue) < READ_AHEAD and not exhausted:
                block = next(blocks, None)
                held = ahead.take()
                if block is None:
                    exhausted = True
                    tail.extend(held)
                    return
                queue.append((block, pool.submit(_try_parse, block), held))

        refill()
        while queue:
            block, future, held = queue.popleft()
            refill()
            parsed = future.result()
            replay(held, log)
            yield from _one_block(line, block, parsed, log, caches)
            line += _newlines(block, parsed)
        replay(tail, log)


def _non_trace(parsed: Parsed) -> int:
    """Metric/log lines the native scanner skipped (the pyarrow path declines them)."""
    return int(parsed["n_non_trace"]) if isinstance(parsed, dict) else 0


def _newlines(block: Block, parsed: Parsed) -> int:
    if isinstance(parsed, dict):
        return int(parsed["n_lines"])
    return bytes(block).count(b"\n")


class _Caches(NamedTuple):
    arrow: dict[bytes, ResourceColumns]
    native: NativeCache


def _one_block(
    first_line: int,
    block: Block,
    parsed: Parsed,
    log: ProblemLog,
    caches: _Caches,
) -> Iterator[pa.Table]:
    try:
        if parsed is None or isinstance(parsed, str):
            raise Unsupported("parse")
        if isinstance(parsed, dict):
            table, records, unknown = native_block_to_table(block, parsed, caches.native)
        else:
            table, records, unknown = block_to_table(bytes(block), parsed, caches.arrow)
    except Unsupported:
        yield from otlp_json.read_lines(iter([(first_line, bytes(block))]), log)
        return
    yield from account(log, table, records, unknown, _non_trace(parsed))
