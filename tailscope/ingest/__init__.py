"""Readers: trace exports in, one span table of exactly ``SPAN_SCHEMA`` out.

:func:`read_spans` is the entry point every command uses. It expands inputs (files,
directories walked in sorted order, ``-`` for stdin), undoes gzip, sniffs each input's format by
content, reads it with that format's reader (:mod:`tailscope.ingest.readers`) in bounded record
batches, drops duplicate spans (same trace and span id,
first one kept) and returns the table with an honest account of everything skipped.
:class:`SpanBlocks` hands over the same rows block by block while later blocks are still being
read (``tailscope convert`` writes Parquet meanwhile), dropping duplicates as it meets them.

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
    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = [
    "FirstSeen",
    "IngestResult",
    "IngestStats",
    "Problem",
    "ProgressSink",
    "SpanBlocks",
    "read_spans",
]


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
    stats = IngestStats()
    tables = list(_tables(inputs, input_format, strict, progress, stats))
    return IngestResult(_finish(tables, stats), stats)


class SpanBlocks:
    """The rows :func:`read_spans` returns, handed over block by block while later blocks are
    still being read (``tailscope convert`` writes each as a Parquet row group meanwhile).

    Iterating yields tables of ``SPAN_SCHEMA`` in input order, each with the duplicates of
    spans met before (same trace and span id, in an earlier block or earlier in the same one)
    already dropped and counted in :attr:`stats`: together exactly the rows of
    ``read_spans(...).table``, in the same order. Unlike that table, the blocks' dictionary
    columns are not unified (each block has its own dictionaries). Iterate once; the same
    errors as :func:`read_spans` are raised while iterating, the "nothing read" one at the end.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        *,
        input_format: InputFormat = "auto",
        strict: bool = False,
        progress: ProgressSink | None = None,
    ) -> None:
        self.stats = IngestStats()
        """What reading cost; complete once the iteration ends."""
        self.rows = 0
        """Spans yielded so far (duplicates not counted)."""
        self._args = (inputs, input_format, strict, progress)

    def __iter__(self) -> Iterator[pa.Table]:
        seen = FirstSeen()
        for table in _tables(*self._args, self.stats):
            if table.num_rows == 0:
                continue
            kept = seen.first_only(table)
            self.stats.duplicates_dropped += table.num_rows - kept.num_rows
            if kept.num_rows:
                self.rows += kept.num_rows
                yield kept
        if self.rows == 0:
            raise InputError(_nothing_read(self.stats))


class FirstSeen:
    """Which rows of a stream of span tables repeat a (trace id, span id) pair met before.

    Keeps every span id met so far in sorted runs (8 bytes a span; a new block's ids are one
    more run, and two runs of about the same length are merged, so there are about log2 of
    the blocks and each id is merged about that many times), and the id columns of every
    block. A block none of whose span ids was met before or repeats within it has no
    duplicate (one sort of its ids and one binary search per run); otherwise the rows whose
    span id collides are checked exactly on both ids, first occurrence kept.
    """

    def __init__(self) -> None:
        self._runs: list[NDArray[np.uint64]] = []  # sorted span ids, longest first
        self._ids: list[pa.Table] = []  # trace and span ids of the blocks before

    def first_only(self, table: pa.Table) -> pa.Table:
        """``table`` without the rows whose (trace id, span id) was met before, in this table
        or an earlier one; remembers the rows kept."""
        import numpy as np

        from tailscope import schema as s

        ids = _uint64s(table[s.SPAN_ID])
        mine = np.sort(ids)
        hit_before = np.zeros(len(mine), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, mine).clip(max=len(run) - 1)
            hit_before |= run[at] == mine
        repeat = mine[1:] == mine[:-1]
        if hit_before.any() or repeat.any():
            colliding = np.union1d(mine[hit_before], mine[1:][repeat])
            table = table.filter(self._first_rows(table, ids, colliding))
            mine = np.sort(_uint64s(table[s.SPAN_ID]))
        if len(mine):
            self._runs.append(mine)
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
            merged = np.concatenate([self._runs.pop(-2), self._runs.pop()])
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._runs.append(merged)
        self._ids.append(table.select([s.TRACE_ID, s.SPAN_ID]))
        return table

    def _first_rows(
        self, table: pa.Table, ids: NDArray[np.uint64], colliding: NDArray[np.uint64]
    ) -> NDArray[np.bool_]:
        """Mask of ``table``'s rows to keep: all but those whose exact (trace id, span id) key,
        among the rows whose span id is in ``colliding``, appeared before (earlier blocks
        first, then this table in row order)."""
        import numpy as np
        import pyarrow as pa

        from tailscope import schema as s

        earlier = []
        if self._ids:
            ids_before = pa.concat_tables(self._ids)
            hit = np.isin(_uint64s(ids_before.column(1)), colliding)
            if hit.any():
                ids_before = ids_before.filter(pa.array(hit))
                earlier.append(_keys(ids_before.column(0), ids_before.column(1)))
        candidates = np.flatnonzero(np.isin(ids, colliding))
        mine = _keys(table[s.TRACE_ID], table[s.SPAN_ID])[candidates]
        before = np.concatenate([np.empty(0, dtype=mine.dtype), *earlier])
        _, first = np.unique(np.concatenate([before, mine]), return_index=True)
        firsts = first[first >= len(before)] - len(before)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[candidates] = False
        keep[candidates[firsts]] = True
        return keep


def _uint64s(column: pa.ChunkedArray) -> NDArray[np.uint64]:
    """The 8-byte ids of a ``fixed_size_binary(8)`` column as uint64s (a copy when chunked)."""
    import numpy as np

    parts = [
        np.frombuffer(c.buffers()[1], dtype=np.uint64)[c.offset : c.offset + len(c)]
        for c in column.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def _keys(trace: pa.ChunkedArray, span: pa.ChunkedArray) -> NDArray[np.void]:
    """One 24-byte key (trace id, span id) per row, comparable with ``np.unique``."""
    import numpy as np

    def raw(column: pa.ChunkedArray, width: int) -> NDArray[np.uint8]:
        parts = [
            np.frombuffer(c.buffers()[1], dtype=np.uint8)[
                c.offset * width : (c.offset + len(c)) * width
            ].reshape(-1, width)
            for c in column.chunks
        ]
        return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.uint8)

    both = np.ascontiguousarray(np.concatenate([raw(trace, 16), raw(span, 8)], axis=1))
    return both.view(np.dtype("V24")).reshape(-1)


def _tables(
    inputs: Sequence[str],
    input_format: str,
    strict: bool,
    progress: ProgressSink | None,
    stats: IngestStats,
) -> Iterator[pa.Table]:
    """Every input's tables as its reader yields them (duplicates not dropped yet)."""
    if input_format not in INPUT_FORMATS:
        raise InputError(
            f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}"
        )
    sink = progress or ProgressSink()
    for ref in expand_inputs(inputs):
        source = Source(ref, sink)
        stats.files.append(ref.name)
        log = ProblemLog(stats, ref.name, strict)
        sink.start(ref.name, source.size)
        try:
            yield from _read_source(source, input_format, log)
        finally:
            sink.finish()


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
