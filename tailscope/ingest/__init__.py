"""Readers: trace exports in, one span table of exactly ``SPAN_SCHEMA`` out.

:func:`read_spans` is the single entry point every command uses. It expands inputs (files,
directories walked in sorted order, ``-`` for stdin), undoes gzip, sniffs each input's format by
content, reads it with that format's reader (:mod:`tailscope.ingest.readers`) in bounded record
batches, drops duplicate spans (same trace and span id,
first one kept) and returns the table with an honest account of everything skipped.

Bad-input policy: a malformed record is skipped and counted with its file, line (or byte offset)
and a one-line reason; ``strict=True`` turns the first one into :class:`InputError`. A file
named explicitly that is not a trace export at all fails fast with what it looks like; one met
while walking a directory is skipped and counted. Reading nothing at all is an InputError.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from tailscope.errors import InputError
from tailscope.ingest.model import IngestResult, IngestStats, Problem, ProgressSink
from tailscope.ingest.problems import ProblemLog
from tailscope.ingest.readers import get_reader
from tailscope.ingest.sniff import NotATraceExport, sniff
from tailscope.ingest.sources import Source, expand_inputs
from tailscope.types import INPUT_FORMATS, InputFormat

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["IngestResult", "IngestStats", "Problem", "ProgressSink", "read_spans"]


def read_spans(
    inputs: Sequence[str],
    *,
    input_format: InputFormat = "auto",
    strict: bool = False,
    progress: ProgressSink | None = None,
) -> IngestResult:
    """Read trace exports into one span table.

    Args:
        inputs: file paths, directories (read recursively, sorted) or ``"-"`` for stdin.
        input_format: ``"auto"`` sniffs each input's content; anything else forces the reader.
        strict: raise :class:`InputError` on the first bad record instead of skipping it.
        progress: receives bytes consumed per input (the CLI draws a progress bar from it).

    Raises:
        InputError: an input is missing or unreadable, is not a trace export, nothing could be
            read, or (with ``strict``) any record is bad.
    """
    if input_format not in INPUT_FORMATS:
        raise InputError(
            f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}"
        )
    sink = progress or ProgressSink()
    stats = IngestStats()
    tables: list[pa.Table] = []
    for ref in expand_inputs(inputs):
        source = Source(ref, sink)
        stats.files.append(ref.name)
        log = ProblemLog(stats, ref.name, strict)
        sink.start(ref.name, source.size)
        try:
            tables.extend(_read_source(source, input_format, log))
        finally:
            sink.finish()
    return IngestResult(_finish(tables, stats), stats)


def _read_source(source: Source, input_format: str, log: ProblemLog) -> Iterator[pa.Table]:
    head = source.head()
    if not head.strip():
        log.bad(None, "empty input", "empty input: no content")
        return
    fmt = input_format
    if fmt == "auto":
        try:
            fmt = sniff(head, None if source.compressed else source.size)
        except NotATraceExport as exc:
            message = f"not a trace export: looks like {exc}"
            if source.explicit:
                raise InputError(f"{source.name}: {message}") from None
            log.bad(None, "not a trace export", message)
            return
    yield from get_reader(fmt).read(source, log)


def _finish(tables: list[pa.Table], stats: IngestStats) -> pa.Table:
    """Concatenate batches, drop duplicate spans (first kept) or fail when nothing was read."""
    import numpy as np
    import pyarrow as pa

    from tailscope import schema as s

    table = pa.concat_tables(tables) if tables else s.empty_table()
    if table.num_rows == 0:
        raise InputError(_nothing_read(stats))
    table = table.unify_dictionaries()
    if _may_have_duplicates(table):
        keys = pa.table(
            {
                "t": table[s.TRACE_ID],
                "s": table[s.SPAN_ID],
                "i": pa.array(np.arange(table.num_rows, dtype=np.int64)),
            }
        )
        first = keys.group_by(["t", "s"], use_threads=False).aggregate([("i", "min")])
        if first.num_rows < table.num_rows:
            stats.duplicates_dropped += table.num_rows - first.num_rows
            table = table.take(pa.array(np.sort(first["i_min"].to_numpy())))
    return table


def _may_have_duplicates(table: pa.Table) -> bool:
    """False when no two spans share a span id, so no (trace id, span id) pair can repeat:
    one sort of 8-byte ids instead of grouping by both ids (the exact check runs otherwise)."""
    import numpy as np

    from tailscope import schema as s

    chunks = table[s.SPAN_ID].chunks
    ids = np.concatenate(
        [
            np.frombuffer(c.buffers()[1], dtype=np.uint64)[c.offset : c.offset + len(c)]
            for c in chunks
        ]
    )
    ids.sort()
    return bool(np.any(ids[1:] == ids[:-1]))


def _nothing_read(stats: IngestStats) -> str:
    files = ", ".join(stats.files[:3]) + (" ..." if len(stats.files) > 3 else "")
    if stats.problems:
        first = stats.problems[0]
        return (
            f"no spans read from {files}: {stats.skipped_records} bad record(s), first at "
            f"{first.location()}: {first.reason}"
        )
    if stats.non_trace_lines:
        return f"no spans read from {files}: only metric/log records ({stats.non_trace_lines})"
    return f"no spans read from {files}: empty input"
