"""The one way commands load their inputs: options in, span table out, progress on a terminal.

Every command that reads traces (analyze, gate, baseline, tui, convert) calls :func:`load`, so
the same inputs, formats, ``--strict`` and ``--quiet`` behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from tailscope.errors import UsageError
from tailscope.types import INPUT_FORMATS, InputFormat

if TYPE_CHECKING:
    from pathlib import Path

    from tailscope.ingest import SpanBlocks
    from tailscope.ingest.model import IngestResult, ProgressSink


def check_input_format(value: str) -> InputFormat:
    """Validate an ``--input-format`` value (UsageError listing the valid names)."""
    if value not in INPUT_FORMATS:
        raise UsageError(
            f"unknown --input-format {value!r}; choose one of {', '.join(INPUT_FORMATS)}"
        )
    return cast("InputFormat", value)


def load(
    inputs: Sequence[str], input_format: str = "auto", strict: bool = False, quiet: bool = False
) -> IngestResult:
    """Read ``inputs`` with :func:`tailscope.ingest.read_spans`, drawing a progress bar on
    stderr when it is a terminal (not under CI, not with ``quiet``)."""
    from tailscope.ingest import read_spans

    fmt = check_input_format(input_format)
    if not inputs:
        raise UsageError("no inputs given (files, directories or '-' for stdin)")
    with _progress(quiet) as sink:
        return read_spans(inputs, input_format=fmt, strict=strict, progress=sink)


def write_parquet(
    inputs: Sequence[str],
    output: Path,
    input_format: str = "auto",
    strict: bool = False,
    quiet: bool = False,
) -> SpanBlocks:
    """Read ``inputs`` like :func:`load` and write the span table to the Parquet file
    ``output`` block by block as it is read
    (:func:`tailscope.ingest.arrow_io.write_parquet_blocks`); returns the finished blocks
    (row count and statistics) for :func:`summary_line`."""
    from tailscope.ingest import SpanBlocks
    from tailscope.ingest.arrow_io import write_parquet_blocks

    fmt = check_input_format(input_format)
    if not inputs:
        raise UsageError("no inputs given (files, directories or '-' for stdin)")
    with _progress(quiet) as sink:
        blocks = SpanBlocks(inputs, input_format=fmt, strict=strict, progress=sink)
        write_parquet_blocks(blocks, output)
    return blocks


@contextmanager
def _progress(quiet: bool) -> Iterator[ProgressSink | None]:
    """A progress bar on stderr while reading, when it is a terminal (not under CI, not with
    ``quiet``); None otherwise."""
    from tailscope.cli.progress import RichProgress, progress_enabled

    sink = RichProgress() if progress_enabled(quiet) else None
    try:
        yield sink
    finally:
        if sink is not None:
            sink.close()


def summary_line(result: IngestResult | SpanBlocks) -> str:
    """One line for stderr: spans read and what was skipped, with the first reason."""
    from tailscope.ingest import SpanBlocks

    stats = result.stats
    rows = result.rows if isinstance(result, SpanBlocks) else result.table.num_rows
    parts = [f"{rows:,} spans from {len(stats.files)} file(s)"]
    if stats.skipped_records:
        parts.append(f"{stats.skipped_records:,} bad record(s) skipped")
    if stats.duplicates_dropped:
        parts.append(f"{stats.duplicates_dropped:,} duplicate(s) dropped")
    if stats.non_trace_lines:
        parts.append(f"{stats.non_trace_lines:,} metric/log line(s) ignored")
    if stats.unknown_service_resources:
        parts.append(f"{stats.unknown_service_resources:,} resource(s) without service.name")
    line = "; ".join(parts)
    if stats.problems:
        first = stats.problems[0]
        line += f" (first: {first.location()}: {first.reason})"
    return line
