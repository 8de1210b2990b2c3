"""One :class:`Reader` per input format, found by name with :func:`get_reader`.

Each reader turns one source (a file or stdin, already decompressed) into span tables of
``SPAN_SCHEMA``, counting what it reads and skipping bad records into the :class:`ProblemLog`.
OTLP/JSON and OTLP protobuf each have one fast path (the C scanners) and one reference path
(the tolerant Python readers), which also reads every block the fast path declines and
everything when the extension is not built (``tailscope.ingest.flat.native``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson

from tailscope.errors import InputError, UsageError
from tailscope.ingest.problems import HeldLog, ProblemLog
from tailscope.ingest.sniff import strip_bom
from tailscope.ingest.sources import Source
from tailscope.types import INPUT_FORMATS

if TYPE_CHECKING:
    import pyarrow as pa

    from tailscope.ingest.model import IngestStats


class Reader(Protocol):
    """Reads one input format."""

    @property
    def name(self) -> str:
        """The input format's name (``--input-format``)."""
        ...

    def read(self, source: Source, log: ProblemLog) -> Iterator[pa.Table]:
        """Span tables of ``source``, in input order; bad records go to ``log``."""
        ...


@dataclass(frozen=True, slots=True)
class OtlpJsonReader:
    """OTLP/JSON: JSON Lines (the collector's file exporter) read in blocks, or one document."""

    name: str = "otlp-json"

    def read(self, source: Source, log: ProblemLog) -> Iterator[pa.Table]:
        from tailscope.ingest import fast_json

        if looks_like_json_lines(source.head()):
            ahead = HeldLog(log)  # problems met reading ahead, replayed in file order
            yield from fast_json.read_lines(source.line_blocks(ahead), log, ahead)
        else:
            yield from fast_json.read_document(source.read_all(log), log)


@dataclass(frozen=True, slots=True)
class OtlpProtoReader:
    """OTLP protobuf: one message, or the collector's length-prefixed frames, streamed."""

    name: str = "otlp-proto"

    def read(self, source: Source, log: ProblemLog) -> Iterator[pa.Table]:
        from tailscope.ingest import otlp_proto

        yield from otlp_proto.read_chunks(source.chunks(log), log)


@dataclass(frozen=True, slots=True)
class TableReader:
    """Parquet or Arrow IPC written by ``tailscope convert``."""

    name: str

    def read(self, source: Source, log: ProblemLog) -> Iterator[pa.Table]:
        from tailscope.ingest import arrow_io

        yield arrow_io.read_table(source.read_all(log), source.name, self.name)


@dataclass(frozen=True, slots=True)
class DocumentReader:
    """A whole-document format read by ``read(data, file, stats)`` (Jaeger, Zipkin)."""

    name: str
    read_document: Callable[[bytes, str, IngestStats], pa.Table]

    def read(self, source: Source, log: ProblemLog) -> Iterator[pa.Table]:
        skipped_before = log.stats.skipped_records
        try:
            table = self.read_document(source.read_all(log), source.name, log.stats)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            # A reader that meets data it cannot handle must not end in a traceback.
            raise InputError(f"{source.name}: unreadable {self.name} data ({exc})") from None
        if log.strict and log.stats.skipped_records > skipped_before:
            first = log.stats.problems[-1] if log.stats.problems else None
            where = f"{first.location()}: {first.reason}" if first else source.name
            raise InputError(f"{where} (--strict)")
        yield table


def get_reader(name: str) -> Reader:
    """The reader of input format ``name``; an unknown name is a UsageError listing the valid
    ones (``auto`` is not a format: the caller sniffs the content first)."""
    from tailscope.ingest import jaeger, zipkin

    readers: dict[str, Reader] = {
        "otlp-json": OtlpJsonReader(),
        "otlp-proto": OtlpProtoReader(),
        "parquet": TableReader("parquet"),
        "arrow": TableReader("arrow"),
        "jaeger": DocumentReader("jaeger", jaeger.read),
        "zipkin": DocumentReader("zipkin", zipkin.read),
    }
    assert set(readers) == set(INPUT_FORMATS) - {"auto"}
    try:
        return readers[name]
    except KeyError:
        raise UsageError(
            f"unknown input format {name!r}; choose one of {', '.join(INPUT_FORMATS)}"
        ) from None


def looks_like_json_lines(head: bytes) -> bool:
    """JSON Lines when the first or second non-empty line is a complete JSON value; a
    pretty-printed document's first line (``{``) never is. A head without a newline is one
    long line: reading it as lines is right for both shapes."""
    text = strip_bom(head)
    if b"\n" not in text.strip():
        return True
    lines = [line for line in text.split(b"\n")[:-1] if line.strip()][:2]
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        return True
    return False
