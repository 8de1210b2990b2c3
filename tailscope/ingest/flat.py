"""Assemble the span table from the column buffers of the native scanners.

The C scanners in ``tailscope/ingest/native/`` (``scan_json`` for OTLP/JSON Lines blocks,
``scan_proto`` for protobuf messages) walk the encoded input without the GIL and write plain
column buffers; this module turns those buffers into an exact ``SPAN_SCHEMA`` table, zero-copy
where Arrow allows. The scanners only accept what they can read exactly as the tolerant
per-record readers would; for anything else they return a reason (a ``str``) and the caller
reads that block the tolerant way. Tests check both paths give identical tables.

The buffers (all native-endian; see ``native/flat.h``):

* per span: ``trace_id`` (16 B), ``span_id``/``parent_id`` (8 B), ``parent_valid`` (u8),
  ``name_*``, ``status_msg_*``, ``trace_state_*`` (int32 offsets + UTF-8 data, ``*_valid`` u8),
  ``kind``/``status_code`` (i8), ``start``/``end`` (i64), ``flags`` (u32) + ``flags_valid``,
  ``span_scope`` (i32 index of the scope), ``attr_off``/``ev_off``/``ln_off`` (i32 offsets
  into the span attribute pool ``a_*``, the events and the links);
* attribute pools ``a_``/``e_``/``l_`` (span, event, link attributes): ``key_*``/``val_*``
  strings, ``tag`` (u8 :class:`~tailscope.schema.ValueType`), and doubles as ``dbl_idx`` (i64
  position) + ``dbl_val`` (f64) with an empty text, rendered here as ``repr(float)`` does;
* events: ``ev_time`` (i64), ``ev_name_*``, ``ev_attr_off``; links: ``ln_trace`` (16 B),
  ``ln_span`` (8 B), ``ln_attr_off``;
* scopes: ``scope_res`` (i32 resource index), ``scope_start``/``scope_end`` (i64 byte range of
  the encoded scope in the input, -1 when absent); resources: ``res_start``/``res_end``.
  Scopes and resources are few, so they are decoded in Python by the caller's functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tailscope import schema as s
from tailscope.ingest.columns import INT32_MAX, INT32_MIN, ResourceColumns
from tailscope.ingest.problems import ProblemLog

if TYPE_CHECKING:
    from types import ModuleType

NATIVE_SWITCH: Final = "TAILSCOPE_NATIVE"
"""Environment variable: ``0`` makes tailscope behave exactly as if the C extension had not
been built (CI runs the ingest and CLI tests that way, as a machine without a compiler would)."""


def switched_off() -> bool:
    """Whether :data:`NATIVE_SWITCH` turns the C scanners off."""
    return os.environ.get(NATIVE_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")


def _load_native() -> ModuleType | None:
    if switched_off():
        return None
    try:
        from tailscope.ingest import _native
    except ImportError:  # installed without a C compiler
        return None
    return _native


native = _load_native()
"""The native scanners (``tailscope.ingest._native``), or None when they were not built or
:data:`NATIVE_SWITCH` is ``0``: then every input is read by the tolerant Python readers."""

READER_NAMES: Final = {
    "otlp-json": ("C scanner", "Python (orjson), per record"),
    "otlp-proto": ("C scanner", "Python (upb via protobuf), per message"),
}


def reader_in_use(fmt: str) -> str:
    """Which reader reads ``fmt`` (OTLP/JSON or protobuf) in this process, for ``version``."""
    fast, reference = READER_NAMES[fmt]
    if native is not None:
        return f"{fast} (falls back to {reference} where it declines)"
    why = f"switched off by {NATIVE_SWITCH}=0" if switched_off() else "not built"
    return f"{reference} (C scanner {why})"


Flat = dict[str, bytes | int]
ResourceOf = Callable[[bytes | None], ResourceColumns]
ScopeOf = Callable[[bytes | None], tuple[str | None, str | None]]

RESOURCE_CACHE_SIZE: Final = 4096
"""Distinct encoded resources remembered per input (exports repeat the same few)."""

_INT32_MIN: Final = pa.scalar(INT32_MIN, pa.int64())
_INT32_MAX: Final = pa.scalar(INT32_MAX, pa.int64())
_NULL_INT64: Final = pa.scalar(None, pa.int64())
_NULL_STRING: Final = pa.scalar(None, pa.string())
PROMOTED_ORDER: Final = tuple(sorted(s.PROMOTED_KEYS))
"""Promoted keys in the order of the scanners' ``a_promo`` columns (native/flat.h)."""


class Unsupported(Exception):
    """This block needs the tolerant path (the reason is for debugging only)."""


def _np(flat: Flat, name: str, dtype: type[np.generic]) -> np.ndarray:
    raw = flat[name]
    assert isinstance(raw, bytes)
    return np.frombuffer(raw, dtype=dtype)


def _buf(flat: Flat, name: str) -> pa.Buffer:
    raw = flat[name]
    assert isinstance(raw, bytes)
    return pa.py_buffer(raw)


def _validity(flat: Flat, name: str) -> tuple[pa.Buffer | None, int]:
    valid = _np(flat, name, np.uint8).astype(bool)
    nulls = int(len(valid) - np.count_nonzero(valid))
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()), nulls


def _strings(flat: Flat, prefix: str, n: int, valid: str | None = None) -> pa.Array:
    bitmap, nulls = _validity(flat, valid) if valid else (None, 0)
    return pa.StringArray.from_buffers(
        n, _buf(flat, prefix + "_off"), _buf(flat, prefix + "_data"), bitmap, nulls
    )


def _fixed(flat: Flat, name: str, size: int, n: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, _buf(flat, name)])


def _primitive(flat: Flat, name: str, type_: pa.DataType, n: int) -> pa.Array:
    return pa.Array.from_buffers(type_, n, [None, _buf(flat, name)])


def _pool(flat: Flat, prefix: str) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(keys, value texts, tags) of one attribute pool, doubles rendered."""
    tags = _np(flat, prefix + "tag", np.uint8)
    n = len(tags)
    keys = pa.StringArray.from_buffers(
        n, _buf(flat, prefix + "key_off"), _buf(flat, prefix + "key_data")
    )
    texts = pa.StringArray.from_buffers(
        n, _buf(flat, prefix + "val_off"), _buf(flat, prefix + "val_data")
    )
    where = _np(flat, prefix + "dbl_idx", np.int64)
    if len(where):
        # the doubles' texts are empty: put the rendered ones in their places with one take
        # (pc.replace_with_mask is far slower on long string arrays)
        rendered = double_texts(_np(flat, prefix + "dbl_val", np.float64))
        picks = np.arange(n, dtype=np.int64)
        picks[where] = n + np.arange(len(where), dtype=np.int64)
        texts = pa.concat_arrays([texts, rendered]).take(pa.array(picks))
    return keys, texts, tags


def double_texts(values: np.ndarray) -> pa.Array:
    """Python ``repr`` of each double (float64 array, no nulls), vectorised.

    orjson prints a double as the shortest text that reads back as the same value (Ryu),
    which is what ``repr`` prints too, in the same plain notation for magnitudes in
    [1e-4, 1e16); ``tests/unit/test_ingest_fastpath.py`` checks this on half a million values.
    Zero, other magnitudes, NaN and infinities are formatted by ``repr`` itself.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return pa.array([], pa.string())
    text = np.frombuffer(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    inner = text[1:-1]  # without the brackets
    commas = np.flatnonzero(inner == ord(","))
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:n] = commas - np.arange(n - 1)
    offsets[n] = len(inner) - (n - 1)
    data = np.delete(inner, commas)
    texts = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        other = ~((magnitude >= 1e-4) & (magnitude < 1e16))
    if not other.any():
        return texts
    fixed = pa.array([repr(v) for v in values[other].tolist()], pa.string())
    return pc.replace_with_mask(texts, pa.array(other), fixed)


def _attribute_column(flat: Flat, offsets: str, prefix: str) -> pa.Array:
    keys, texts, tags = _pool(flat, prefix)
    return _attribute_list(_buf(flat, offsets), keys, texts, tags)


def _attribute_list(
    offsets: pa.Buffer, keys: pa.Array, texts: pa.Array, tags: np.ndarray
) -> pa.Array:
    items = pa.StructArray.from_arrays(
        [keys, texts, pa.array(tags, pa.uint8())], fields=list(s.ATTRIBUTE_TYPE)
    )
    n = len(offsets) // 4 - 1
    offset_array = pa.Array.from_buffers(pa.int32(), n + 1, [None, offsets])
    return pa.ListArray.from_arrays(offset_array, items, type=s.ATTRIBUTES_TYPE)


def promoted_text(texts: pa.Array, indexes: list[tuple[np.ndarray, np.ndarray]]) -> pa.Array:
    """The text of the first of several keys present (``indexes``: per key, the span's first
    attribute with it and whether there is one)."""
    result: pa.Array | None = None
    for index, found in indexes:
        column = pc.take(texts, pa.array(index, mask=~found))
        result = column if result is None else pc.coalesce(result, column)
    assert result is not None
    return result


def promoted_int(
    texts: pa.Array, tags: np.ndarray, indexes: list[tuple[np.ndarray, np.ndarray]]
) -> pa.Array:
    """int32 of the first key whose value reads as an integer (INT or STRING) in range.

    INT texts are canonical already (``-?[0-9]+``); only STRING texts need checking.
    """
    result: pa.Array | None = None
    for index, found in indexes:
        picked = pc.take(texts, pa.array(index, mask=~found))
        picked_tags = tags[np.where(found, index, 0)]
        lengths = np.asarray(pc.fill_null(pc.utf8_length(picked), 0).to_numpy(zero_copy_only=False))
        # Up to 18 digits casts to int64 safely; longer ones are outside int32 anyway (null).
        ok = found & (picked_tags == 3) & (lengths <= 18)
        strings = found & (picked_tags == 1)
        if strings.any():
            where = np.flatnonzero(strings)
            candidates = picked.take(pa.array(where))

            def matches(pattern: str, values: pa.Array = candidates) -> np.ndarray:
                hit = pc.fill_null(pc.match_substring_regex(values, pattern), False)
                return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)

            digits = matches(r"^-?[0-9]+$")
            # Python's int() also takes "+5", " 5" or "1_0": such texts go the tolerant way.
            if np.any(~digits & matches(r"^\s*[+-]?[0-9_]+\s*$")):
                raise Unsupported("integer text Python reads differently")
            ok[where] = matches(r"^-?[0-9]{1,18}$")
        numbers = pc.cast(pc.if_else(pa.array(ok), picked, _NULL_STRING), pa.int64())
        in_range = pc.and_(
            pc.greater_equal(numbers, _INT32_MIN), pc.less_equal(numbers, _INT32_MAX)
        )
        column = pc.if_else(in_range, numbers, _NULL_INT64).cast(pa.int32())
        result = column if result is None else pc.coalesce(result, column)
    assert result is not None
    return result


def promoted_columns(
    hits: dict[str, np.ndarray], texts: pa.Array, tags: np.ndarray, n: int
) -> dict[str, pa.Array]:
    """The promoted semantic-convention columns of ``n`` spans, from their attribute texts and
    type tags and the per-span index of each promoted key's first attribute (``hits``; keys
    absent from every span may be left out)."""

    def indexes(*names: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(hits[k], hits[k] >= 0) for k in names if k in hits]

    def text_col(*names: str) -> pa.Array:
        found = indexes(*names)
        if not found:
            return pa.nulls(n, pa.string()).dictionary_encode()
        return promoted_text(texts, found).dictionary_encode()

    def int_col(*names: str) -> pa.Array:
        found = indexes(*names)
        if not found:
            return pa.nulls(n, pa.int32())
        return promoted_int(texts, tags, found)

    return {
        column: int_col(*keys) if kind == "int32" else text_col(*keys)
        for column, kind, keys in s.PROMOTIONS
    }


def _slices(flat: Flat, prefix: str, raw: bytes | memoryview) -> list[bytes | None]:
    starts = _np(flat, prefix + "_start", np.int64).tolist()
    ends = _np(flat, prefix + "_end", np.int64).tolist()
    return [None if b < 0 else bytes(raw[b:e]) for b, e in zip(starts, ends, strict=True)]


def _resource_rows(
    flat: Flat,
    raw: bytes | memoryview,
    resource_of: ResourceOf,
    cache: dict[bytes | None, ResourceColumns],
) -> list[ResourceColumns]:
    rows: list[ResourceColumns] = []
    for encoded in _slices(flat, "res", raw):
        row = cache.get(encoded)
        if row is None:
            row = resource_of(encoded)
            if len(cache) < RESOURCE_CACHE_SIZE:
                cache[encoded] = row
        rows.append(row)
    return rows


def _spread(values: list[str | None], owner: np.ndarray) -> pa.Array:
    """``values[owner[i]]`` for every span, as a dictionary array (no string is copied)."""
    codes: dict[str, int] = {}
    mapping = np.array(
        [-1 if v is None else codes.setdefault(v, len(codes)) for v in values], dtype=np.int32
    )
    indices = mapping[owner] if len(mapping) else np.zeros(len(owner), dtype=np.int32)
    missing = indices < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(indices, pa.int32(), mask=missing if missing.any() else None),
        pa.array(list(codes), pa.string()),
    )


def table_from_flat(
    flat: Flat,
    raw: bytes | memoryview,
    resource_of: ResourceOf,
    scope_of: ScopeOf,
    resource_cache: dict[bytes | None, ResourceColumns],
) -> tuple[pa.Table, int]:
    """(span table, resources without service.name) of one scanned block.

    ``raw`` is the scanned input (scope and resource byte ranges point into it);
    ``resource_of``/``scope_of`` decode one encoded resource / scope (None when absent).
    Raises :class:`Unsupported` when a promoted value needs the tolerant path.
    """
    n = int(flat["n_spans"])
    resources = _resource_rows(flat, raw, resource_of, resource_cache)
    unknown = sum(r.unknown_service for r in resources)
    scopes = [scope_of(encoded) for encoded in _slices(flat, "scope", raw)]
    span_scope = _np(flat, "span_scope", np.int32)
    scope_res = _np(flat, "scope_res", np.int32)
    span_resource = scope_res[span_scope] if len(scope_res) else span_scope

    start = _np(flat, "start", np.int64)
    end = _np(flat, "end", np.int64)
    parent_bitmap, parent_nulls = _validity(flat, "parent_valid")
    flags_bitmap, flags_nulls = _validity(flat, "flags_valid")

    keys, texts, tags = _pool(flat, "a_")
    # per span and promoted key, the index of its first attribute with that key (or -1)
    promo = _np(flat, "a_promo", np.int32).reshape(n, len(PROMOTED_ORDER))
    hits = {
        key: promo[:, i].astype(np.int64)
        for i, key in enumerate(PROMOTED_ORDER)
        if n and promo[:, i].max() >= 0
    }

    def per_resource(values: list[str | None]) -> pa.Array:
        return _spread(values, span_resource)

    def per_scope(values: list[str | None]) -> pa.Array:
        return _spread(values, span_scope)

    n_events = int(flat["n_events"])
    n_links = int(flat["n_links"])
    events = pa.StructArray.from_arrays(
        [
            _primitive(flat, "ev_time", pa.int64(), n_events),
            _strings(flat, "ev_name", n_events),
            _attribute_column(flat, "ev_attr_off", "e_"),
        ],
        fields=list(s.EVENT_TYPE),
    )
    links = pa.StructArray.from_arrays(
        [
            _fixed(flat, "ln_trace", 16, n_links),
            _fixed(flat, "ln_span", 8, n_links),
            _attribute_column(flat, "ln_attr_off", "l_"),
        ],
        fields=list(s.LINK_TYPE),
    )

    columns: dict[str, pa.Array] = {
        s.TRACE_ID: _fixed(flat, "trace_id", 16, n),
        s.SPAN_ID: _fixed(flat, "span_id", 8, n),
        s.PARENT_SPAN_ID: pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(8), n, [parent_bitmap, _buf(flat, "parent_id")], null_count=parent_nulls
        ),
        s.NAME: _strings(flat, "name", n).dictionary_encode(),
        s.KIND: _primitive(flat, "kind", pa.int8(), n),
        s.START: pa.array(start, pa.int64()),
        s.END: pa.array(end, pa.int64()),
        s.DURATION: pa.array(end - start, pa.int64()),
        s.STATUS_CODE: _primitive(flat, "status_code", pa.int8(), n),
        s.STATUS_MESSAGE: _strings(flat, "status_msg", n, "status_msg_valid"),
        s.SERVICE: per_resource([r.service for r in resources]),
        s.INSTANCE: per_resource([r.instance for r in resources]),
        s.HOST: per_resource([r.host for r in resources]),
        s.LANGUAGE: per_resource([r.language for r in resources]),
        s.RUNTIME_NAME: per_resource([r.runtime_name for r in resources]),
        s.RUNTIME_VERSION: per_resource([r.runtime_version for r in resources]),
        s.SCOPE_NAME: per_scope([name for name, _ in scopes]),
        s.SCOPE_VERSION: per_scope([version for _, version in scopes]),
        **promoted_columns(hits, texts, tags, n),
        s.TRACE_STATE: _strings(flat, "trace_state", n, "trace_state_valid"),
        s.FLAGS: pa.Array.from_buffers(
            pa.uint32(), n, [flags_bitmap, _buf(flat, "flags")], null_count=flags_nulls
        ),
        s.ATTRIBUTES: _attribute_list(_buf(flat, "attr_off"), keys, texts, tags),
        s.RESOURCE_ATTRIBUTES: per_resource([r.attributes_json for r in resources]),
        s.EVENTS: pa.ListArray.from_arrays(
            _primitive(flat, "ev_off", pa.int32(), n + 1), events, type=s.EVENTS_TYPE
        ),
        s.LINKS: pa.ListArray.from_arrays(
            _primitive(flat, "ln_off", pa.int32(), n + 1), links, type=s.LINKS_TYPE
        ),
    }
    arrays = [
        columns[f.name] if columns[f.name].type == f.type else columns[f.name].cast(f.type)
        for f in s.SPAN_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=s.SPAN_SCHEMA), unknown


def scanned_table(
    scanned: Flat | str,
    raw: bytes | memoryview,
    resource_of: ResourceOf,
    scope_of: ScopeOf,
    resource_cache: dict[bytes | None, ResourceColumns],
) -> tuple[pa.Table, int, int]:
    """(span table, span records, resources without service.name) of what a scanner returned
    for ``raw``; raises :class:`Unsupported` when it declined (a ``str`` reason)."""
    if isinstance(scanned, str):
        raise Unsupported(scanned)
    table, unknown = table_from_flat(scanned, raw, resource_of, scope_of, resource_cache)
    return table, int(scanned["n_spans"]), unknown


def account(
    log: ProblemLog, table: pa.Table, records: int, unknown: int, non_trace: int = 0
) -> Iterator[pa.Table]:
    """Count what a fast path read (nothing is counted before it succeeds) and pass the table
    on when it has rows."""
    log.stats.records += records
    log.stats.unknown_service_resources += unknown
    log.stats.non_trace_lines += non_trace
    if table.num_rows:
        yield table
