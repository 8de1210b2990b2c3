"""The fast OTLP/JSON path: blocks of JSON Lines (or one whole document) read by the C scanner
(``_native.scan_json``, see ``native/json_scan.c``) into column buffers that
:func:`~tailscope.ingest.flat.table_from_flat` assembles.

The scanner only accepts what it can read *exactly* as the tolerant per-record reader
(:mod:`tailscope.ingest.otlp_json`, the reference) would. Anything else in a block (enum
names, snake_case, bad records, unusual doubles ...) makes it decline the block before anything
is counted, and the tolerant reader reads that block instead; without the C extension (or with
``TAILSCOPE_NATIVE=0``) it reads every block. Tests check both give identical tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeAlias

import orjson
import pyarrow as pa

from tailscope.ingest import otlp_json
from tailscope.ingest.columns import ResourceColumns
from tailscope.ingest.flat import Flat, Unsupported, account, native, scanned_table
from tailscope.ingest.problems import Held, HeldLog, ProblemLog, replay


def _resource_of(encoded: bytes | None) -> ResourceColumns:
    try:
        resource = None if encoded is None else orjson.loads(encoded)
    except orjson.JSONDecodeError:  # cannot happen: the scanner validated it
        raise Unsupported("resource") from None
    return otlp_json.resource_from_json(resource)


def _scope_of(encoded: bytes | None) -> tuple[str | None, str | None]:
    if encoded is None:
        return None, None
    try:
        scope = orjson.loads(encoded)
    except orjson.JSONDecodeError:  # cannot happen: the scanner validated it
        raise Unsupported("scope") from None
    name = scope.get("name") or None
    version = scope.get("version") or None
    if not isinstance(name, str | None) or not isinstance(version, str | None):
        raise Unsupported("scope name or version not a string")
    return name, version


NativeCache: TypeAlias = dict[bytes | None, ResourceColumns]


def native_block_to_table(
    block: Block, scanned: Flat | str | None = None, resource_cache: NativeCache | None = None
) -> tuple[pa.Table, int, int]:
    """(span table, span records, unknown-service resources) of one block of whole lines read
    by the C scanner. Raises Unsupported when any line needs the tolerant path (or there is no
    scanner); nothing is counted then.
    """
    if native is None:
        raise Unsupported("native scanner not built")
    if scanned is None:
        scanned = native.scan_json(block)
    cache: NativeCache = {} if resource_cache is None else resource_cache
    return scanned_table(scanned, block, _resource_of, _scope_of, cache)


Parsed: TypeAlias = "Flat | str | None"
Block: TypeAlias = bytes | memoryview
"""Whole lines: bytes, or a view of a read buffer (plain files are read without copying)."""


def _try_parse(block: Block) -> Parsed:
    """Scan one block off the main thread (the scan releases the GIL). None (no scanner) or a
    reason (str) when the block needs the tolerant path."""
    return None if native is None else native.scan_json(block)


def read_document(data: bytes, log: ProblemLog) -> Iterator[pa.Table]:
    """A file holding one JSON document (usually pretty-printed): the native scanner reads it
    whole when it can, else the tolerant reader does."""
    if native is not None:
        scanned = native.scan_json_document(data)
        try:
            table, records, unknown = native_block_to_table(data, scanned)
        except Unsupported:
            pass
        else:
            yield from account(log, table, records, unknown, _non_trace(scanned))
            return
    yield from otlp_json.read_document(data, log)


READ_AHEAD: Final = 2
"""Blocks parsed ahead on worker threads while the main thread assembles tables (the parse
releases the GIL, so two blocks scan on two cores)."""


def read_lines(
    blocks: Iterator[Block], log: ProblemLog, ahead: HeldLog | None = None
) -> Iterator[pa.Table]:
    """JSON Lines blocks through the C scanner, each falling back to the tolerant reader.

    Up to :data:`READ_AHEAD` blocks are parsed on worker threads while the previous one is
    assembled here. ``blocks`` should report its problems to ``ahead`` (replayed into ``log``
    in file order); without it, the blocks are read one at a time.
    """
    cache: NativeCache = {}
    line = 1
    if ahead is None:
        for block in blocks:
            parsed = _try_parse(block)
            yield from _one_block(line, block, parsed, log, cache)
            line += _newlines(block, parsed)
        return
    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="tailscope-json") as pool:
        queue: deque[tuple[Block, Future[Parsed], list[Held]]] = deque()
        tail: list[Held] = []  # problems met after the last block
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            while len(queue) < READ_AHEAD and not exhausted:
                block = next(blocks, None)
                held = ahead.take()
                if block is None:
                    exhausted = True
                    tail.extend(held)
                    return
                queue.append((block, pool.submit(_try_parse, block), held))

        refill()
        while queue:
            block, future, held = queue.popleft()
            refill()
            parsed = future.result()
            replay(held, log)
            yield from _one_block(line, block, parsed, log, cache)
            line += _newlines(block, parsed)
        replay(tail, log)


def _non_trace(parsed: Parsed) -> int:
    """Metric/log lines the native scanner skipped."""
    return int(parsed["n_non_trace"]) if isinstance(parsed, dict) else 0


def _newlines(block: Block, parsed: Parsed) -> int:
    if isinstance(parsed, dict):
        return int(parsed["n_lines"])
    return bytes(block).count(b"\n")


def _one_block(
    first_line: int,
    block: Block,
    parsed: Parsed,
    log: ProblemLog,
    cache: NativeCache,
) -> Iterator[pa.Table]:
    try:
        if parsed is None:
            raise Unsupported("no native scanner")
        table, records, unknown = native_block_to_table(block, parsed, cache)
    except Unsupported:
        yield from otlp_json.read_lines(iter([(first_line, bytes(block))]), log)
        return
    yield from account(log, table, records, unknown, _non_trace(parsed))
