"""Columnar span builder shared by the tolerant OTLP/JSON path and the protobuf reader.

Readers append one span at a time into flat Python lists (ids, times, and attribute keys/values
with offsets) and :meth:`SpanColumns.to_table` turns them into one record batch of exactly
:data:`~tailscope.schema.SPAN_SCHEMA` with a handful of ``pa.array`` calls. Flat lists plus
offsets avoid building a Python dict per attribute, which is what makes a per-record path
tolerable on large inputs.

It also holds what both encodings share: id decoding, enum names, the promotion of
semantic-convention attributes to typed columns and the resource-level columns.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from tailscope import schema as s
from tailscope.schema import ValueType

INT64_MAX: Final = 2**63 - 1
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")

SPAN_KINDS: Final[dict[str, int]] = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_CODES: Final[dict[str, int]] = {
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}


class BadRecord(Exception):
    """One span (or line) cannot be read. ``reason_class`` is the counter key, ``detail`` the
    human-readable one-line reason."""

    def __init__(self, reason_class: str, detail: str | None = None) -> None:
        super().__init__(detail or reason_class)
        self.reason_class = reason_class
        self.detail = detail or reason_class


def decode_id(text: object, size: int) -> bytes | None:
    """Decode an OTLP/JSON id of ``size`` bytes written as hex (spec, any case, leading zeros
    possibly dropped) or base64 (ProtoJSON, as ``json_format`` writes). None when it is neither.

    Hex wins when the text is all hex digits and not longer than ``2 * size``: padded base64 of
    8 or 16 bytes always ends in ``=``, so the two cannot be confused for real ids.
    """
    if not isinstance(text, str):
        return None
    n = len(text)
    if 0 < n <= 2 * size and _HEX_DIGITS.issuperset(text):
        if n % 2:
            text = "0" + text
        return bytes.fromhex(text).rjust(size, b"\x00")
    if n in (4 * ((size + 2) // 3), (4 * size + 2) // 3):
        padded = text + "=" * (-n % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            try:
                raw = base64.urlsafe_b64decode(padded)
            except (binascii.Error, ValueError):
                return None
        if len(raw) == size:
            return raw
    return None


def parse_enum(value: object, names: dict[str, int], what: str) -> int:
    """An OTLP enum given as a number, a digit string, or its name; missing is 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise BadRecord(f"bad {what}", f"bad {what}: {value!r}")
    if isinstance(value, int):
        if 0 <= value <= max(names.values()):
            return value
        raise BadRecord(f"unknown {what}", f"unknown {what}: {value}")
    if isinstance(value, str):
        if value in names:
            return names[value]
        if value.isdigit() and int(value) <= max(names.values()):
            return int(value)
        raise BadRecord(f"unknown {what}", f"unknown {what}: {value[:60]!r}")
    raise BadRecord(f"bad {what}", f"bad {what}: {type(value).__name__}")


def parse_time(value: object, what: str) -> int:
    """A ``fixed64`` nanosecond timestamp given as a number or a decimal string."""
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            raise BadRecord(f"bad {what}", f"bad {what}: {value[:40]!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif value is None:
        raise BadRecord(f"missing {what}")
    else:
        raise BadRecord(f"bad {what}", f"bad {what}: {value!r}")
    if number < 0 or number > INT64_MAX:
        raise BadRecord(f"bad {what}", f"{what} out of range: {number}")
    return number


_MISS: Final[tuple[None, int]] = (None, 0)


def _as_int32(text: str, type_tag: int) -> int | None:
    if type_tag not in (ValueType.INT, ValueType.STRING):
        return None
    try:
        number = int(text)
    except ValueError:
        return None
    return number if INT32_MIN <= number <= INT32_MAX else None


@dataclass(frozen=True, slots=True)
class ResourceColumns:
    """The per-span columns that come from the resource: computed once per resource."""

    service: str
    instance: str
    host: str | None
    language: str | None
    runtime_name: str | None
    runtime_version: str | None
    attributes_json: str
    unknown_service: bool


def resource_columns(attrs: dict[str, tuple[str, int]], attributes_json: str) -> ResourceColumns:
    """Derive service, instance, host and runtime from resource attributes (key → (text, type),
    first occurrence of a repeated key) as documented in :mod:`tailscope.schema`. A missing,
    empty or non-string ``service.name`` gives ``unknown_service``."""

    def text(key: str) -> str | None:
        found = attrs.get(key)
        if found is None or found[1] == ValueType.EMPTY:
            return None
        return found[0]

    # service.name is a string by definition; anything else names no service.
    named = attrs.get("service.name")
    service = named[0] if named is not None and named[1] == ValueType.STRING else None
    unknown = service is None or service == ""
    if unknown:
        service = s.UNKNOWN_SERVICE
    assert service is not None
    host = text("host.name")
    pid = text("process.pid")
    instance = text("service.instance.id")
    if not instance:
        if host and pid:
            instance = f"{host}:{pid}"
        elif host:
            instance = host
        else:
            instance = service
    return ResourceColumns(
        service=service,
        instance=instance,
        host=host,
        language=text("telemetry.sdk.language"),
        runtime_name=text("process.runtime.name"),
        runtime_version=text("process.runtime.version"),
        attributes_json=attributes_json,
        unknown_service=unknown,
    )


PROMOTED_KEYS: Final = s.PROMOTED_KEYS
"""Span attribute keys copied into typed columns (see :mod:`tailscope.schema`)."""


AttributeRows = tuple[list[str], list[str], list[int]]
"""One attribute list as (keys, value texts, ValueType tags)."""
EventRow = tuple[int, str, AttributeRows]
"""(time ns, name, attributes) of one span event."""
LinkRow = tuple[bytes, bytes, AttributeRows]
"""(trace id, span id, attributes) of one span link."""


class AttributeLists:
    """Flat builder of one ``list<struct<key, value, type>>`` column (span, event or link
    attributes): three flat lists plus offsets, no per-attribute dict."""

    __slots__ = ("keys", "offsets", "types", "values")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.keys: list[str] = []
        self.values: list[str] = []
        self.types: list[int] = []

    def append(self, attributes: AttributeRows) -> None:
        """One list, given as (keys, value texts, ValueType tags)."""
        keys, values, types = attributes
        self.keys.extend(keys)
        self.values.extend(values)
        self.types.extend(types)
        self.offsets.append(len(self.keys))

    def append_items(self, items: Iterable[tuple[str, str, int]]) -> None:
        """One list, given as (key, value text, ValueType tag) items."""
        for key, value, tag in items:
            self.keys.append(key)
            self.values.append(value)
            self.types.append(tag)
        self.offsets.append(len(self.keys))

    def build(self) -> pa.Array:
        items = pa.StructArray.from_arrays(
            [
                pa.array(self.keys, pa.string()),
                pa.array(self.values, pa.string()),
                pa.array(self.types, pa.uint8()),
            ],
            fields=list(s.ATTRIBUTE_TYPE),
        )
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), items, type=s.ATTRIBUTES_TYPE
        )


class EventLists:
    """Flat builder of the ``events`` column."""

    __slots__ = ("attributes", "names", "offsets", "times")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.times: list[int] = []
        self.names: list[str] = []
        self.attributes = AttributeLists()

    def close(self) -> None:
        """End the current span's list."""
        self.offsets.append(len(self.times))

    def build(self) -> pa.Array:
        items = pa.StructArray.from_arrays(
            [
                pa.array(self.times, pa.int64()),
                pa.array(self.names, pa.string()),
                self.attributes.build(),
            ],
            fields=list(s.EVENT_TYPE),
        )
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), items, type=s.EVENTS_TYPE
        )


class LinkLists:
    """Flat builder of the ``links`` column."""

    __slots__ = ("attributes", "offsets", "span_ids", "trace_ids")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.trace_ids: list[bytes] = []
        self.span_ids: list[bytes] = []
        self.attributes = AttributeLists()

    def close(self) -> None:
        """End the current span's list."""
        self.offsets.append(len(self.trace_ids))

    def build(self) -> pa.Array:
        items = pa.StructArray.from_arrays(
            [
                pa.array(self.trace_ids, pa.binary(16)),
                pa.array(self.span_ids, pa.binary(8)),
                self.attributes.build(),
            ],
            fields=list(s.LINK_TYPE),
        )
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()), items, type=s.LINKS_TYPE
        )


def build_table(columns: Mapping[str, pa.Array | Sequence[Any]]) -> pa.Table:
    """The one Python span-table builder: a :data:`~tailscope.schema.SPAN_SCHEMA` table from
    every column, each an Arrow array or a list of Python values of that column's type
    (nested columns come from :class:`AttributeLists`, :class:`EventLists`, :class:`LinkLists`).
    """
    arrays = []
    for f in s.SPAN_SCHEMA:
        values = columns[f.name]
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=f.type)
        elif values.type != f.type:
            values = values.cast(f.type)
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=s.SPAN_SCHEMA)


class SpanColumns:
    """Append-only column lists for one record batch of spans (the OTLP reference readers)."""

    def __init__(self) -> None:
        self.trace_id: list[bytes] = []
        self.span_id: list[bytes] = []
        self.parent_span_id: list[bytes | None] = []
        self.name: list[str] = []
        self.kind: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.status_code: list[int] = []
        self.status_message: list[str | None] = []
        self.resource: list[ResourceColumns] = []
        self.scope_name: list[str | None] = []
        self.scope_version: list[str | None] = []
        self.promoted: list[dict[str, tuple[str, int]] | None] = []
        self.trace_state: list[str | None] = []
        self.flags: list[int | None] = []
        self.attributes = AttributeLists()
        self.events = EventLists()
        self.links = LinkLists()

    def __len__(self) -> int:
        return len(self.trace_id)

    def append_span(
        self,
        *,
        ids: tuple[bytes, bytes, bytes | None],
        name: str,
        kind: int,
        start: int,
        end: int,
        status: tuple[int, str | None],
        resource: ResourceColumns,
        scope: tuple[str | None, str | None],
        trace_state: str | None,
        flags: int | None,
        attributes: AttributeRows,
        promoted: dict[str, tuple[str, int]] | None,
        events: list[EventRow],
        links: list[LinkRow],
    ) -> None:
        """Append one fully parsed span (readers parse everything first, so a bad span leaves
        no trace). ``ids`` = (trace id, span id, parent span id or None)."""
        self.trace_id.append(ids[0])
        self.span_id.append(ids[1])
        self.parent_span_id.append(ids[2])
        self.name.append(name)
        self.kind.append(kind)
        self.start.append(start)
        self.end.append(end)
        self.status_code.append(status[0])
        self.status_message.append(status[1])
        self.resource.append(resource)
        self.scope_name.append(scope[0])
        self.scope_version.append(scope[1])
        self.promoted.append(promoted)
        self.trace_state.append(trace_state)
        self.flags.append(flags)
        self.attributes.append(attributes)
        if events:
            for when, event_name, event_attributes in events:
                self.events.times.append(when)
                self.events.names.append(event_name)
                self.events.attributes.append(event_attributes)
        self.events.close()
        if links:
            for link_trace, link_span, link_attributes in links:
                self.links.trace_ids.append(link_trace)
                self.links.span_ids.append(link_span)
                self.links.attributes.append(link_attributes)
        self.links.close()

    def to_table(self) -> pa.Table:
        """One record batch of exactly ``SPAN_SCHEMA`` (as a single-chunk table)."""
        resources = self.resource
        promoted = self.promoted

        def promoted_text(*keys: str) -> list[str | None]:
            # (text, type) hits are non-empty tuples, so ``or`` falls through only on a miss.
            if len(keys) == 1:
                (k,) = keys
                return [(f.get(k) or _MISS)[0] if f else None for f in promoted]
            k1, k2 = keys
            return [(f.get(k1) or f.get(k2) or _MISS)[0] if f else None for f in promoted]

        def first_int(found: dict[str, tuple[str, int]], keys: tuple[str, ...]) -> int | None:
            for key in keys:
                hit = found.get(key)
                if hit is not None:
                    value = _as_int32(*hit)
                    if value is not None:
                        return value
            return None

        def promoted_int(*keys: str) -> list[int | None]:
            return [first_int(f, keys) if f else None for f in promoted]

        return build_table(
            {
                s.TRACE_ID: self.trace_id,
                s.SPAN_ID: self.span_id,
                s.PARENT_SPAN_ID: self.parent_span_id,
                s.NAME: self.name,
                s.KIND: self.kind,
                s.START: self.start,
                s.END: self.end,
                s.DURATION: [e - b for b, e in zip(self.start, self.end, strict=True)],
                s.STATUS_CODE: self.status_code,
                s.STATUS_MESSAGE: self.status_message,
                s.SERVICE: [r.service for r in resources],
                s.INSTANCE: [r.instance for r in resources],
                s.HOST: [r.host for r in resources],
                s.LANGUAGE: [r.language for r in resources],
                s.RUNTIME_NAME: [r.runtime_name for r in resources],
                s.RUNTIME_VERSION: [r.runtime_version for r in resources],
                s.SCOPE_NAME: self.scope_name,
                s.SCOPE_VERSION: self.scope_version,
                **{
                    column: promoted_int(*keys) if kind == "int32" else promoted_text(*keys)
                    for column, kind, keys in s.PROMOTIONS
                },
                s.TRACE_STATE: self.trace_state,
                s.FLAGS: self.flags,
                s.ATTRIBUTES: self.attributes.build(),
                s.RESOURCE_ATTRIBUTES: [r.attributes_json for r in resources],
                s.EVENTS: self.events.build(),
                s.LINKS: self.links.build(),
            }
        )
