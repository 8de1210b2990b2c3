"""Whole-input stall statistics merged from parts (tailscope.analysis.stall_stats) equal the
single-machine ones: the input split by trace-id hash into 1, 3 and 7 parts, each part's counts
computed alone and merged, against ``client_calls`` over the whole input (its medians are
polars' own) and the detector's request counts. No Spark needed."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_paths import CORPUS, FIXTURES

from tailscope.analysis._stall_common import (
    TIMEOUT_EDGE,
    client_calls,
    instance_timestamps,
    narrow,
)
from tailscope.analysis.hourly_silences import hourly_parts, silences_from_parts
from tailscope.analysis.pipeline import prepare_spans
from tailscope.analysis.stall_stats import (
    OVERHEAD_EDGE,
    StallStats,
    evidence_subset,
    judged_ranges,
    stall_stat_parts,
    stall_stats_from_parts,
    whole_input,
)
from tailscope.analysis.stalls import detect_stalls
from tailscope.ingest import read_spans
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.schema import SpanKind
from tailscope.spark.dataset import trace_buckets

INPUTS = [
    FIXTURES / "gc-cascade.jsonl.gz",
    CORPUS / "otlp" / "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",
]


@cache
def _table(path: str) -> pa.Table:
    return read_spans([path]).table


def _narrowed(table: pa.Table) -> pl.DataFrame:
    return narrow(prepare_spans(IngestResult(table, IngestStats())).spans)


def _merged(table: pa.Table, parts: int) -> StallStats:
    bucket = np.asarray(trace_buckets(table["trace_id"], parts))
    counts = []
    for i in range(parts):
        narrowed = _narrowed(table.filter(pa.array(bucket == i)))
        counts.append(stall_stat_parts(narrowed, client_calls(narrowed)))
    return stall_stats_from_parts(
        StallStats(
            edges=pl.concat([c.edges for c in counts]),
            budgets=pl.concat([c.budgets for c in counts]),
            requests=pl.concat([c.requests for c in counts]),
        )
    )


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_stats_merged_from_parts_equal_the_whole_input_ones(path: object, parts: int) -> None:
    # GIVEN an input, its narrowed spans and client calls over the whole of it
    table = _table(str(path))
    narrowed = _narrowed(table)
    want = client_calls(narrowed)
    # WHEN the statistics are counted per part (split by trace hash) and merged
    stats = _merged(table, parts)
    # THEN the calls computed with them are the whole input's, medians and budgets exactly
    got = client_calls(narrowed, stats)
    assert got.equals(want)
    if path == INPUTS[0]:  # the real traces' calls have no instrumented children
        assert want["usual_overhead"].drop_nulls().len() > 100 and want["budget"].max()
    # AND the request counts are the detector's (SERVER spans, calls with a child per instance)
    servers = narrowed.filter(pl.col("kind") == SpanKind.SERVER).group_by("instance").len()
    requests = stats.requests.join(servers, on="instance", how="full", coalesce=True)
    assert (requests["servers"].fill_null(0) == requests["len"].fill_null(0)).all()
    called = want.drop_nulls("child_sid").group_by("child_instance").len()
    assert int(stats.requests["called"].sum()) == int(called["len"].sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50), min_size=0, max_size=9), min_size=1, max_size=5))
def test_median_from_counts_is_polars_median(groups: list[list[int]]) -> None:
    # GIVEN overheads of one edge spread over parts (some parts without calls of it)
    values = [v * 1_000_003 for g in groups for v in g]
    if not values:
        return
    frames = [
        pl.DataFrame(
            {"service": "a", "name": "op", "child_service": "b", "overhead": g},
            schema={**dict.fromkeys(OVERHEAD_EDGE, pl.String), "overhead": pl.Int64},
        )
        .with_columns(pl.col("overhead") * 1_000_003)
        .group_by(*OVERHEAD_EDGE, "overhead")
        .agg(pl.len().cast(pl.Int64).alias("calls"))
        for g in groups
    ]
    budgets = pl.DataFrame(schema={**dict.fromkeys(TIMEOUT_EDGE, pl.String), "budget": pl.Int64})
    requests = pl.DataFrame(schema={"instance": pl.String, "servers": pl.Int64, "called": pl.Int64})
    # WHEN the counts are merged
    stats = stall_stats_from_parts(StallStats(pl.concat(frames), budgets, requests))
    # THEN the median is polars' median of all the values, bit for bit
    assert stats.edges["usual_overhead"].to_list() == [pl.Series(values).median()]


def _stamps_near(stamps: pl.DataFrame) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Only the timestamps judging the kept windows reads (what an engine would fetch)."""

    def near(kept: pl.DataFrame) -> pl.DataFrame:
        t = stamps["t"].to_numpy()
        wanted = np.zeros(t.size, dtype=bool)
        for lo, hi in judged_ranges(kept).iter_rows():
            wanted |= (t >= lo) & (t <= hi)
        return stamps.filter(pl.Series(wanted))

    return near


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_detect_stalls_on_the_evidence_subset(parts: int) -> None:
    # GIVEN an input with stalls and the stalls the detector finds over all of it
    table = _table(str(INPUTS[0]))
    narrowed = _narrowed(table)
    want = detect_stalls(narrowed, narrowed=narrowed)
    # AND what is known of the whole input without its spans: the statistics merged from
    # parts, the silence stage's gaps and candidates (cut into `parts` hours), the instances
    stamps = instance_timestamps(narrowed)
    first, last = int(stamps["t"].min()), int(stamps["t"].max())  # type: ignore[arg-type]
    rows = stamps.with_columns(pl.col("instance").cast(pl.String), pl.col("t") - first)
    gaps, boundaries = hourly_parts(rows, (last - first) // parts + 1)
    gaps = gaps.with_columns(pl.col("t", "b") + first)
    candidates = silences_from_parts(gaps)
    extents = boundaries.unique("instance").select(
        "instance", pl.col("first") + first, pl.col("last") + first
    )
    instances = narrowed.group_by("instance").agg(
        pl.col("service").first(), pl.col("host").drop_nulls().first()
    )
    stats = _merged(table, parts)
    whole = whole_input(candidates, gaps, stats, extents, instances, _stamps_near(stamps))
    # WHEN the detector runs over the traces the candidate windows need, with those
    subset = evidence_subset(narrowed, candidates)
    calls = client_calls(subset, stats)
    got = detect_stalls(subset, narrowed=subset, calls=calls, whole=whole)
    # THEN it finds the same stalls, evidence and confidences (from 94 % of the spans here:
    # the many quiet candidates of slow instances touch most traces)
    assert want and got == want
    assert subset.height < narrowed.height
