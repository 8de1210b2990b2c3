"""The Spark driver: stages over a Parquet span dataset, one report.

0. **Staging**: only :data:`~tailscope.analysis.kernels.KERNEL_COLUMNS` are read; traces above
   ``large_trace_spans`` spans go to a pass of their own (:func:`_trace_passes`); each pass is
   ``repartition(P, trace_id)`` and ``sortWithinPartitions(trace_id, start)``, and its kernels
   stream a partition batch by batch, carrying the unfinished last trace of a batch into the
   next (:func:`whole_traces`; memory: one batch plus the largest trace).
1. **Stalls**: :func:`stall_kernel` computes each trace's
   :class:`~tailscope.analysis.kernels.StallInputs` on the cluster; the driver stacks the
   narrowed columns and runs the single-machine detectors over them, then takes the stalled
   instances' clock offsets from shift counts summed by a ``groupBy`` — detection itself is
   *not* per (instance, hour): see ``docs/scale-out.md``, *Limits* (skipped with
   ``--no-stalls``). Built but not yet used by the report: the silence candidates per
   (instance, hour) with boundary summaries (:func:`silence_stage`) and the whole input's
   stall statistics by ``groupBy`` (:func:`stall_stats_stage`), both equal to the
   single-machine ones.
2. **Traces**: :func:`trace_kernel` runs
   :func:`~tailscope.analysis.kernels.trace_partials` with the stall sections broadcast.
3. **Percentiles**: the kernels' HdrHistogram partials per (operation, minute) are merged with
   ``groupBy(...).applyInArrow`` (bucket counts added), then per operation on the driver.

The report is built by :func:`~tailscope.analysis.kernels.report_from_partials`, the same
report model and renderers as the local run. PySpark is imported only here, when the engine
runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from tailscope import schema as s
from tailscope.analysis._stall_common import instance_timestamps
from tailscope.analysis.hourly_silences import (
    NS_PER_HOUR,
    hour_boundaries,
    hour_parts,
    hour_stamps,
    hour_summary,
    silences_from_parts,
)
from tailscope.analysis.kernels import (
    KERNEL_COLUMNS,
    STALL_INPUT_COLUMNS,
    StallInputs,
    StallSections,
    TracePartials,
    clock_offsets_from_counts,
    ipc_table,
    kernel_table,
    merge_operation_partials,
    report_from_partials,
    stall_inputs,
    stall_sections_from_inputs,
    trace_partials,
)
from tailscope.analysis.pipeline import AnalysisOptions
from tailscope.analysis.stall_stats import StallStats
from tailscope.errors import InputError, TailscopeError, UsageError
from tailscope.ingest.model import IngestStats
from tailscope.report.model import ProblemEntry
from tailscope.types import DEFAULT_LARGE_TRACE_SPANS

if TYPE_CHECKING:
    import polars as pl

    from tailscope.report.model import Report

DEFAULT_BATCH_ROWS: Final = 200_000
"""Spans per Arrow batch handed to the kernel (``spark.sql.execution.arrow.maxRecordsPerBatch``)."""

PARTIAL_SCHEMA: Final = pa.schema([pa.field("name", pa.string()), pa.field("data", pa.binary())])
_PARTIAL_DDL: Final = "name string, data binary"

OPERATION_SCHEMA: Final = pa.schema(
    [
        pa.field("service", pa.string()),
        pa.field("operation", pa.string()),
        pa.field("kind", pa.int8()),
        pa.field("minute", pa.int64()),
        pa.field("errors", pa.int64()),
        pa.field("max_ns", pa.int64()),
        pa.field(
            "slowest",
            pa.list_(
                pa.struct([pa.field(s.DURATION, pa.int64()), pa.field(s.TRACE_ID, pa.binary())])
            ),
        ),
        pa.field("count", pa.int64()),
        pa.field("histogram", pa.string()),
    ]
)
_OPERATION_DDL: Final = (
    "service string, operation string, kind tinyint, minute bigint, errors bigint, "
    f"max_ns bigint, slowest array<struct<{s.DURATION}: bigint, {s.TRACE_ID}: binary>>, "
    "count bigint, histogram string"
)


class EngineUnavailable(UsageError):
    """The Spark engine cannot start here (no Java, no PySpark): exit code 2."""


class EngineFailed(TailscopeError):
    """The Spark job failed (a lost JVM, an executor out of memory ...): exit code 2."""


@dataclass(frozen=True, slots=True)
class SparkOptions:
    """How to run on Spark."""

    master: str | None = None
    """``local[2]``, ``spark://host:7077``, ``yarn`` ...; None: what ``spark-submit`` or the
    Spark defaults say."""
    partitions: int | None = None
    """Shuffle partitions ``P`` of the trace and percentile stages; None: Spark's
    ``spark.sql.shuffle.partitions``."""
    batch_rows: int = DEFAULT_BATCH_ROWS
    large_trace_spans: int = DEFAULT_LARGE_TRACE_SPANS
    """Traces of more spans than this are analysed in a separate pass (0: one pass)."""
    driver_memory: str = "4g"
    """``spark.driver.memory`` of a JVM started here (with ``local[N]`` the executors run in
    it too; the stall stage and the partials are collected into it). Ignored under
    ``spark-submit``, whose ``--driver-memory`` applies."""


def check_java() -> str:
    """The ``java`` executable Spark will start, or :class:`EngineUnavailable`."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise EngineUnavailable(
            "--engine spark needs Java 17 or newer, and there is no `java` on PATH and no "
            "JAVA_HOME: install a JRE (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) "
            "or use --engine local"
        )
    return found


def _import_pyspark() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineUnavailable(
            "--engine spark needs PySpark: pip install 'tailscope[spark]'"
        ) from None
    return SparkSession


def _ipc_rows(partials: TracePartials | StallInputs) -> pa.RecordBatch:
    names, blobs = zip(*partials.to_ipc(), strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(names, pa.string()), pa.array(blobs, pa.binary())], schema=PARTIAL_SCHEMA
    )


def whole_traces(
    batches: Iterator[pa.RecordBatch], columns: Sequence[str] = KERNEL_COLUMNS
) -> Iterator[pa.Table]:
    """Batches of one partition, sorted by trace id, regrouped into tables of whole traces
    (``columns``, in their span-schema types): the last trace of a batch may continue in the
    next one, so it is carried over and handed out with it (memory: one batch plus the
    largest trace)."""
    carry: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = kernel_table(pa.Table.from_batches([batch]), columns)
        if carry is not None:
            table = pa.concat_tables([carry, table])
        ids = table[s.TRACE_ID]
        cut = pc.index(ids, ids[len(ids) - 1]).as_py()  # first row of the last trace
        carry = table.slice(cut)
        if cut > 0:
            yield table.slice(0, cut)
    if carry is not None:
        yield carry


def trace_kernel(
    batches: Iterator[pa.RecordBatch], options: AnalysisOptions, sections: StallSections
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of the trace stage: batches of one partition, sorted by
    trace id, in; partials of every trace out (:func:`whole_traces`)."""
    for table in whole_traces(batches):
        yield _ipc_rows(trace_partials(table, options, sections))


def stall_kernel(
    batches: Iterator[pa.RecordBatch], options: AnalysisOptions
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of the stall stage: partitions as :func:`trace_kernel`'s
    (:data:`~tailscope.analysis.kernels.STALL_INPUT_COLUMNS` only) in; each trace's
    :class:`~tailscope.analysis.kernels.StallInputs` out (narrowed columns, shift counts)."""
    for table in whole_traces(batches, STALL_INPUT_COLUMNS):
        yield _ipc_rows(stall_inputs(table, options))


def _blob_rows(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """One kind of partial (IPC blobs in ``data``) back to rows of ``schema``, for a
    ``groupBy`` that merges them: operation partials in stage 3, clock-shift counts in the
    stall stage (``mapInArrow(partial(_blob_rows, schema=...))``)."""
    for batch in batches:
        for data in batch.column("data").to_pylist():
            yield from ipc_table(data).select(schema.names).cast(schema).to_batches()


def _merge_group(table: pa.Table) -> pa.Table:
    """The ``applyInArrow`` function of stage 3: one (operation, minute) group merged."""
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    merged = merge_operation_partials(frame).to_arrow()
    return merged.select(OPERATION_SCHEMA.names).cast(OPERATION_SCHEMA)


def _input_files(frame: Any) -> list[str]:
    files: list[str] = []
    for uri in sorted(frame.inputFiles()):
        files.append(uri.removeprefix("file://") if uri.startswith("file:///") else uri)
    return files


def run_spark(
    dataset: str,
    options: AnalysisOptions | None = None,
    spark_options: SparkOptions | None = None,
    session: Any = None,
) -> Report:
    """Analyse the Parquet span dataset at ``dataset`` (a path or URI Spark reads) on Spark.

    ``session``: an existing ``SparkSession`` (else one is started with ``spark_options`` and
    stopped at the end). Raises :class:`EngineUnavailable` without Java or PySpark and
    :class:`~tailscope.errors.InputError` when the dataset cannot be read as spans.
    """
    options = options or AnalysisOptions()
    spark_options = spark_options or SparkOptions()
    check_java()
    spark_session = _import_pyspark()
    own = session is None
    if own:
        if spark_options.master is None or spark_options.master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = spark_session.builder.appName("tailscope").config("spark.ui.enabled", "false")
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        builder = builder.config("spark.driver.memory", spark_options.driver_memory)
        builder = builder.config("spark.driver.maxResultSize", "0")  # partials are collected
        if spark_options.master is not None:
            builder = builder.master(spark_options.master)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    try:
        return _run(session, dataset, options, spark_options)
    except TailscopeError:
        raise
    except Exception as exc:  # Py4J / Spark failures: one line, not a JVM stack trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineFailed(f"the Spark job failed: {first[:500]}") from None
    finally:
        if own:
            with contextlib.suppress(Exception):  # the JVM may be gone (died with the job)
                session.stop()


def _run(
    session: Any, dataset: str, options: AnalysisOptions, spark_options: SparkOptions
) -> Report:
    import polars as pl

    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", spark_options.batch_rows)
    partitions = spark_options.partitions or int(session.conf.get("spark.sql.shuffle.partitions"))
    spans = _read_spans(session, dataset)
    stats = IngestStats(files=_input_files(spans))

    large = _large_trace_ids(spans, spark_options.large_trace_spans)
    # stage 1: stall inputs per trace on the cluster, detection on the driver
    sections = StallSections()
    problems: list[ProblemEntry] = []
    if options.detect_stalls:
        staged = _trace_passes(session, spans.select(*STALL_INPUT_COLUMNS), partitions, large)
        sections, problems = _stall_stage(session, staged, options)

    # stage 2: traces
    staged = _trace_passes(session, spans, partitions, large)
    partials = _map_passes(
        staged, partial(trace_kernel, options=options, sections=sections)
    ).persist()
    try:
        others = partials.filter("name != 'operations'").toArrow()
        # stage 3: percentiles, merged per (operation, minute) on the cluster
        operations = (
            partials.filter("name = 'operations'")
            .mapInArrow(partial(_blob_rows, schema=OPERATION_SCHEMA), _OPERATION_DDL)
            .repartition(partitions, "service", "operation", "kind", "minute")
            .groupBy("service", "operation", "kind", "minute")
            .applyInArrow(_merge_group, _OPERATION_DDL)
            .toArrow()
        )
    finally:
        partials.unpersist()
    merged = TracePartials.from_ipc(
        zip(others["name"].to_pylist(), others["data"].to_pylist(), strict=True)
    )
    op_frame = pl.from_arrow(operations)
    assert isinstance(op_frame, pl.DataFrame)
    merged = TracePartials(
        requests=merged.requests,
        hop_times=merged.hop_times,
        operations=op_frame.cast({"kind": pl.Int8}) if op_frame.height else merged.operations,
        totals=merged.totals,
        services=merged.services,
        root_keys=merged.root_keys,
    )
    return report_from_partials(merged, stats, options, sections, problems)


def _read_spans(session: Any, dataset: str) -> Any:
    """The kernel columns of the Parquet span dataset at ``dataset``, or
    :class:`~tailscope.errors.InputError`."""
    try:
        spans = session.read.parquet(dataset)
        return spans.select(*KERNEL_COLUMNS)
    except Exception as exc:  # AnalysisException: missing path, not Parquet, no columns
        raise InputError(f"{dataset}: cannot read as a span dataset ({exc})") from None


_SHIFT_SCHEMA: Final = pa.schema(
    [
        pa.field("service", pa.string()),
        pa.field("instance", pa.string()),
        pa.field("shift_ns", pa.int64()),
        pa.field("spans", pa.int64()),
    ]
)
_SHIFT_DDL: Final = "service string, instance string, shift_ns bigint, spans bigint"


def _large_trace_ids(spans: Any, large_trace_spans: int) -> list[bytes]:
    """Ids of the traces of more than ``large_trace_spans`` spans (none when it is 0), from a
    ``groupBy(trace_id).count()`` on the cluster."""
    import pyspark.sql.functions as sf

    if large_trace_spans <= 0:
        return []
    rows = (
        spans.groupBy(s.TRACE_ID)
        .count()
        .filter(sf.col("count") > large_trace_spans)
        .select(s.TRACE_ID)
        .collect()
    )
    return sorted(bytes(row[0]) for row in rows)


def _trace_passes(session: Any, spans: Any, partitions: int, large_ids: list[bytes]) -> list[Any]:
    """The span data frames the per-trace kernels run over, each ``repartition``-ed by trace
    id and sorted by (trace id, start) within partitions: one pass over every trace, or, with
    ``large_ids`` (:func:`_large_trace_ids`), one over the other traces and a separate one over
    those, spread over up to ``partitions`` partitions of their own (a task of the main pass
    then holds one batch plus a trace of at most ``large_trace_spans`` spans, and a giant trace
    does not stretch the main pass)."""
    import pyspark.sql.functions as sf

    def staged(frame: Any, parts: int) -> Any:
        return frame.repartition(parts, s.TRACE_ID).sortWithinPartitions(s.TRACE_ID, s.START)

    if not large_ids:
        return [staged(spans, partitions)]
    large = sf.broadcast(
        session.createDataFrame([(i,) for i in large_ids], spans.select(s.TRACE_ID).schema)
    )
    return [
        staged(spans.join(large, s.TRACE_ID, "left_anti"), partitions),
        staged(spans.join(large, s.TRACE_ID, "left_semi"), min(len(large_ids), partitions)),
    ]


def _map_passes(passes: list[Any], kernel: Any) -> Any:
    """``mapInArrow(kernel)`` over every pass of :func:`_trace_passes`, as one data frame."""
    mapped = [frame.mapInArrow(kernel, _PARTIAL_DDL) for frame in passes]
    out = mapped[0]
    for other in mapped[1:]:
        out = out.unionByName(other)
    return out


def _stall_stage(
    session: Any, staged: list[Any], options: AnalysisOptions
) -> tuple[StallSections, list[ProblemEntry]]:
    """Stalls, cascades, unexplained timeouts, runtimes and the stalled instances' clock
    offsets. The per-trace preparation runs on the cluster (:func:`stall_kernel` over the
    trace stage's partitions); the driver receives the narrowed span columns (one partition at
    a time) and runs the single-machine detectors over them (see ``docs/scale-out.md``,
    *Limits*). The clock-shift counts of the stalled instances only are then summed per
    (service, instance, shift) by a ``groupBy`` and give their median shifts exactly."""
    import polars as pl
    import pyspark.sql.functions as sf

    inputs_rows = _map_passes(staged, partial(stall_kernel, options=options)).persist()
    try:
        inputs_rows.count()  # every partition computed in parallel, before the driver reads
        narrowed = [
            ("narrowed", bytes(row["data"]))
            for row in inputs_rows.filter("name = 'narrowed'").toLocalIterator()
        ]
        inputs = StallInputs.from_ipc(narrowed)
        del narrowed
        try:
            sections = stall_sections_from_inputs(inputs)
        except Exception as exc:  # as the local pipeline: a failing detector keeps the report
            problem = ProblemEntry(
                file="<analysis>",
                line=None,
                reason=f"stall/cascade analysis failed: {type(exc).__name__}: {exc}",
            )
            return StallSections(), [problem]
        del inputs
        if not sections.stalls:
            return sections, []
        stalled = session.createDataFrame(
            sorted({(st.service, st.instance) for st in sections.stalls}),
            "service string, instance string",
        )
        shifts = (
            inputs_rows.filter("name = 'clock_shifts'")
            .mapInArrow(partial(_blob_rows, schema=_SHIFT_SCHEMA), _SHIFT_DDL)
            .join(sf.broadcast(stalled), ["service", "instance"], "left_semi")
            .groupBy("service", "instance", "shift_ns")
            .agg(sf.sum("spans").cast("bigint").alias("spans"))
            .toArrow()
        )
    finally:
        inputs_rows.unpersist()
    counts = pl.from_arrow(shifts)
    assert isinstance(counts, pl.DataFrame)
    offsets = clock_offsets_from_counts(counts, sections.stalls)
    return dataclasses.replace(sections, clock_offsets=offsets), []


_STAMP_SCHEMA: Final = pa.schema(
    [
        pa.field("instance", pa.string()),
        pa.field("hour", pa.int64()),
        pa.field("t", pa.int64()),
        pa.field("starts", pa.int32()),
    ]
)
_STAMP_DDL: Final = "instance string, hour bigint, t bigint, starts int"
_SUMMARY_SCHEMA: Final = pa.schema(
    [
        pa.field("instance", pa.string()),
        pa.field("hour", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("starts", pa.int64()),
        pa.field("first", pa.int64()),
        pa.field("last", pa.int64()),
        pa.field("tail", pa.list_(pa.int64())),
    ]
)
_SUMMARY_DDL: Final = (
    "instance string, hour bigint, n bigint, starts bigint, first bigint, last bigint, "
    "tail array<bigint>"
)
_PART_SCHEMA: Final = pa.schema(
    [
        pa.field("instance", pa.string()),
        pa.field("t", pa.int64()),
        pa.field("b", pa.int64()),
        pa.field("gap", pa.int64()),
        pa.field("mean_interval", pa.float64()),
        pa.field("started", pa.int64()),
        pa.field("surprise", pa.float64()),
    ]
)
_PART_DDL: Final = (
    "instance string, t bigint, b bigint, gap bigint, mean_interval double, started bigint, "
    "surprise double"
)


@dataclass(frozen=True, slots=True)
class SilenceStage:
    """Stall stage 3's first step, on the cluster: every instance's silence candidates."""

    candidates: pl.DataFrame
    """The candidate windows of the whole input (the columns of ``stalls._silences``), equal to
    the single-machine detector's."""
    parts: pl.DataFrame
    """Every gap of at least 5 ms of every instance
    (:data:`~tailscope.analysis.hourly_silences.PART_SCHEMA`)."""
    driver_rows: int
    """Rows the driver received: one summary per (instance, hour) plus the parts."""
    driver_bytes: int
    """Their Arrow bytes."""


def stamp_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function from stall inputs (IPC blobs of narrowed spans, whole
    traces) to timestamp rows keyed by (instance, hour): each part's
    :func:`~tailscope.analysis._stall_common.instance_timestamps` (a timestamp shared by
    several parts is added up per (instance, hour) group)."""
    import polars as pl

    for batch in batches:
        for data in batch.column("data").to_pylist():
            narrowed = pl.from_arrow(ipc_table(data))
            assert isinstance(narrowed, pl.DataFrame)
            stamps = instance_timestamps(narrowed).select(
                pl.col("instance").cast(pl.String),
                (pl.col("t") // NS_PER_HOUR).alias("hour"),
                "t",
                "starts",
            )
            yield from stamps.to_arrow().cast(_STAMP_SCHEMA).to_batches()


def _hour_group(table: pa.Table) -> pl.DataFrame:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return hour_stamps(frame.drop("hour"))


def _summary_group(table: pa.Table) -> pa.Table:
    """The ``applyInArrow`` function of one (instance, hour): its summary."""
    summary = hour_summary(_hour_group(table), int(table["hour"][0].as_py()))
    return summary.to_arrow().cast(_SUMMARY_SCHEMA)


def _parts_group(table: pa.Table, boundaries: dict[tuple[str | None, int], Any]) -> pa.Table:
    """The ``applyInArrow`` function of one (instance, hour): its gaps of at least 5 ms, from
    its timestamps and its boundary summary."""
    key = (table["instance"][0].as_py(), int(table["hour"][0].as_py()))
    return hour_parts(_hour_group(table), boundaries[key]).to_arrow().cast(_PART_SCHEMA)


def _parts_function(boundaries: Any) -> Callable[[pa.Table], pa.Table]:
    """:func:`_parts_group` with the boundaries (a Spark broadcast of the dict, sent once per
    executor rather than with every task) bound (``applyInArrow`` reads the type hints of the
    function it is given, which a ``functools.partial`` has not)."""

    def parts(table: pa.Table) -> pa.Table:
        return _parts_group(table, boundaries.value)

    return parts


def silence_stage(inputs_rows: Any, partitions: int) -> SilenceStage:
    """Silence candidates per (instance, hour) on the cluster, stitched on the driver: the
    stall inputs' timestamps ``repartition(P, instance, hour)``; one ``applyInArrow`` pass
    summarises each (instance, hour) group, the driver derives every group's boundary
    summary from those rows (:func:`~tailscope.analysis.hourly_silences.hour_boundaries`) and
    a second pass, with them, gives each group's gaps of at least 5 ms; the driver stitches
    them into the candidate windows (see :mod:`tailscope.analysis.hourly_silences`)."""
    import polars as pl

    stamps = (
        inputs_rows.filter("name = 'narrowed'")
        .mapInArrow(stamp_kernel, _STAMP_DDL)
        .repartition(partitions, "instance", "hour")
        .persist()
    )
    try:
        summaries = (
            stamps.groupBy("instance", "hour").applyInArrow(_summary_group, _SUMMARY_DDL).toArrow()
        )
        summary_frame = pl.from_arrow(summaries)
        assert isinstance(summary_frame, pl.DataFrame)
        boundaries = {
            (row["instance"], int(row["hour"])): row
            for row in hour_boundaries(summary_frame).iter_rows(named=True)
        }
        shared = stamps.sparkSession.sparkContext.broadcast(boundaries)
        parts = (
            stamps.groupBy("instance", "hour")
            .applyInArrow(_parts_function(shared), _PART_DDL)
            .toArrow()
        )
        shared.unpersist()
    finally:
        stamps.unpersist()
    part_frame = pl.from_arrow(parts)
    assert isinstance(part_frame, pl.DataFrame)
    return SilenceStage(
        candidates=silences_from_parts(part_frame),
        parts=part_frame,
        driver_rows=summaries.num_rows + parts.num_rows,
        driver_bytes=summaries.nbytes + parts.nbytes,
    )


def run_silence_stage(
    session: Any,
    dataset: str,
    options: AnalysisOptions | None = None,
    spark_options: SparkOptions | None = None,
) -> SilenceStage:
    """The stall inputs of the dataset at ``dataset`` (stage 1, on the cluster) and from them
    the silence candidates per (instance, hour) (:func:`silence_stage`), on ``session``."""
    with _stall_input_rows(session, dataset, options, spark_options) as (rows, partitions):
        return silence_stage(rows, partitions)


def run_stall_stats_stage(
    session: Any,
    dataset: str,
    options: AnalysisOptions | None = None,
    spark_options: SparkOptions | None = None,
) -> StatsStage:
    """The stall inputs of the dataset at ``dataset`` (stage 1, on the cluster) and from them
    the whole input's stall statistics (:func:`stall_stats_stage`), on ``session``."""
    with _stall_input_rows(session, dataset, options, spark_options) as (rows, _):
        return stall_stats_stage(rows)


@contextlib.contextmanager
def _stall_input_rows(
    session: Any,
    dataset: str,
    options: AnalysisOptions | None,
    spark_options: SparkOptions | None,
) -> Iterator[tuple[Any, int]]:
    """The persisted stall inputs of stage 1 over the dataset, and ``P``."""
    options = options or AnalysisOptions()
    spark_options = spark_options or SparkOptions()
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", spark_options.batch_rows)
    partitions = spark_options.partitions or int(session.conf.get("spark.sql.shuffle.partitions"))
    spans = _read_spans(session, dataset)
    large = _large_trace_ids(spans, spark_options.large_trace_spans)
    staged = _trace_passes(session, spans.select(*STALL_INPUT_COLUMNS), partitions, large)
    inputs_rows = _map_passes(staged, partial(stall_kernel, options=options)).persist()
    try:
        yield inputs_rows, partitions
    finally:
        inputs_rows.unpersist()


_STAT_SCHEMA: Final = pa.schema(
    [
        pa.field("what", pa.string()),
        pa.field("service", pa.string()),
        pa.field("name", pa.string()),
        pa.field("other", pa.string()),
        pa.field("value", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("called", pa.int64()),
    ]
)
_STAT_DDL: Final = (
    "what string, service string, name string, other string, value bigint, n bigint, called bigint"
)


def stat_kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function from stall inputs (IPC blobs of narrowed spans, whole
    traces) to the counts of :func:`~tailscope.analysis.stall_stats.stall_stat_parts`, as rows
    of one schema: ``what`` = ``edge`` (``service``, ``name``, ``other`` = callee service,
    ``value`` = overhead ns, ``n`` calls), ``budget`` (``other`` = target, ``value`` = shortest
    timed-out call ns) or ``requests`` (``service`` = the instance, ``n`` SERVER spans,
    ``called``)."""
    import polars as pl

    from tailscope.analysis._stall_common import client_calls
    from tailscope.analysis.stall_stats import stall_stat_parts

    text = pl.String
    for batch in batches:
        for data in batch.column("data").to_pylist():
            narrowed = pl.from_arrow(ipc_table(data))
            assert isinstance(narrowed, pl.DataFrame)
            parts = stall_stat_parts(narrowed, client_calls(narrowed))
            rows = [
                parts.edges.select(
                    what=pl.lit("edge"),
                    service=pl.col("service").cast(text),
                    name=pl.col("name").cast(text),
                    other=pl.col("child_service").cast(text),
                    value=pl.col("overhead"),
                    n=pl.col("calls"),
                    called=pl.lit(0, pl.Int64),
                ),
                parts.budgets.select(
                    what=pl.lit("budget"),
                    service=pl.col("service").cast(text),
                    name=pl.col("name").cast(text),
                    other=pl.col("target").cast(text),
                    value=pl.col("budget"),
                    n=pl.lit(1, pl.Int64),
                    called=pl.lit(0, pl.Int64),
                ),
                parts.requests.select(
                    what=pl.lit("requests"),
                    service=pl.col("instance").cast(text),
                    name=pl.lit(None, text),
                    other=pl.lit(None, text),
                    value=pl.lit(0, pl.Int64),
                    n=pl.col("servers"),
                    called=pl.col("called"),
                ),
            ]
            yield from pl.concat(rows).to_arrow().cast(_STAT_SCHEMA).to_batches()


@dataclass(frozen=True, slots=True)
class StatsStage:
    """The whole input's stall statistics, computed on the cluster."""

    stats: StallStats
    driver_rows: int
    """Rows the driver received: the middle overheads (one or two per call edge), one budget
    per timeout edge, one request count per instance."""


def stall_stats_stage(inputs_rows: Any) -> StatsStage:
    """:class:`~tailscope.analysis.stall_stats.StallStats` of the whole input by ``groupBy``
    on the cluster, exactly as :func:`~tailscope.analysis.stall_stats.stall_stats_from_parts`
    merges them: per call edge the counts of each distinct overhead are summed, a running
    total over the edge's sorted overheads (a window per edge) finds the one or two middle
    values, and only those reach the driver, which interpolates them as polars' ``median``."""
    import polars as pl
    import pyspark.sql.functions as sf
    from pyspark.sql import Window

    from tailscope.analysis._stall_common import as_names

    rows = inputs_rows.filter("name = 'narrowed'").mapInArrow(stat_kernel, _STAT_DDL).persist()
    try:
        edge = ["service", "name", "other"]
        counts = (
            rows.filter("what = 'edge'")
            .groupBy(*edge, "value")
            .agg(sf.sum("n").alias("n"))
            .withColumn(
                "reach",
                sf.sum("n").over(
                    Window.partitionBy(*edge)
                    .orderBy("value")
                    .rowsBetween(Window.unboundedPreceding, Window.currentRow)
                ),
            )
            .withColumn("total", sf.sum("n").over(Window.partitionBy(*edge)))
        )
        below = sf.col("reach") - sf.col("n")

        def holds(rank: Any) -> Any:
            return (below <= rank) & (sf.col("reach") > rank)

        middle = counts.filter(
            holds(sf.floor((sf.col("total") - 1) / 2)) | holds(sf.floor(sf.col("total") / 2))
        ).select(*edge, "value", "n", "reach", "total")
        middle_rows = middle.toArrow()
        budgets = (
            rows.filter("what = 'budget'")
            .groupBy("service", "name", "other")
            .agg(sf.min("value").alias("budget"))
            .toArrow()
        )
        requests = (
            rows.filter("what = 'requests'")
            .groupBy("service")
            .agg(sf.sum("n").alias("servers"), sf.sum("called").alias("called"))
            .toArrow()
        )
    finally:
        rows.unpersist()
    frame = pl.from_arrow(middle_rows)
    assert isinstance(frame, pl.DataFrame)
    # a value holding both middle ranks counts twice in the median, as it should
    low = frame.filter(
        (pl.col("reach") - pl.col("n") <= (pl.col("total") - 1) // 2)
        & (pl.col("reach") > (pl.col("total") - 1) // 2)
    )
    high = frame.filter(
        (pl.col("reach") - pl.col("n") <= pl.col("total") // 2)
        & (pl.col("reach") > pl.col("total") // 2)
    )
    edges = (
        pl.concat([low, high])
        .group_by(edge)
        .agg(pl.col("value").median().alias("usual_overhead"))
        .select(
            pl.col("service"),
            pl.col("name"),
            pl.col("other").alias("child_service"),
            "usual_overhead",
        )
        .with_columns(as_names("service", "name", "child_service"))
    )
    budget_frame = pl.from_arrow(budgets)
    request_frame = pl.from_arrow(requests)
    assert isinstance(budget_frame, pl.DataFrame) and isinstance(request_frame, pl.DataFrame)
    stats = StallStats(
        edges=edges,
        budgets=budget_frame.rename({"other": "target"}).with_columns(
            as_names("service", "name", "target")
        ),
        requests=request_frame.rename({"service": "instance"}).with_columns(as_names("instance")),
    )
    return StatsStage(
        stats=stats,
        driver_rows=middle_rows.num_rows + budgets.num_rows + requests.num_rows,
    )
