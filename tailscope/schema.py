"""The span table: one Arrow schema, one row per span. The contract between ingest and analysis.

Every reader (OTLP/JSON, OTLP protobuf, Jaeger, Zipkin, Parquet/Arrow written by ``convert``)
produces record batches of exactly :data:`SPAN_SCHEMA`; every analysis reads only these columns,
by the names defined here. ``docs/schema.md`` documents each field and why its type was chosen.

Conventions
-----------
* Times are integer Unix nanoseconds (``int64``: good until the year 2262; OTLP's ``fixed64``
  values above ``2**63`` are rejected as bad records rather than wrapped).
* Ids are raw bytes: ``trace_id`` 16 bytes, ``span_id``/``parent_span_id`` 8 bytes. Shorter ids
  (64-bit Zipkin/Jaeger trace ids, ids with dropped leading zeros) are left-padded with zero bytes.
  Outputs always print them as lowercase hex.
* Repeated strings (names, services, hosts, attribute keys of resources) are dictionary-encoded:
  a million spans of ten services store ten strings, not a million.
* ``kind`` and ``status_code`` use the OTLP enum numbers (see :data:`SpanKind`, :data:`StatusCode`).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, Literal

import pyarrow as pa


class SpanKind(IntEnum):
    """OTLP ``Span.SpanKind`` numbers."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    """OTLP ``Status.StatusCode`` numbers."""

    UNSET = 0
    OK = 1
    ERROR = 2


class ValueType(IntEnum):
    """Type tag of an attribute value (the OTLP ``AnyValue`` variant) in :data:`ATTRIBUTE_TYPE`.

    How ``value`` is written for each: STRING as is; BOOL ``true``/``false``; INT decimal;
    DOUBLE Python ``repr`` (``nan``, ``inf``, ``-inf`` included); BYTES base64;
    ARRAY and KVLIST the compact OTLP/JSON text of the whole ``AnyValue``
    (e.g. ``{"arrayValue":{"values":[{"intValue":"1"}]}}``), so nothing is lost.
    EMPTY is an ``AnyValue`` with no variant set (``value`` is the empty string).
    """

    EMPTY = 0
    STRING = 1
    BOOL = 2
    INT = 3
    DOUBLE = 4
    BYTES = 5
    ARRAY = 6
    KVLIST = 7


UNKNOWN_SERVICE: Final = "unknown_service"
"""Service name given to a resource without ``service.name``, as the OpenTelemetry SDKs do."""

DURATION_MISSING_KEY: Final = "zipkin.duration_missing"
"""Attribute (BOOL ``true``) of a span whose export had no duration (Zipkin): it is kept with
``end = start`` so its children keep their parent, but its 0 ns is not a latency, so latency
percentiles and baselines leave it out."""

# --- column names -------------------------------------------------------------------------
TRACE_ID: Final = "trace_id"
SPAN_ID: Final = "span_id"
PARENT_SPAN_ID: Final = "parent_span_id"
NAME: Final = "name"
KIND: Final = "kind"
START: Final = "start_unix_nano"
END: Final = "end_unix_nano"
DURATION: Final = "duration_ns"
STATUS_CODE: Final = "status_code"
STATUS_MESSAGE: Final = "status_message"
SERVICE: Final = "service_name"
INSTANCE: Final = "service_instance"
HOST: Final = "host_name"
LANGUAGE: Final = "sdk_language"
RUNTIME_NAME: Final = "runtime_name"
RUNTIME_VERSION: Final = "runtime_version"
SCOPE_NAME: Final = "scope_name"
SCOPE_VERSION: Final = "scope_version"
HTTP_STATUS_CODE: Final = "http_status_code"
RPC_GRPC_STATUS_CODE: Final = "rpc_grpc_status_code"
RPC_RESPONSE_STATUS_CODE: Final = "rpc_response_status_code"
RPC_METHOD: Final = "rpc_method"
RPC_SYSTEM: Final = "rpc_system"
SERVER_ADDRESS: Final = "server_address"
ERROR_TYPE: Final = "error_type"
HTTP_RESEND_COUNT: Final = "http_resend_count"
DB_SYSTEM: Final = "db_system"
TRACE_STATE: Final = "trace_state"
FLAGS: Final = "flags"
ATTRIBUTES: Final = "attributes"
RESOURCE_ATTRIBUTES: Final = "resource_attributes"
EVENTS: Final = "events"
LINKS: Final = "links"

# --- nested types -------------------------------------------------------------------------
_DICT_STR = pa.dictionary(pa.int32(), pa.string())

ATTRIBUTE_TYPE: Final = pa.struct(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("type", pa.uint8(), nullable=False),
    ]
)
"""One attribute: key, value rendered as text, and its :class:`ValueType` tag."""

ATTRIBUTES_TYPE: Final = pa.list_(pa.field("item", ATTRIBUTE_TYPE, nullable=False))

EVENT_TYPE: Final = pa.struct(
    [
        pa.field("time_unix_nano", pa.int64(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("attributes", ATTRIBUTES_TYPE, nullable=False),
    ]
)
EVENTS_TYPE: Final = pa.list_(pa.field("item", EVENT_TYPE, nullable=False))

LINK_TYPE: Final = pa.struct(
    [
        pa.field("trace_id", pa.binary(16), nullable=False),
        pa.field("span_id", pa.binary(8), nullable=False),
        pa.field("attributes", ATTRIBUTES_TYPE, nullable=False),
    ]
)
LINKS_TYPE: Final = pa.list_(pa.field("item", LINK_TYPE, nullable=False))

SPAN_SCHEMA: Final = pa.schema(
    [
        pa.field(TRACE_ID, pa.binary(16), nullable=False),
        pa.field(SPAN_ID, pa.binary(8), nullable=False),
        pa.field(PARENT_SPAN_ID, pa.binary(8), nullable=True),
        pa.field(NAME, _DICT_STR, nullable=False),
        pa.field(KIND, pa.int8(), nullable=False),
        pa.field(START, pa.int64(), nullable=False),
        pa.field(END, pa.int64(), nullable=False),
        pa.field(DURATION, pa.int64(), nullable=False),
        pa.field(STATUS_CODE, pa.int8(), nullable=False),
        pa.field(STATUS_MESSAGE, pa.string(), nullable=True),
        pa.field(SERVICE, _DICT_STR, nullable=False),
        pa.field(INSTANCE, _DICT_STR, nullable=False),
        pa.field(HOST, _DICT_STR, nullable=True),
        pa.field(LANGUAGE, _DICT_STR, nullable=True),
        pa.field(RUNTIME_NAME, _DICT_STR, nullable=True),
        pa.field(RUNTIME_VERSION, _DICT_STR, nullable=True),
        pa.field(SCOPE_NAME, _DICT_STR, nullable=True),
        pa.field(SCOPE_VERSION, _DICT_STR, nullable=True),
        pa.field(HTTP_STATUS_CODE, pa.int32(), nullable=True),
        pa.field(RPC_GRPC_STATUS_CODE, pa.int32(), nullable=True),
        pa.field(RPC_RESPONSE_STATUS_CODE, _DICT_STR, nullable=True),
        pa.field(RPC_METHOD, _DICT_STR, nullable=True),
        pa.field(RPC_SYSTEM, _DICT_STR, nullable=True),
        pa.field(SERVER_ADDRESS, _DICT_STR, nullable=True),
        pa.field(ERROR_TYPE, _DICT_STR, nullable=True),
        pa.field(HTTP_RESEND_COUNT, pa.int32(), nullable=True),
        pa.field(DB_SYSTEM, _DICT_STR, nullable=True),
        pa.field(TRACE_STATE, pa.string(), nullable=True),
        pa.field(FLAGS, pa.uint32(), nullable=True),
        pa.field(ATTRIBUTES, ATTRIBUTES_TYPE, nullable=False),
        pa.field(RESOURCE_ATTRIBUTES, _DICT_STR, nullable=False),
        pa.field(EVENTS, EVENTS_TYPE, nullable=False),
        pa.field(LINKS, LINKS_TYPE, nullable=False),
    ],
    metadata={b"tailscope.schema_version": b"1"},
)
"""The span table schema. See the module docstring and ``docs/schema.md``.

Promoted semantic-convention columns (``http_status_code`` ... ``db_system``) are *copies* for
fast typed access; ``attributes`` keeps every span attribute, promoted or not, so nothing is lost.
``http_status_code`` is ``http.response.status_code``, else the legacy ``http.status_code``;
``rpc_system`` is ``rpc.system``, else ``rpc.system.name``. ``resource_attributes`` is the
resource's attributes as one compact OTLP/JSON object text ``{"key": AnyValue, ...}``,
dictionary-encoded so each distinct resource is stored once.
``service_instance`` is ``service.instance.id``, else ``host.name`` + ``:`` + ``process.pid``,
else ``host.name``, else the service name.
"""

PROMOTIONS: Final[tuple[tuple[str, Literal["text", "int32"], tuple[str, ...]], ...]] = (
    (HTTP_STATUS_CODE, "int32", ("http.response.status_code", "http.status_code")),
    (RPC_GRPC_STATUS_CODE, "int32", ("rpc.grpc.status_code",)),
    (RPC_RESPONSE_STATUS_CODE, "text", ("rpc.response.status_code",)),
    (RPC_METHOD, "text", ("rpc.method",)),
    (RPC_SYSTEM, "text", ("rpc.system", "rpc.system.name")),
    (SERVER_ADDRESS, "text", ("server.address",)),
    (ERROR_TYPE, "text", ("error.type",)),
    (HTTP_RESEND_COUNT, "int32", ("http.request.resend_count",)),
    (DB_SYSTEM, "text", ("db.system", "db.system.name")),
)
"""The one promotions table: (column, type, span attribute keys in order of precedence).

A ``text`` column copies the first key present; an ``int32`` column the first key whose value
reads as an integer (INT, or a STRING of digits) in int32 range. Every reader uses this table;
the C scanners' list (``ingest/native/flat.h``) is checked against it by a test."""

PROMOTED_KEYS: Final = frozenset(key for _, _, keys in PROMOTIONS for key in keys)
"""Every span attribute key that feeds a promoted column."""

SCHEMA_VERSION: Final = 1

COLUMNS: Final[tuple[str, ...]] = tuple(SPAN_SCHEMA.names)


def empty_table() -> pa.Table:
    """A span table with no rows."""
    return SPAN_SCHEMA.empty_table()


def conform(table: pa.Table) -> pa.Table:
    """Cast ``table`` to :data:`SPAN_SCHEMA` (column order and types), or raise ``ValueError``.

    Used when reading back Parquet/Arrow files, whose dictionary index widths may differ.
    """
    missing = [n for n in COLUMNS if n not in table.column_names]
    if missing:
        raise ValueError(f"not a tailscope span table: missing columns {', '.join(missing)}")
    return table.select(list(COLUMNS)).cast(SPAN_SCHEMA)
