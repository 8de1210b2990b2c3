"""The engine-neutral kernels (tailscope.analysis.kernels) give the single-machine report however
the input is split by trace: 1, 3 and 7 parts by a hash of the trace id, and small Arrow batches
streamed through the Spark partition function with a trace carried across batch boundaries
(no Spark needed: that function is plain pyarrow)."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_paths import CORPUS, FIXTURES

from tailscope.analysis.kernels import (
    KERNEL_COLUMNS,
    STALL_INPUT_COLUMNS,
    StallInputs,
    StallSections,
    TracePartials,
    clock_offsets_from_counts,
    report_from_partials,
    stall_inputs,
    stall_sections_from_inputs,
    trace_partials,
    whole_input_stall_sections,
)
from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans
from tailscope.ingest import read_spans
from tailscope.ingest.model import IngestResult
from tailscope.report.model import Report, Stall
from tailscope.spark.dataset import trace_buckets
from tailscope.spark.engine import stall_kernel, trace_kernel

INPUTS = [
    FIXTURES / "gc-cascade.jsonl.gz",  # stalls, cascades, runtimes
    FIXTURES / "slow-dependency.jsonl.gz",
    CORPUS / "otlp" / "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",  # real, untidy traces
]


@cache
def _local(path: str) -> tuple[IngestResult, Report, StallSections]:
    ingest = read_spans([path])
    report = analyze(ingest, AnalysisOptions(keep_frames=False)).report
    sections = whole_input_stall_sections(prepare_spans(ingest))
    return ingest, report, sections


def _diff(got: Report, want: Report) -> str:
    for field in dataclasses.fields(Report):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if a != b:
            return f"{field.name}: {a!r:.300} != {b!r:.300}"
    return ""


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_split_by_trace_hash_gives_the_local_report(path: object, parts: int) -> None:
    # GIVEN the local report of an input and the same spans split into parts by trace-id hash
    ingest, want, sections = _local(str(path))
    table = ingest.table.select(list(KERNEL_COLUMNS))
    bucket = np.asarray(trace_buckets(table["trace_id"], parts))
    assert {int(b) for b in bucket} == set(range(parts))
    # WHEN each part is analysed alone (shipped as Arrow IPC, as an engine does) and merged
    shipped = [
        row
        for i in range(parts)
        for row in trace_partials(table.filter(pa.array(bucket == i)), sections=sections).to_ipc()
    ]
    got = report_from_partials(TracePartials.from_ipc(shipped), ingest.stats, sections=sections)
    # THEN the report is the local one, exactly (percentiles, intervals, exemplars, counts)
    assert got == want, _diff(got, want)
    assert want.hops and want.operations


def test_traces_carried_across_batches() -> None:
    # GIVEN spans sorted by trace id, cut into 997-row batches (most cuts fall inside a trace)
    ingest, want, sections = _local(str(INPUTS[0]))
    table = ingest.table.select(list(KERNEL_COLUMNS)).sort_by("trace_id")
    batches = table.to_batches(max_chunksize=997)
    assert len(batches) > 30
    # WHEN they stream through the partition function of the Spark trace stage
    rows = [
        (name, data)
        for out in trace_kernel(iter(batches), AnalysisOptions(), sections)
        for name, data in zip(out["name"].to_pylist(), out["data"].to_pylist(), strict=True)
    ]
    got = report_from_partials(TracePartials.from_ipc(rows), ingest.stats, sections=sections)
    # THEN no trace was cut in two: the report is the local one
    assert got == want, _diff(got, want)


def test_a_trace_cut_in_two_changes_the_report() -> None:
    """The equality above is not vacuous: parts that split traces give another report."""
    ingest, want, sections = _local(str(INPUTS[0]))
    table = ingest.table.select(list(KERNEL_COLUMNS))
    half = table.num_rows // 2
    shipped = [
        row
        for part in (table.slice(0, half), table.slice(half))
        for row in trace_partials(part).to_ipc()
    ]
    got = report_from_partials(TracePartials.from_ipc(shipped), ingest.stats, sections=sections)
    assert got != want


def test_merged_percentiles_equal_numpy_nearest_rank() -> None:
    """Independent reference: each operation's merged p99 is within the histogram's resolution
    (0.1 % or 1 µs: recorded in whole µs) of the raw duration at HdrHistogram's rank
    (round(q * n), numpy sort), and never above the maximum."""
    ingest, want, _ = _local(str(INPUTS[1]))
    spans = prepare_spans(ingest).spans
    checked = 0
    for op in want.operations:
        durations = (
            spans.filter(
                (spans["service_name"].cast(str) == op.service)
                & (spans["name"].cast(str) == op.operation)
            )["duration_ns"]
            .clip(lower_bound=0)
            .to_numpy()
        )
        if durations.size != op.count:
            continue  # the same name under another kind
        rank = max(int(0.99 * durations.size + 0.5), 1)
        exact = float(np.sort(durations)[rank - 1]) / 1e6
        assert exact - 1e-3 - 1e-9 <= op.p99_ms <= max(exact * 1.001, exact + 1e-3) + 1e-9
        assert op.p99_ms <= op.max_ms
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_stall_inputs_split_by_trace_hash_give_the_local_stall_sections(
    path: object, parts: int
) -> None:
    # GIVEN the stall sections of the whole input and the spans split by trace-id hash
    ingest, _, want = _local(str(path))
    table = ingest.table.select(list(KERNEL_COLUMNS))
    bucket = np.asarray(trace_buckets(table["trace_id"], parts))
    # WHEN each part's stall inputs are computed alone, shipped as Arrow IPC and stacked
    table = table.select(list(STALL_INPUT_COLUMNS))  # no attributes: not needed
    shipped = [
        row
        for i in range(parts)
        for row in stall_inputs(table.filter(pa.array(bucket == i))).to_ipc()
    ]
    got = stall_sections_from_inputs(StallInputs.from_ipc(shipped))
    # THEN stalls, cascades, unexplained timeouts, runtimes and clock offsets are the local ones
    assert got == want


def test_stall_inputs_streamed_through_the_spark_partition_function() -> None:
    # GIVEN spans sorted by trace id, cut into 997-row batches
    ingest, _, want = _local(str(INPUTS[0]))
    table = ingest.table.select(list(KERNEL_COLUMNS)).sort_by("trace_id")
    # WHEN they stream through the partition function of the Spark stall stage
    rows = [
        (name, data)
        for out in stall_kernel(
            iter(table.select(list(STALL_INPUT_COLUMNS)).to_batches(max_chunksize=997)),
            AnalysisOptions(),
        )
        for name, data in zip(out["name"].to_pylist(), out["data"].to_pylist(), strict=True)
    ]
    got = stall_sections_from_inputs(StallInputs.from_ipc(rows))
    # THEN the sections are the local ones (stalls found: the check is not vacuous)
    assert got == want and want.stalls and want.clock_offsets


def test_stall_inputs_are_smaller_than_the_kernel_columns() -> None:
    ingest, _, _ = _local(str(INPUTS[0]))
    table = ingest.table.select(list(KERNEL_COLUMNS))
    inputs = stall_inputs(table)
    assert inputs.narrowed.height == table.num_rows
    assert inputs.narrowed.estimated_size() < table.nbytes
    assert inputs.clock_shifts.height < table.num_rows


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(-(10**12), 10**12)),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 4),
)
def test_clock_offsets_from_counts_equal_numpy_median(
    shifts: list[tuple[str, int]], parts: int
) -> None:
    """Independent reference: numpy.median of every span's shift, per instance, from counts
    summed over ``parts`` arbitrary parts (duplicated keys across parts, as engines stack)."""
    frame = pl.DataFrame(
        {
            "service": ["svc"] * len(shifts),
            "instance": [i for i, _ in shifts],
            "shift_ns": [v for _, v in shifts],
        },
        schema={"service": pl.String, "instance": pl.String, "shift_ns": pl.Int64},
    ).with_row_index("_row")
    counts = (
        frame.with_columns((pl.col("_row") % parts).alias("_part"))
        .group_by("_part", "service", "instance", "shift_ns")
        .agg(pl.len().cast(pl.Int64).alias("spans"))
        .drop("_part")
    )
    stalls = [_stall("a"), _stall("b"), _stall("nobody")]
    got = clock_offsets_from_counts(counts, stalls)
    for instance in ("a", "b"):
        values = np.array([v for i, v in shifts if i == instance], dtype=np.int64)
        want = int(np.median(values)) if values.size else 0
        assert got[("svc", instance)] == want
    assert got[("svc", "nobody")] == 0


def _stall(instance: str) -> Stall:
    return Stall(
        service="svc",
        instance=instance,
        host=None,
        start_unix_nano=0,
        end_unix_nano=1,
        duration_ms=1e-6,
        spans_affected=0,
        queued_requests=0,
        confidence=0.5,
        kind="process",
        evidence=(),
    )
