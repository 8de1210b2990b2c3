"""Format detection by content.

``sniff(head)`` looks at the first 64 KiB of decompressed content and names the format (a key
of :func:`tailscope.ingest.readers.get_reader`), or raises :class:`NotATraceExport` with a short
description of what the bytes look like instead (CSV, PNG, a JSON object without
``resourceSpans`` ...). File names are never trusted. Jaeger and Zipkin JSON are recognised by
their modules' own ``sniff(head) -> bool``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    pass

PARQUET_MAGIC: Final = b"PAR1"
ARROW_FILE_MAGIC: Final = b"ARROW1"
ARROW_STREAM_MAGIC: Final = b"\xff\xff\xff\xff"
_OTLP_KEYS: Final = re.compile(rb'"(resource_?[sS]pans|resource_?[mM]etrics|resource_?[lL]ogs)"')

_LOOKS_LIKE: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\x7fELF", "an ELF executable"),
)


class NotATraceExport(Exception):
    """The content is not any trace format we read; the message says what it looks like."""


def strip_bom(head: bytes) -> bytes:
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it) of the protobuf varint at ``data[pos]``; None when cut or
    overlong."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def proto_framing(head: bytes, size: int | None) -> str | None:
    """``"single"`` for one TracesData message, ``"framed"`` for the collector file exporter's
    4-byte big-endian length prefixes, None when it is not OTLP protobuf.

    Both start with field 1 (``resource_spans``, wire type 2: byte 0x0A); a framed file has it
    after the 4-byte length.
    """
    single = False
    if head[:1] == b"\x0a":
        parsed = read_varint(head, 1)
        if parsed is not None:
            length, after = parsed
            single = size is None or after + length <= size
    if len(head) >= 5 and head[4] == 0x0A:
        frame = int.from_bytes(head[:4], "big")
        # A first frame whose length starts with byte 0x0A is >= 160 MiB; far likelier, this
        # is one big message whose first resource_spans has a 2- or 3-byte length.
        if frame > 0 and (size is None or frame + 4 <= size) and not single:
            return "framed"
    return "single" if single else None


def _describe_text(text: str) -> str:
    first = text.lstrip().split("\n", 1)[0][:80]
    if first.startswith(("{", "[")):
        return "JSON"
    if first.count(",") >= 2 or first.count("\t") >= 2:
        return "CSV/TSV text"
    if first.startswith("<"):
        return "XML/HTML"
    if first.startswith("#"):
        return "Markdown text"
    return "plain text"


def describe(head: bytes) -> str:
    """A few words on what non-trace content looks like, for the error message."""
    for magic, what in _LOOKS_LIKE:
        if head.startswith(magic):
            return what
    try:
        text = strip_bom(head).decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text or any(ord(c) < 0x20 and c not in "\t\r\n" for c in text[:4096]):
        return f"binary data starting {head[:8].hex(' ')}"
    return _describe_text(text)


def sniff(head: bytes, size: int | None) -> str:
    """Name the format of content starting with ``head``: ``otlp-json``, ``otlp-proto``,
    ``parquet``, ``arrow``, ``jaeger`` or ``zipkin``. Raises NotATraceExport otherwise."""
    if not head.strip():
        raise NotATraceExport("empty input")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith((ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC)):
        return "arrow"
    body = strip_bom(head).lstrip()
    if body[:1] in (b"{", b"["):
        if _OTLP_KEYS.search(head):
            return "otlp-json"
        from tailscope.ingest import jaeger, zipkin

        if jaeger.sniff(head):
            return "jaeger"
        if zipkin.sniff(head):
            return "zipkin"
        raise NotATraceExport(_describe_json(body))
    if proto_framing(head, size) is not None:
        return "otlp-proto"
    raise NotATraceExport(describe(head))


def _describe_json(body: bytes) -> str:
    keys = re.findall(rb'"([A-Za-z_][A-Za-z0-9_.]{0,40})"\s*:', body[:4096])
    seen: list[str] = []
    for key in keys:
        text = key.decode()
        if text not in seen:
            seen.append(text)
        if len(seen) == 4:
            break
    what = "a JSON array" if body[:1] == b"[" else "a JSON object"
    if seen:
        what += " with keys " + ", ".join(seen)
    return what + " but no resourceSpans (not OTLP, Jaeger or Zipkin traces)"
