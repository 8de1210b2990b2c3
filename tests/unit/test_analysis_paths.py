"""Critical paths and clock-skew adjustment on hand-built traces with known answers, and the
partition invariant (segments of a root sum exactly to its duration) on real and simulated files.

Times in the hand-built traces are small integers of nanoseconds so the expected segments can be
read straight off the pictures in the docstrings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from repo_paths import CORPUS as _CORPUS
from repo_paths import FIXTURES as _FIXTURES
from repo_paths import REPO as _REPO

from tailscope import schema as s
from tailscope.analysis.critical_path import critical_path, segments_frame
from tailscope.analysis.pipeline import analyze
from tailscope.analysis.skew import SKEW_ADJUSTMENT, adjust_clock_skew
from tailscope.analysis.span_tree import build_span_tree
from tailscope.analysis.traces import with_roots
from tailscope.ingest import read_spans
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.schema import SpanKind

REPO = _REPO
CORPUS = _CORPUS
FIXTURES = _FIXTURES

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


def span(
    sid: int,
    parent: int | None,
    kind: int,
    start: int,
    end: int,
    service: str = "a",
    host: str = "h1",
    trace: int = 1,
    name: str | None = None,
) -> SpanRow:
    """One span; ids derived from small integers, name defaults to ``s<sid>``."""
    return SpanRow(
        trace_id=trace.to_bytes(16, "big"),
        span_id=sid.to_bytes(8, "big"),
        parent_span_id=None if parent is None else parent.to_bytes(8, "big"),
        name=name or f"s{sid}",
        kind=kind,
        start_unix_nano=start,
        end_unix_nano=end,
        service_name=service,
        service_instance=f"{service}-1",
        host_name=host,
    )


def path_of(rows: list[SpanRow]) -> list[tuple[str, int, int, str]]:
    """Segments as (span name, start, end, component), in time order."""
    table = table_from_rows(rows)
    seg = pl.from_arrow(critical_path(table))
    assert isinstance(seg, pl.DataFrame)
    return [
        (r["hop_operation"], r["seg_start"], r["seg_end"], r["component"])
        for r in seg.sort("trace_id", "seg_start").iter_rows(named=True)
    ]


def test_serial_chain() -> None:
    """root [0,100] → client c [10,90] → server s [20,80] (other host) → db client d [30,60]."""
    rows = [
        span(1, None, SERVER, 0, 100),
        span(2, 1, CLIENT, 10, 90),
        span(3, 2, SERVER, 20, 80, service="b", host="h2"),
        span(4, 3, CLIENT, 30, 60, service="b", host="h2"),
    ]
    assert path_of(rows) == [
        ("s1", 0, 10, "self"),
        ("s2", 10, 20, "network"),
        ("s3", 20, 30, "self"),
        ("s4", 30, 60, "dependency"),
        ("s3", 60, 80, "self"),
        ("s2", 80, 90, "network"),
        ("s1", 90, 100, "self"),
    ]


def test_parallel_fan_out_takes_the_last_finisher() -> None:
    """Three parallel calls [10,50], [10,70], [12,40]: only the one ending at 70 is waited on."""
    rows = [
        span(1, None, SERVER, 0, 80),
        span(2, 1, CLIENT, 10, 50),
        span(3, 1, CLIENT, 10, 70),
        span(4, 1, CLIENT, 12, 40),
    ]
    assert path_of(rows) == [
        ("s1", 0, 10, "self"),
        ("s3", 10, 70, "dependency"),
        ("s1", 70, 80, "self"),
    ]


def test_back_to_back_siblings_are_both_on_the_path() -> None:
    """[10,40] then [40,70]: the first ends exactly when the second starts (jaeger #9148)."""
    rows = [
        span(1, None, SERVER, 0, 80),
        span(2, 1, CLIENT, 10, 40),
        span(3, 1, CLIENT, 40, 70),
    ]
    assert path_of(rows) == [
        ("s1", 0, 10, "self"),
        ("s2", 10, 40, "dependency"),
        ("s3", 40, 70, "dependency"),
        ("s1", 70, 80, "self"),
    ]


def test_child_outliving_its_parent_is_clamped_but_kept_in_the_table() -> None:
    """A client times out at 60 while its server child (same host) runs to 95: the path counts
    the child only up to 60; the span table keeps the overrun."""
    rows = [
        span(1, None, SERVER, 0, 100),
        span(2, 1, CLIENT, 10, 60),
        span(3, 2, SERVER, 12, 95),
    ]
    assert path_of(rows) == [
        ("s1", 0, 10, "self"),
        ("s2", 10, 12, "network"),
        ("s3", 12, 60, "self"),
        ("s1", 60, 100, "self"),
    ]
    result = analyze(IngestResult(table_from_rows(rows), IngestStats()))
    child = result.spans.filter(pl.col(s.NAME).cast(pl.String) == "s3")
    assert child[s.END].item() == 95


def test_skewed_child_on_another_host_is_centred_in_its_parent() -> None:
    """The server's host clock runs 25 ns early: [5,35] inside a client [10,50] of 40 ns.
    Jaeger's rule centres the 30 ns child: shift = 10 + (40-30)/2 - 5 = +10; its same-host
    child moves with it, and exactly one adjustment is counted."""
    rows = [
        span(1, None, SERVER, 0, 60),
        span(2, 1, CLIENT, 10, 50),
        span(3, 2, SERVER, 5, 35, service="b", host="h2"),
        span(4, 3, INTERNAL, 10, 20, service="b", host="h2"),
    ]
    table = table_from_rows(rows)
    shifts = adjust_clock_skew(table)
    assert shifts[SKEW_ADJUSTMENT].to_pylist() == [0, 0, 10, 10]
    assert shifts["skew_corrected"].to_pylist() == [False, False, True, False]
    result = analyze(IngestResult(table, IngestStats()))
    assert result.report.input.skew_adjustments == 1
    adjusted = result.spans.sort(s.SPAN_ID)
    assert adjusted[s.START].to_list() == [0, 10, 15, 20]
    assert adjusted[s.END].to_list() == [60, 50, 45, 30]
    segs = result.path.sort("seg_start")
    assert segs.select("hop_operation", "seg_start", "seg_end").rows() == [
        ("s1", 0, 10),
        ("s2", 10, 15),
        ("s3", 15, 20),
        ("s4", 20, 30),
        ("s3", 30, 45),
        ("s2", 45, 50),
        ("s1", 50, 60),
    ]


def test_same_host_misfit_is_not_adjusted_and_shift_is_capped() -> None:
    """A child on the parent's host that starts early shares its clock: no shift. A child on
    another host 5 s off is shifted by at most the cap."""
    rows = [
        span(1, None, SERVER, 1_000, 2_000),
        span(2, 1, INTERNAL, 900, 1_500),
        span(3, None, SERVER, 10_000_000_000, 20_000_000_000, trace=2),
        span(4, 3, SERVER, 5_000_000_000, 6_000_000_000, service="b", host="h2", trace=2),
    ]
    shifts = adjust_clock_skew(table_from_rows(rows), max_shift_ns=1_000_000_000)
    assert shifts[SKEW_ADJUSTMENT].to_pylist() == [0, 0, 0, 1_000_000_000]


def test_orphans_become_roots_and_are_counted() -> None:
    """Span 3's parent (99) was never exported: it is a root of its own path."""
    rows = [
        span(1, None, SERVER, 0, 50),
        span(2, 1, CLIENT, 10, 40),
        span(3, 99, SERVER, 60, 90, service="b", host="h2"),
        span(4, 3, CLIENT, 70, 80, service="b", host="h2"),
    ]
    result = analyze(IngestResult(table_from_rows(rows), IngestStats()))
    assert result.report.input.orphan_spans == 1
    roots = {(r.service, r.operation): r.requests for r in result.report.roots}
    assert roots == {("a", "s1"): 1, ("b", "s3"): 1}
    orphan_path = result.path.filter(pl.col("root_operation") == "s3").sort("seg_start")
    assert orphan_path.select("hop_operation", "seg_start", "seg_end").rows() == [
        ("s3", 60, 70),
        ("s4", 70, 80),
        ("s3", 80, 90),
    ]


def test_async_messaging_is_pruned() -> None:
    """A PRODUCER [10,12] whose CONSUMER [15,95] runs past the root's end, and a fire-and-forget
    child starting after its parent ended: neither is on the path."""
    rows = [
        span(1, None, SERVER, 0, 50),
        span(2, 1, PRODUCER, 10, 12),
        span(3, 2, CONSUMER, 11, 45, service="worker", host="h2"),
        span(4, 1, INTERNAL, 55, 70),
    ]
    assert path_of(rows) == [
        ("s1", 0, 10, "self"),
        ("s2", 10, 12, "self"),
        ("s1", 12, 50, "self"),
    ]


def test_follows_from_child_is_pruned_like_async_work() -> None:
    """A child [10,90] inside its parent [0,100]: on the path as CHILD_OF, but not when the
    Jaeger reader marked it FOLLOWS_FROM (the parent did not wait for it)."""
    rows = [span(1, None, SERVER, 0, 100), span(2, 1, INTERNAL, 10, 90)]
    assert path_of(rows) == [("s1", 0, 10, "self"), ("s2", 10, 90, "self"), ("s1", 90, 100, "self")]
    rows[1].attributes.append(("jaeger.reference_type", "FOLLOWS_FROM", 1))
    assert path_of(rows) == [("s1", 0, 100, "self")]


def test_equal_end_siblings_take_the_longer() -> None:
    rows = [
        span(1, None, SERVER, 0, 100),
        span(2, 1, CLIENT, 50, 90),
        span(3, 1, CLIENT, 20, 90),
    ]
    assert path_of(rows) == [
        ("s1", 0, 20, "self"),
        ("s3", 20, 90, "dependency"),
        ("s1", 90, 100, "self"),
    ]


def test_parent_cycle_is_not_walked_forever() -> None:
    """Two spans naming each other as parent have no root: no path, no hang."""
    rows = [span(1, 2, SERVER, 0, 10), span(2, 1, SERVER, 0, 10), span(3, None, SERVER, 0, 5)]
    tree = build_span_tree(table_from_rows(rows))
    assert tree.depth.tolist() == [-1, -1, 0]
    assert path_of(rows) == [("s3", 0, 5, "self")]


def _assert_partition(table_spans: pl.DataFrame) -> int:
    """Segments of every root sum exactly to the root's duration and never overlap."""
    frame = with_roots(table_spans)
    tree = build_span_tree(frame)
    segments = segments_frame(frame, tree)
    totals = segments.group_by("trace_id", "root_span_id").agg(
        (pl.col("seg_end") - pl.col("seg_start")).sum().alias("total"),
        ((pl.col("seg_start") - pl.col("seg_end").shift(1)).min()).alias("gap"),
    )
    roots = frame.filter(pl.col("is_root") & (pl.col(s.DURATION) > 0)).select(
        s.TRACE_ID, pl.col(s.SPAN_ID).alias("root_span_id"), s.DURATION
    )
    joined = roots.join(
        totals, left_on=[s.TRACE_ID, "root_span_id"], right_on=["trace_id", "root_span_id"]
    )
    assert joined.height == roots.height
    assert (joined["total"] == joined[s.DURATION]).all()
    ordered = segments.sort("trace_id", "root_span_id", "seg_start")
    same_root = (ordered["root_span_id"] == ordered["root_span_id"].shift(1)) & (
        ordered["trace_id"] == ordered["trace_id"].shift(1)
    )
    overlap = ordered["seg_start"] < ordered["seg_end"].shift(1)
    assert not (same_root & overlap).any()
    return roots.height


PARTITION_FILES = [
    CORPUS / "otlp" / "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",
    CORPUS / "otlp" / "nezha-trainticket-2023-01-29-08_50.jsonl.gz",
    CORPUS / "otlp" / "otel-demo-otel-tui.jsonl",
    CORPUS / "zipkin" / "smartthings-oauth-authorization.json",
    CORPUS / "zipkin" / "messaging-kafka.json",
    CORPUS / "jaeger" / "jaeger-ui-TraceStatistics-tableValuesTestTrace-spanLongerAsParent.json",
    *sorted(FIXTURES.glob("*.jsonl.gz")),
]


@pytest.mark.parametrize("path", PARTITION_FILES, ids=lambda p: p.name)
def test_segments_partition_every_root_of_real_files(path: Path) -> None:
    table = read_spans([str(path)], strict=True).table
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert _assert_partition(frame) > 0
    # and the same after skew adjustment (the pipeline's own frames)
    result = analyze(IngestResult(frame.to_arrow(), IngestStats()))
    totals = result.path.group_by("trace_id", "root_span_id").agg(
        (pl.col("seg_end") - pl.col("seg_start")).sum().alias("total")
    )
    roots = result.spans.filter(pl.col("is_root")).select(
        s.TRACE_ID, pl.col(s.SPAN_ID).alias("root_span_id"), s.DURATION
    )
    joined = roots.join(totals, on=[s.TRACE_ID, "root_span_id"], how="left").with_columns(
        pl.col("total").fill_null(0)
    )
    assert np.array_equal(joined["total"].to_numpy(), joined[s.DURATION].to_numpy())


def test_fast_integer_id_path_matches_the_polars_join_on_sliced_chunked_tables() -> None:
    """The Arrow fast path (ids viewed as integers) must honour chunk offsets and nulls."""
    rows = [
        span(1, None, SERVER, 0, 100),
        span(2, 1, CLIENT, 10, 90),
        span(3, 2, SERVER, 20, 80, service="b", host="h2"),
        span(4, 77, SERVER, 0, 5, trace=2),
        span(5, 4, CLIENT, 1, 4, trace=2),
        span(1, None, SERVER, 0, 9, trace=3),
    ]
    table = table_from_rows(rows)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2, 3), table.slice(5)])
    for candidate in (chunked, chunked.slice(1)):
        fast = build_span_tree(candidate)
        slow = build_span_tree(pl.from_arrow(candidate))
        assert fast.parent.tolist() == slow.parent.tolist()
        assert fast.is_orphan.tolist() == slow.is_orphan.tolist()
    assert build_span_tree(chunked).parent.tolist() == [-1, 0, 1, -1, 3, -1]


def test_unique_span_id_path_matches_the_polars_join() -> None:
    """With every span id distinct the tree is found by span id alone; a parent id naming a
    span of another trace is still no parent (an orphan), as with the (trace, span) join."""
    rows = [
        span(1, None, SERVER, 0, 100),
        span(2, 1, CLIENT, 10, 90),
        span(3, 2, SERVER, 20, 80, service="b", host="h2"),
        span(4, 1, SERVER, 0, 5, trace=2),  # span 1 is in trace 1, not 2: orphan
        span(5, 4, CLIENT, 1, 4, trace=2),
        span(6, 99, SERVER, 0, 9, trace=3),  # parent id nowhere: orphan
        span(7, None, SERVER, 0, 9, trace=(1 << 64) + 1),  # same low word as trace 1
        span(8, 7, CLIENT, 1, 8, trace=(1 << 64) + 1),
    ]
    table = table_from_rows(rows)
    chunked = pa.concat_tables([table.slice(0, 3), table.slice(3)])
    for candidate in (table, chunked, chunked.slice(2)):
        fast = build_span_tree(candidate)
        slow = build_span_tree(pl.from_arrow(candidate))
        assert fast.parent.tolist() == slow.parent.tolist()
        assert fast.is_orphan.tolist() == slow.is_orphan.tolist()
    tree = build_span_tree(table)
    assert tree.parent.tolist() == [-1, 0, 1, -1, 3, -1, -1, 6]
    assert tree.is_orphan.tolist() == [False, False, False, True, False, True, False, False]


def test_empty_input_gives_an_empty_report() -> None:
    result = analyze(IngestResult(s.empty_table(), IngestStats()))
    assert result.report.input.spans == 0
    assert result.report.operations == () and result.report.hops == ()
    assert result.path.height == 0
