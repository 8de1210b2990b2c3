"""Span tables handed over block by block (``SpanBlocks``, ``FirstSeen``) and written to Parquet
while they are read (``write_parquet_blocks``): the same rows, the same duplicates dropped and
counted, the same file content as reading the whole table first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from repo_paths import CORPUS, FIXTURES
from tables import plain

from tailscope import schema as s
from tailscope.errors import InputError
from tailscope.ingest import FirstSeen, SpanBlocks, read_spans
from tailscope.ingest.arrow_io import write_parquet_blocks, write_table

STEADY = FIXTURES / "steady.jsonl.gz"


def first_occurrences(blocks: list[pa.Table]) -> list[pa.Table]:
    """Reference: each block without the rows whose (trace id, span id) came before, by a
    Python set over the row keys."""
    seen: set[tuple[bytes, bytes]] = set()
    out = []
    for block in blocks:
        keys = zip(block[s.TRACE_ID].to_pylist(), block[s.SPAN_ID].to_pylist(), strict=True)
        keep = []
        for key in keys:
            keep.append(key not in seen)
            seen.add(key)
        out.append(block.filter(pa.array(keep)))
    return out


def with_trace_id(table: pa.Table, trace_id: bytes) -> pa.Table:
    """``table`` with every span moved into one other trace (same span ids)."""
    field = table.schema.field(s.TRACE_ID)
    column = pa.array([trace_id] * table.num_rows, type=field.type)
    return table.set_column(table.schema.get_field_index(s.TRACE_ID), field, column)


@pytest.fixture(scope="module")
def steady() -> pa.Table:
    return read_spans([str(STEADY)]).table


def test_first_seen_drops_repeats_across_and_within_blocks(steady: pa.Table) -> None:
    # GIVEN blocks that repeat spans of earlier blocks and of themselves, and spans whose span
    # id was met before under another trace id (not duplicates)
    blocks = [
        steady.slice(0, 300),
        pa.concat_tables([steady.slice(200, 300), steady.slice(450, 20)]),
        with_trace_id(steady.slice(0, 50), b"\x01" * 16),
        pa.concat_tables([steady.slice(600, 100), steady.slice(0, 5)]),
        steady.slice(1000, 400),  # nothing repeated
    ]
    # WHEN each block passes FirstSeen in order
    seen = FirstSeen()
    kept = [seen.first_only(block) for block in blocks]
    # THEN exactly the first occurrences remain, in order
    expected = first_occurrences(blocks)
    assert [t.num_rows for t in kept] == [t.num_rows for t in expected]
    assert [t.num_rows for t in kept] == [300, 200, 50, 100, 400]
    for got, want in zip(kept, expected, strict=True):
        assert plain(got).equals(plain(want))


def test_first_seen_keeps_the_first_of_a_whole_table_read_twice(steady: pa.Table) -> None:
    seen = FirstSeen()
    assert seen.first_only(steady).num_rows == steady.num_rows
    assert seen.first_only(steady.slice(100, 2000)).num_rows == 0


def test_blocks_hold_the_rows_and_counts_of_read_spans() -> None:
    # The corpus directory repeats spans across files (23 duplicates, see test_ingest_corpus).
    whole = read_spans([str(CORPUS / "otlp")])
    blocks = SpanBlocks([str(CORPUS / "otlp")])
    tables = list(blocks)
    assert len(tables) > 1
    assert blocks.stats.duplicates_dropped == whole.stats.duplicates_dropped == 23
    assert blocks.stats.records == whole.stats.records
    assert blocks.rows == whole.table.num_rows
    assert plain(pa.concat_tables(tables)).equals(plain(whole.table))


def test_blocks_raise_when_nothing_is_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"resourceSpans": []}\n')
    with pytest.raises(InputError, match="no spans read"):
        list(SpanBlocks([str(empty)]))


@pytest.mark.parametrize(("row_group_rows", "row_groups"), [(1, 4), (5000, 2), (50_000, 1)])
def test_parquet_written_block_by_block_equals_the_table_written_whole(
    tmp_path: Path, steady: pa.Table, row_group_rows: int, row_groups: int
) -> None:
    # GIVEN the fixture (11,681 spans) as four blocks with their own dictionaries, as the
    # reader hands them over
    blocks = [
        s.conform(plain(steady.slice(i, 3000)))  # dictionaries of the block's own values
        for i in range(0, steady.num_rows, 3000)
    ]
    assert len(blocks) == 4
    names = [block[s.NAME].chunk(0).dictionary for block in blocks]
    assert any(not n.equals(names[0]) for n in names[1:])
    whole, pipelined = tmp_path / "whole.parquet", tmp_path / "blocks.parquet"
    # WHEN written whole and block by block, blocks gathered into row groups
    write_table(steady, whole)
    rows = write_parquet_blocks(iter(blocks), pipelined, row_group_rows)
    # THEN the same rows and schema come back, in as many row groups as gathered
    assert rows == steady.num_rows
    assert pq.ParquetFile(pipelined).metadata.num_row_groups == row_groups
    a, b = s.conform(pq.read_table(whole)), s.conform(pq.read_table(pipelined))
    assert b.schema.equals(a.schema)
    assert plain(b).equals(plain(a))
    assert plain(b).equals(plain(steady))


def test_parquet_blocks_create_nothing_without_rows(tmp_path: Path) -> None:
    target = tmp_path / "none.parquet"
    assert write_parquet_blocks(iter(()), target) == 0
    assert not target.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_parquet_blocks_leave_no_file_when_reading_fails(
    tmp_path: Path, steady: pa.Table, existing: bool
) -> None:
    target = tmp_path / "cut.parquet"
    if existing:
        target.write_bytes(b"an earlier file")

    def failing() -> Iterator[pa.Table]:
        yield steady.slice(0, 1000)
        raise InputError("bad record")

    with pytest.raises(InputError, match="bad record"):
        write_parquet_blocks(failing(), target, row_group_rows=500)  # a row group written
    # no partial file, and an earlier file at the same path is left as it was
    assert [p.name for p in tmp_path.iterdir()] == (["cut.parquet"] if existing else [])
    if existing:
        assert target.read_bytes() == b"an earlier file"


def test_blocks_drop_a_whole_file_given_twice(tmp_path: Path) -> None:
    # GIVEN the same export twice, under two names, so every span of the second repeats one
    # of an earlier block
    again = tmp_path / "again.jsonl.gz"
    again.write_bytes(STEADY.read_bytes())
    inputs = [str(STEADY), str(again)]
    # WHEN read block by block and whole
    blocks = SpanBlocks(inputs)
    tables = list(blocks)
    whole = read_spans(inputs)
    # THEN both keep the first file's spans and count the second's as duplicates
    assert blocks.stats.duplicates_dropped == whole.stats.duplicates_dropped == 11_681
    assert plain(pa.concat_tables(tables)).equals(plain(whole.table))
