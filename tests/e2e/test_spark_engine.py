"""``tailscope analyze DIR --engine spark``: a local[2] Spark run over the dataset written by
``tailscope convert --partition-by hour,bucket`` gives the report of the local run, exactly
(percentiles, bootstrap intervals, exemplars, stalls), at 1, 4 and 7 shuffle partitions.

Needs Java and PySpark (``.ci/ensure-java`` installs a headless JRE in CI); without them this
module is skipped with the reason. One SparkSession serves the whole module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from repo_paths import FIXTURES

from tailscope import schema as s
from tailscope.analysis._stall_common import client_calls, instance_timestamps, narrow
from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans
from tailscope.analysis.stalls import _gaps, _silences
from tailscope.ingest import read_spans
from tailscope.render import RenderOptions, get_renderer
from tailscope.schema import SpanKind
from tailscope.spark.dataset import NS_PER_HOUR, write_partitioned

if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java (run .ci/ensure-java): Spark engine not tested", allow_module_level=True)
if importlib.util.find_spec("pyspark") is None:
    pytest.skip("PySpark not installed (pip install '.[spark]')", allow_module_level=True)

from tailscope.spark.engine import (
    SparkOptions,
    _large_trace_ids,
    _trace_passes,
    run_silence_stage,
    run_spark,
    run_stall_stats_stage,
)

SOURCE = FIXTURES / "gc-cascade.jsonl.gz"  # stalls, cascades and runtimes as well as hops


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark") / "spans"
    done = _cli("convert", SOURCE, "-o", out, "--partition-by", "hour,bucket", "--buckets", "5")
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("hour=*/bucket=*/*.parquet"))) == 5
    return out


@pytest.fixture(scope="module")
def local_json(dataset: Path) -> str:
    done = _cli("analyze", dataset, "-f", "json", "--quiet")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tailscope-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_spark_report_equals_the_local_report(
    spark: Any, dataset: Path, local_json: str, partitions: int
) -> None:
    # GIVEN the local report of the converted dataset (CLI) and of the same spans in-process
    want = analyze(read_spans([str(dataset)]), AnalysisOptions(keep_frames=False)).report
    # WHEN Spark analyses the dataset with `partitions` shuffle partitions
    got = run_spark(
        str(dataset), AnalysisOptions(), SparkOptions(partitions=partitions), session=spark
    )
    # THEN the reports are equal field by field, percentiles exactly, and render the same JSON
    assert got.input == want.input
    assert got.operations == want.operations
    assert got.roots == want.roots
    assert got.hops == want.hops  # bootstrap intervals included
    assert got.stalls == want.stalls and got.cascades == want.cascades
    assert got == want
    assert want.stalls and want.hops and want.input.files[0].startswith(str(dataset))
    rendered = get_renderer("json").render(got, RenderOptions())
    assert json.loads(rendered) == json.loads(local_json)


def _shifted(table: pa.Table, delta_ns: int) -> pa.Table:
    """``table`` with every absolute time (span starts and ends, event times) moved by
    ``delta_ns``: the same traces at another time of day."""
    events = table[s.EVENTS].combine_chunks()
    flat = events.flatten()
    fields = [flat.field(i) for i in range(flat.type.num_fields)]
    at = flat.type.get_field_index("time_unix_nano")
    fields[at] = pc.add(fields[at], delta_ns)
    moved = pa.ListArray.from_arrays(
        events.offsets, pa.StructArray.from_arrays(fields, fields=list(flat.type))
    ).cast(events.type)
    return (
        table.set_column(
            table.schema.get_field_index(s.START), s.START, pc.add(table[s.START], delta_ns)
        )
        .set_column(table.schema.get_field_index(s.END), s.END, pc.add(table[s.END], delta_ns))
        .set_column(table.schema.get_field_index(s.EVENTS), s.EVENTS, moved)
    )


def test_traces_straddling_an_hour_boundary(spark: Any, tmp_path: Path) -> None:
    # GIVEN the spans moved so that an hour boundary falls in the middle of the run (traces in
    # flight then have spans in two `hour=` folders), written as an hour/bucket dataset
    table = read_spans([str(SOURCE)]).table
    starts = np.sort(table[s.START].to_numpy())
    middle = int(starts[starts.size // 2])
    boundary = (int(table[s.END].to_numpy().max()) // NS_PER_HOUR + 2) * NS_PER_HOUR
    moved = _shifted(table, boundary - middle)
    out = tmp_path / "spans"
    write_partitioned(moved, out, ("hour", "bucket"), buckets=3)
    hours = moved[s.START].to_numpy() // NS_PER_HOUR
    per_trace = pl.DataFrame({"t": moved[s.TRACE_ID].to_numpy(False), "h": hours})
    straddling = per_trace.group_by("t").agg(pl.col("h").n_unique()).filter(pl.col("h") > 1)
    assert straddling.height > 10 and len(list(out.glob("hour=*"))) == 2
    want = analyze(read_spans([str(out)]), AnalysisOptions(keep_frames=False)).report
    # WHEN Spark analyses it
    got = run_spark(str(out), AnalysisOptions(), SparkOptions(partitions=4), session=spark)
    # THEN the report is the local one (no trace cut at the boundary, stalls found once)
    assert got == want
    assert want.stalls and want.hops


@pytest.mark.parametrize("threshold", [0, 20])
def test_large_trace_pass(spark: Any, dataset: Path, threshold: int) -> None:
    # GIVEN a threshold under which some traces of the input are "large" (31 of 2,000 traces
    # have more than 20 spans) or the large-trace pass switched off (0)
    want = analyze(read_spans([str(dataset)]), AnalysisOptions(keep_frames=False)).report
    spans = spark.read.parquet(str(dataset))
    assert len(_trace_passes(spark, spans, 4, _large_trace_ids(spans, threshold))) == (
        2 if threshold else 1
    )
    # WHEN Spark analyses the dataset with the large traces in their own pass
    options = SparkOptions(partitions=4, large_trace_spans=threshold)
    got = run_spark(str(dataset), AnalysisOptions(), options, session=spark)
    # THEN the report is the local one
    assert got == want


def test_cli_spark_options(dataset: Path, local_json: str) -> None:
    # GIVEN the CLI with every Spark option (its own JVM: local[2], 3 partitions, large pass)
    done = _cli(
        "analyze",
        dataset,
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--spark-partitions",
        "3",
        "--spark-large-trace-spans",
        "20",
        "-f",
        "json",
        "--quiet",
    )
    # THEN it succeeds and prints the local report
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == json.loads(local_json)


def _local_candidates(dataset: Path) -> pl.DataFrame:
    """The single-machine detector's silence candidates over the dataset."""
    stamps = instance_timestamps(narrow(prepare_spans(read_spans([str(dataset)])).spans))
    return _silences(_gaps(stamps))


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_silence_stage_gives_the_local_candidates(
    spark: Any, dataset: Path, partitions: int
) -> None:
    # GIVEN the detector's silence candidates over the whole dataset, in one process
    want = _local_candidates(dataset)
    spans = read_spans([str(dataset)]).table.num_rows
    # WHEN Spark finds them per (instance, hour) and stitches them on the driver
    got = run_silence_stage(spark, str(dataset), spark_options=SparkOptions(partitions=partitions))
    # THEN they are the same windows, numbered alike, and the driver received a few rows per
    # (instance, hour) and per gap of 5 ms or more, not the spans (measured by the engine)
    assert want.height > 100
    assert got.candidates.equals(want)
    assert 0 < got.driver_rows * 4 < spans and got.driver_bytes > 0


@pytest.mark.parametrize("where", ["inside-a-silence", "after-first-timestamps"])
def test_silence_stage_across_an_hour_boundary(spark: Any, tmp_path: Path, where: str) -> None:
    # GIVEN the spans moved so that an hour boundary falls inside the longest silence of an
    # instance, or 2 ms after the first timestamp (instances whose first timestamps, and the
    # mean interval those use, lie in the previous hour)
    table = read_spans([str(SOURCE)]).table
    candidates = _local_candidates_of(table)
    longest = candidates.sort("gap").row(-1, named=True)
    at = (
        (longest["a"] + longest["b"]) // 2
        if where == "inside-a-silence"
        else int(table[s.START].to_numpy().min()) + 2_000_000
    )
    boundary = (int(table[s.END].to_numpy().max()) // NS_PER_HOUR + 2) * NS_PER_HOUR
    out = tmp_path / "spans"
    write_partitioned(_shifted(table, boundary - at), out, ("hour", "bucket"), buckets=3)
    want = _local_candidates(out)
    hour = want["a"] // NS_PER_HOUR
    stamps = instance_timestamps(narrow(prepare_spans(read_spans([str(out)])).spans))
    before = stamps.filter(pl.col("t") < boundary).group_by("instance").len()["len"]
    if where == "inside-a-silence":
        assert ((want["b"] // NS_PER_HOUR) != hour).sum() >= 1  # a straddling silence
    else:
        assert ((before > 0) & (before < 8)).any()  # first timestamps before the boundary
    # WHEN Spark finds the candidates per (instance, hour)
    got = run_silence_stage(spark, str(out), spark_options=SparkOptions(partitions=4))
    # THEN they are the single-machine ones: the straddling silence found once, the early
    # timestamps judged at the instance's whole-range mean interval
    assert got.candidates.equals(want)


def _local_candidates_of(table: pa.Table) -> pl.DataFrame:
    from tailscope.ingest.model import IngestResult, IngestStats

    stamps = instance_timestamps(narrow(prepare_spans(IngestResult(table, IngestStats())).spans))
    return _silences(_gaps(stamps))


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_stall_stats_stage_gives_the_whole_input_statistics(
    spark: Any, dataset: Path, partitions: int
) -> None:
    # GIVEN the client calls over the whole dataset, in one process (edge medians, budgets)
    narrowed = narrow(prepare_spans(read_spans([str(dataset)])).spans)
    want = client_calls(narrowed)
    # WHEN Spark computes the statistics by groupBy (medians from ranked counts per edge)
    got = run_stall_stats_stage(
        spark, str(dataset), spark_options=SparkOptions(partitions=partitions)
    )
    # THEN client_calls with them is the whole input's, and the driver got a few rows per edge
    assert client_calls(narrowed, got.stats).equals(want)
    servers = narrowed.filter(pl.col("kind") == SpanKind.SERVER).height
    assert int(got.stats.requests["servers"].sum()) == servers
    assert 0 < got.driver_rows < want["usual_overhead"].drop_nulls().len() // 20
