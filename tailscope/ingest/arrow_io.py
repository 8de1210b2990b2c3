"""Parquet and Arrow IPC span tables: what ``tailscope convert`` writes and every command reads
back without re-parsing the original export.

Reading goes through :func:`tailscope.schema.conform`, so a file from another version or tool
with the right columns but different dictionary widths still yields exactly ``SPAN_SCHEMA``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.ipc as ipc

from tailscope import schema as s
from tailscope.errors import InputError, UsageError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

TableFormat = Literal["parquet", "arrow"]


def table_format_for(path: Path) -> TableFormat:
    """Output format from the file name: ``.parquet``/``.pq``, ``.arrow``/``.feather``/``.ipc``."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".arrow", ".feather", ".ipc"):
        return "arrow"
    raise UsageError(f"{path}: cannot tell the output format from the name; use .parquet or .arrow")


def parquet_write_options(schema: pa.Schema) -> dict[str, object]:
    """Keyword arguments for ``pyarrow.parquet.write_table``/``ParquetWriter`` for a span table.

    zstd (Arrow's default level); dictionary pages only for the columns that already are Arrow
    dictionaries (service, operation, resource, ...: written from their existing dictionary,
    no hashing). Parquet's default would also try to dictionary-encode every plain string,
    above all the attribute keys and values (8 a span), hashing millions of mostly distinct
    strings and then falling back to plain pages: that cost 30% of the write at 300k spans and
    made the file larger. Column statistics (min/max, for readers that prune row groups) only
    for the fixed-width columns: ids, times, durations, codes. Min/max of every string (the
    attribute keys and values, 8 a span) cost 20% of the write at 300k spans and prune nothing.
    """
    dictionaries = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    fixed_width = [
        f.name
        for f in schema
        if pa.types.is_integer(f.type)
        or pa.types.is_boolean(f.type)
        or pa.types.is_fixed_size_binary(f.type)
    ]
    return {
        "compression": "zstd",
        "use_dictionary": dictionaries,
        "write_statistics": fixed_width,
    }


def write_table(table: pa.Table, path: Path) -> None:
    """Write a span table as Parquet (:func:`parquet_write_options`) or Arrow IPC file
    (uncompressed, memory-mappable)."""
    fmt = table_format_for(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path, **parquet_write_options(table.schema))
        else:
            with ipc.new_file(path, table.schema) as writer:
                writer.write_table(table)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None


ROW_GROUP_ROWS = 50_000
"""Rows a Parquet row group written block by block reaches before it is written (about four
blocks of the JSON reader): fewer, larger row groups cost less to encode (each column chunk
starts its own compressor), smaller ones start writing sooner."""


def write_parquet_blocks(
    blocks: Iterable[pa.Table], path: Path, row_group_rows: int = ROW_GROUP_ROWS
) -> int:
    """Write span tables one after another into one Parquet file
    (:func:`parquet_write_options`) on a writer thread while the next ones are still being
    read; returns the rows written.

    The file holds the rows of all blocks in order, as :func:`write_table` of their
    concatenation does. Consecutive blocks are gathered until they hold ``row_group_rows``
    rows and written as one row group (their dictionaries unified). Writing releases the GIL,
    so it overlaps the reading of the next blocks on a second core; at most two row groups
    wait for the writer. ``pyarrow.parquet`` (50-70 ms) is imported on the writer thread
    while the first blocks are read.

    The file is written under a temporary name next to ``path`` and renamed to ``path`` once
    complete: when reading or writing fails part-way (a bad record with ``--strict``), the
    partial file is removed and a file already at ``path`` is left as it was, as when the
    whole table was written after reading. Nothing is created when ``blocks`` yields nothing.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    rows = 0
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    writer: pq.ParquetWriter | None = None
    pending: list[Future[None]] = []
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailscope-parquet") as pool:
            parquet = pool.submit(importlib.import_module, "pyarrow.parquet")
            try:
                group: list[pa.Table] = []
                for block in itertools.chain(blocks, [None]):  # None: flush the last group
                    if block is not None:
                        group.append(block)
                        rows += block.num_rows
                        if sum(t.num_rows for t in group) < row_group_rows:
                            continue
                    if not group:
                        break
                    if writer is None:
                        writer = parquet.result().ParquetWriter(
                            partial, s.SPAN_SCHEMA, **parquet_write_options(s.SPAN_SCHEMA)
                        )
                    pending.append(pool.submit(_write_row_group, writer, group))
                    group = []
                    while len(pending) > 2:
                        pending.pop(0).result()
                for future in pending:
                    future.result()
            finally:
                for future in pending:
                    future.cancel()
        if writer is not None:
            writer.close()
            os.replace(partial, path)
    except OSError as exc:
        _discard(writer, partial)
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _discard(writer, partial)
        raise
    return rows


def _write_row_group(writer: pq.ParquetWriter, group: list[pa.Table]) -> None:
    """One row group of consecutive blocks, their dictionaries unified (a dictionary column
    whose dictionary changed within a column chunk would fall back to plain pages)."""
    table = group[0] if len(group) == 1 else pa.concat_tables(group).unify_dictionaries()
    writer.write_table(table, row_group_size=table.num_rows)


def _discard(writer: pq.ParquetWriter | None, partial: Path) -> None:
    """Close and remove a Parquet file left incomplete."""
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    partial.unlink(missing_ok=True)


def read_table(data: bytes, file: str, fmt: str) -> pa.Table:
    """Read back a table written by ``convert``; InputError if it is not a span table."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
        elif data.startswith(b"ARROW1"):
            table = ipc.open_file(pa.BufferReader(data)).read_all()
        else:
            table = ipc.open_stream(pa.BufferReader(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{file}: unreadable {fmt} file ({exc})") from None
    try:
        return s.conform(table)
    except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{file}: {exc}") from None
