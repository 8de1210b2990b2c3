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
from dataclasses import dataclass
from typing import Final

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


class SpanColumns:
    """Append-only column lists for one record batch of spans."""

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
        self.attr_offsets: list[int] = [0]
        self.attr_keys: list[str] = []
        self.attr_values: list[str] = []
        self.attr_types: list[int] = []
        self.event_offsets: list[int] = [0]
        self.event_time: list[int] = []
        self.event_name: list[str] = []
        self.event_attr_offsets: list[int] = [0]
        self.event_attr_keys: list[str] = []
        self.event_attr_values: list[str] = []
        self.event_attr_types: list[int] = []
        self.link_offsets: list[int] = [0]
        self.link_trace_id: list[bytes] = []
        self.link_span_id: list[bytes] = []
        self.link_attr_offsets: list[int] = [0]
        self.link_attr_keys: list[str] = []
        self.link_attr_values: list[str] = []
        self.link_attr_types: list[int] = []

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
        keys, values, types = attributes
        self.attr_keys.extend(keys)
        self.attr_values.extend(values)
        self.attr_types.extend(types)
        self.attr_offsets.append(len(self.attr_keys))
        for when, event_name, (ek, ev, et) in events:
            self.event_time.append(when)
            self.event_name.append(event_name)
            self.event_attr_keys.extend(ek)
            self.event_attr_values.extend(ev)
            self.event_attr_types.extend(et)
            self.event_attr_offsets.append(len(self.event_attr_keys))
        self.event_offsets.append(len(self.event_time))
        for link_trace, link_span, (lk, lv, lt) in links:
            self.link_trace_id.append(link_trace)
            self.link_span_id.append(link_span)
            self.link_attr_keys.extend(lk)
            self.link_attr_values.extend(lv)
            self.link_attr_types.extend(lt)
            self.link_attr_offsets.append(len(self.link_attr_keys))
        self.link_offsets.append(len(self.link_trace_id))

    def to_table(self) -> pa.Table:
        """One record batch of exactly ``SPAN_SCHEMA`` (as a single-chunk table)."""
        n = len(self.trace_id)
        resources = self.resource

        def dict_col(values: list[str | None]) -> pa.Array:
            return pa.array(values, pa.string()).dictionary_encode()

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

        start = pa.array(self.start, pa.int64())
        end = pa.array(self.end, pa.int64())
        columns: dict[str, pa.Array] = {
            s.TRACE_ID: pa.array(self.trace_id, pa.binary(16)),
            s.SPAN_ID: pa.array(self.span_id, pa.binary(8)),
            s.PARENT_SPAN_ID: pa.array(self.parent_span_id, pa.binary(8)),
            s.NAME: dict_col(self.name),  # type: ignore[arg-type]
            s.KIND: pa.array(self.kind, pa.int8()),
            s.START: start,
            s.END: end,
            s.DURATION: pa.array([e - b for b, e in zip(self.start, self.end, strict=True)]),
            s.STATUS_CODE: pa.array(self.status_code, pa.int8()),
            s.STATUS_MESSAGE: pa.array(self.status_message, pa.string()),
            s.SERVICE: dict_col([r.service for r in resources]),
            s.INSTANCE: dict_col([r.instance for r in resources]),
            s.HOST: dict_col([r.host for r in resources]),
            s.LANGUAGE: dict_col([r.language for r in resources]),
            s.RUNTIME_NAME: dict_col([r.runtime_name for r in resources]),
            s.RUNTIME_VERSION: dict_col([r.runtime_version for r in resources]),
            s.SCOPE_NAME: dict_col(self.scope_name),
            s.SCOPE_VERSION: dict_col(self.scope_version),
            **{
                column: pa.array(promoted_int(*keys), pa.int32())
                if kind == "int32"
                else dict_col(promoted_text(*keys))
                for column, kind, keys in s.PROMOTIONS
            },
            s.TRACE_STATE: pa.array(self.trace_state, pa.string()),
            s.FLAGS: pa.array(self.flags, pa.uint32()),
            s.ATTRIBUTES: _attributes_array(
                self.attr_offsets, self.attr_keys, self.attr_values, self.attr_types
            ),
            s.RESOURCE_ATTRIBUTES: dict_col([r.attributes_json for r in resources]),
        }
        event_struct = pa.StructArray.from_arrays(
            [
                pa.array(self.event_time, pa.int64()),
                pa.array(self.event_name, pa.string()),
                _attributes_array(
                    self.event_attr_offsets,
                    self.event_attr_keys,
                    self.event_attr_values,
                    self.event_attr_types,
                ),
            ],
            fields=list(s.EVENT_TYPE),
        )
        columns[s.EVENTS] = pa.ListArray.from_arrays(
            pa.array(self.event_offsets, pa.int32()), event_struct, type=s.EVENTS_TYPE
        )
        link_struct = pa.StructArray.from_arrays(
            [
                pa.array(self.link_trace_id, pa.binary(16)),
                pa.array(self.link_span_id, pa.binary(8)),
                _attributes_array(
                    self.link_attr_offsets,
                    self.link_attr_keys,
                    self.link_attr_values,
                    self.link_attr_types,
                ),
            ],
            fields=list(s.LINK_TYPE),
        )
        columns[s.LINKS] = pa.ListArray.from_arrays(
            pa.array(self.link_offsets, pa.int32()), link_struct, type=s.LINKS_TYPE
        )
        arrays = [columns[f.name] for f in s.SPAN_SCHEMA]
        table = pa.Table.from_arrays(arrays, schema=s.SPAN_SCHEMA)
        assert table.num_rows == n
        return table


def _attributes_array(
    offsets: list[int], keys: list[str], values: list[str], types: list[int]
) -> pa.Array:
    items = pa.StructArray.from_arrays(
        [pa.array(keys, pa.string()), pa.array(values, pa.string()), pa.array(types, pa.uint8())],
        fields=list(s.ATTRIBUTE_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, type=s.ATTRIBUTES_TYPE)
