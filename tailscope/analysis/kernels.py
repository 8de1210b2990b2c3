"""Engine-neutral kernels: the analysis of a span table split into parts, merged into one report.

A data set too large for one machine is analysed part by part; each part holds *whole traces*
(every span of a trace is in the same part). :func:`trace_partials` runs the same per-trace
steps as the single-machine pipeline on one part (span tree, clock-skew adjustment and critical
paths via :func:`tailscope.analysis.pipeline.trace_paths`, hop decomposition) and returns small
partial results:

* ``requests`` — one row per timed root span (``trace_id``, ``root_span_id``, ``root_service``,
  ``root_operation``, ``duration_ns``);
* ``hop_times`` — time (ns) of each hop on each request's critical path, split by the stall
  (index into the stalls the kernel was given) its time fell in, if any;
* ``operations`` — per (service, operation, kind, minute of the span's start) an HdrHistogram
  of durations (:class:`~tailscope.histogram.LatencyHistogram`, encoded), the count, errors,
  the largest duration and the slowest spans (exemplars);
* ``totals``, ``services``, ``root_keys`` — the counts behind the input summary.

:func:`report_from_partials` merges any number of partials: histograms are merged by adding
bucket counts, so every percentile is bit-identical to the single-machine run; hop shares are
computed by :func:`tailscope.analysis.hops.hop_attribution` over all requests, whose bootstrap
visits requests in a canonical (trace id, span id) order. However the input was split, the
report is the one :func:`tailscope.analysis.pipeline.analyze` gives.

Stalls are not per trace: they are computed first, over each instance's spans, and the kernel
receives them with the stalled instances' clock offsets so that the stall-aware hop
decomposition sees the same windows as the local run. The per-span preparation the detectors
need *is* per trace: :func:`stall_inputs` computes it on each part (the narrowed span columns
and the per-instance counts of clock-skew shifts), so an engine ships those instead of the span
table; :func:`stall_sections_from_inputs` runs the detectors over the stacked inputs and
:func:`clock_offsets_from_counts` gives the stalled instances' offsets exactly from the merged
counts. :func:`whole_input_stall_sections` is the same for an input held whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from tailscope import __version__
from tailscope import schema as s
from tailscope.analysis._stall_common import narrow
from tailscope.analysis.critical_path import stall_clock_offsets
from tailscope.analysis.hops import HopOptions, hop_attribution
from tailscope.analysis.percentiles import NS_PER_MS, QUANTILES, kind_name
from tailscope.analysis.pipeline import (
    ANALYSIS_COLUMNS,
    AnalysisOptions,
    PreparedSpans,
    language_counts,
    languages_from_counts,
    prepare_spans,
    root_durations,
    skew_adjusted,
    stall_sections,
    trace_paths,
)
from tailscope.analysis.skew import SKEW_ADJUSTMENT
from tailscope.analysis.traces import DURATION_UNKNOWN
from tailscope.histogram import LatencyHistogram
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.report.model import (
    Cascade,
    InputSummary,
    OperationStats,
    ProblemEntry,
    Report,
    RuntimeSummary,
    Stall,
    UnexplainedTimeout,
)

KERNEL_COLUMNS: Final = (*ANALYSIS_COLUMNS, s.ATTRIBUTES, s.EVENTS)
"""The span-table columns the kernels read (an engine reads only these from Parquet)."""
STALL_INPUT_COLUMNS: Final = (*ANALYSIS_COLUMNS, s.EVENTS)
"""The columns :func:`stall_inputs` needs: the kernel columns without ``attributes`` (60 % of
their bytes; the stall analyses read the flattened attribute columns only)."""
NS_PER_MINUTE: Final = 60_000_000_000
_HOP_KEYS: Final = ["hop_service", "hop_operation", "component"]
_OP_KEYS: Final = ["service", "operation", "kind"]


@dataclass(frozen=True, slots=True)
class TracePartials:
    """What one part of the input (whole traces) contributes to the report."""

    requests: pl.DataFrame
    hop_times: pl.DataFrame
    operations: pl.DataFrame
    totals: pl.DataFrame
    """One row: ``spans``, ``traces``, ``orphan_spans``, ``skew_adjustments``,
    ``first_start``, ``last_end`` (exported times, ns; null without spans)."""
    services: pl.DataFrame
    """Spans per (service, SDK language), as
    :func:`~tailscope.analysis.pipeline.language_counts` gives them."""
    root_keys: pl.DataFrame
    """Distinct (service, operation, kind number) of root spans."""

    def to_ipc(self) -> list[tuple[str, bytes]]:
        """Each frame as (name, Arrow IPC stream bytes): how an engine ships partials."""
        return [(f.name, ipc_bytes(getattr(self, f.name).to_arrow())) for f in fields(self)]

    @classmethod
    def concat(cls, parts: Sequence[TracePartials]) -> TracePartials:
        """All partials in one (rows appended; nothing merged yet)."""
        return cls(
            **{
                f.name: pl.concat([getattr(p, f.name) for p in parts], how="vertical_relaxed")
                for f in fields(cls)
            }
        )

    @classmethod
    def from_ipc(cls, rows: Iterable[tuple[str, bytes]]) -> TracePartials:
        """The inverse of :meth:`to_ipc` over any number of parts (frames concatenated)."""
        frames = _frames_by_name(rows, [f.name for f in fields(cls)])
        empty = trace_partials(s.empty_table().select(list(KERNEL_COLUMNS)))
        return cls(
            **{
                name: pl.concat(parts, how="vertical_relaxed") if parts else getattr(empty, name)
                for name, parts in frames.items()
            }
        )


def kernel_table(table: pa.Table, columns: Sequence[str] = KERNEL_COLUMNS) -> pa.Table:
    """``table``'s ``columns`` (:data:`KERNEL_COLUMNS` or :data:`STALL_INPUT_COLUMNS`) cast to
    their :data:`~tailscope.schema.SPAN_SCHEMA` types (an engine hands back Parquet columns
    with its own types: plain strings, variable binary ids, widened unsigned integers)."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"not a tailscope span table: missing columns {', '.join(missing)}")
    target = pa.schema([s.SPAN_SCHEMA.field(c) for c in columns])
    return table.select(list(columns)).cast(target)


def _operation_partials(raw: pl.DataFrame, exemplars: int) -> pl.DataFrame:
    """Per (service, operation, kind, minute): encoded histogram, count, errors, max, slowest."""
    frame = raw.filter(~pl.col(DURATION_UNKNOWN)).select(
        pl.col(s.SERVICE).cast(pl.String).alias("service"),
        pl.col(s.NAME).cast(pl.String).alias("operation"),
        pl.col(s.KIND).cast(pl.Int8).alias("kind"),
        (pl.col(s.START) // NS_PER_MINUTE).alias("minute"),
        pl.col(s.DURATION).clip(lower_bound=0),
        (pl.col(s.STATUS_CODE) == s.StatusCode.ERROR).alias("_error"),
        pl.col(s.TRACE_ID),
    )
    grouped = frame.group_by(*_OP_KEYS, "minute").agg(
        pl.col(s.DURATION).alias("_durations"),
        pl.col("_error").sum().cast(pl.Int64).alias("errors"),
        pl.col(s.DURATION).max().alias("max_ns"),
        pl.struct(s.DURATION, s.TRACE_ID)
        .top_k_by([s.DURATION, s.TRACE_ID], exemplars, reverse=[False, True])
        .alias("slowest"),
    )
    histograms = [
        LatencyHistogram.from_durations_ns(d.to_numpy()).encode() for d in grouped["_durations"]
    ]
    return grouped.with_columns(
        pl.col("_durations").list.len().cast(pl.Int64).alias("count"),
        pl.Series("histogram", histograms, dtype=pl.String),
    ).drop("_durations")


def trace_partials(
    table: pa.Table,
    options: AnalysisOptions | None = None,
    sections: StallSections | None = None,
) -> TracePartials:
    """The partial results of one part of the input: whole traces, :data:`KERNEL_COLUMNS`.

    ``sections`` are :func:`whole_input_stall_sections` (computed before the traces, broadcast
    to every part): their stalls and clock offsets give the stall-aware hop decomposition the
    windows the single-machine run uses
    (:func:`~tailscope.analysis.pipeline.trace_paths`).
    """
    options = options or AnalysisOptions()
    prepared: PreparedSpans = prepare_spans(IngestResult(kernel_table(table), IngestStats()))
    raw = prepared.spans
    sections = sections or StallSections()
    adjusted, path, corrected = trace_paths(
        prepared, options, sections.stalls, sections.clock_offsets
    )
    requests = root_durations(adjusted).select(
        "root_row",
        "trace_id",
        "root_span_id",
        "root_service",
        "root_operation",
        s.DURATION,
    )
    hop_times = (
        path.group_by("root_row", *_HOP_KEYS, "stall")
        .agg((pl.col("seg_end") - pl.col("seg_start")).sum().alias("hop_ns"))
        .join(requests, on="root_row", how="inner")
        .select(
            "trace_id",
            "root_span_id",
            "root_service",
            "root_operation",
            pl.col("hop_service").cast(pl.String),
            pl.col("hop_operation").cast(pl.String),
            pl.col("component").cast(pl.String),
            "stall",
            "hop_ns",
        )
    )
    totals = pl.DataFrame(
        {
            "spans": [raw.height],
            "traces": [raw[s.TRACE_ID].n_unique() if raw.height else 0],
            "orphan_spans": [int(raw["is_orphan"].sum())],
            "skew_adjustments": [int(corrected.sum())],
            "first_start": [raw[s.START].min() if raw.height else None],
            "last_end": [raw[s.END].max() if raw.height else None],
        },
        schema={
            "spans": pl.Int64,
            "traces": pl.Int64,
            "orphan_spans": pl.Int64,
            "skew_adjustments": pl.Int64,
            "first_start": pl.Int64,
            "last_end": pl.Int64,
        },
    )
    return TracePartials(
        requests=requests.drop("root_row"),
        hop_times=hop_times,
        operations=_operation_partials(raw, options.exemplars),
        totals=totals,
        services=_services(raw),
        root_keys=raw.filter(pl.col("is_root"))
        .select(
            pl.col(s.SERVICE).cast(pl.String).alias("service"),
            pl.col(s.NAME).cast(pl.String).alias("operation"),
            pl.col(s.KIND).cast(pl.Int8).alias("kind"),
        )
        .unique(),
    )


def _services(raw: pl.DataFrame) -> pl.DataFrame:
    """Every service of the part with its span count per SDK language (null language for a
    service whose spans name none, so that it is still counted)."""
    named = language_counts(raw)
    unnamed = (
        raw.select(pl.col(s.SERVICE).cast(pl.String).alias("service"))
        .unique()
        .join(named, on="service", how="anti")
        .with_columns(pl.lit(None, pl.String).alias("language"), pl.lit(0, pl.UInt32).alias("len"))
    )
    return pl.concat([named, unnamed], how="vertical_relaxed")


def merge_operation_partials(operations: pl.DataFrame) -> pl.DataFrame:
    """Partials of the same (service, operation, kind, minute) from different parts merged
    into one row (histograms merged by adding bucket counts): the reduce step an engine runs
    per group before the driver merges the minutes."""
    return _merge(operations, [*_OP_KEYS, "minute"], exemplars=None)


def _merge(operations: pl.DataFrame, keys: list[str], exemplars: int | None) -> pl.DataFrame:
    if operations.height == 0:
        return operations.select(*keys, "errors", "max_ns", "slowest", "count", "histogram")
    grouped = operations.group_by(keys, maintain_order=True).agg(
        pl.col("errors").sum(),
        pl.col("max_ns").max(),
        pl.col("slowest").list.explode(keep_nulls=False, empty_as_null=False),
        pl.col("count").sum(),
        pl.col("histogram"),
    )
    merged: list[str] = []
    for encoded in grouped["histogram"]:
        histogram = LatencyHistogram.decode(encoded[0])
        for other in encoded[1:]:
            histogram.merge(LatencyHistogram.decode(other))
        merged.append(histogram.encode())
    k = exemplars if exemplars is not None else None
    slowest = pl.col("slowest").list.eval(
        pl.element().sort_by(
            [pl.element().struct.field(s.DURATION), pl.element().struct.field(s.TRACE_ID)],
            descending=[True, False],
        )
    )
    if k is not None:
        slowest = slowest.list.head(k)
    return grouped.with_columns(slowest, pl.Series("histogram", merged, dtype=pl.String))


def operations_from_partials(
    operations: pl.DataFrame, root_keys: pl.DataFrame, exemplars: int
) -> tuple[OperationStats, ...]:
    """The report's operations from the partials of every part (see
    :func:`tailscope.analysis.percentiles.operation_stats`, whose numbers these equal)."""
    merged = _merge(operations, _OP_KEYS, exemplars)
    roots = {(str(a), str(b), int(c)) for a, b, c in root_keys.unique().iter_rows()}
    out: list[OperationStats] = []
    for row in merged.iter_rows(named=True):
        histogram = LatencyHistogram.decode(row["histogram"])
        longest = int(row["max_ns"])
        p50, p90, p99, p999 = (min(q, longest) for q in histogram.quantiles_ns(list(QUANTILES)))
        count = int(row["count"])
        out.append(
            OperationStats(
                service=row["service"],
                operation=row["operation"],
                kind=kind_name(row["kind"]),
                count=count,
                error_rate=int(row["errors"]) / count,
                p50_ms=p50 / NS_PER_MS,
                p90_ms=p90 / NS_PER_MS,
                p99_ms=p99 / NS_PER_MS,
                p999_ms=p999 / NS_PER_MS,
                max_ms=longest / NS_PER_MS,
                exemplar_trace_ids=tuple(bytes(x[s.TRACE_ID]).hex() for x in row["slowest"]),
                is_root=(row["service"], row["operation"], int(row["kind"])) in roots,
            )
        )
    out.sort(key=lambda op: (-op.p99_ms, -op.count, op.service, op.operation, op.kind))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StallSections:
    """The stall, cascade, unexplained-timeout and runtime sections (computed per instance,
    before the traces), and the stalled instances' clock offsets the kernels need."""

    stalls: tuple[Stall, ...] = ()
    cascades: tuple[Cascade, ...] = ()
    unexplained: tuple[UnexplainedTimeout, ...] = ()
    runtimes: tuple[RuntimeSummary, ...] = ()
    clock_offsets: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """See :func:`tailscope.analysis.critical_path.stall_clock_offsets` (whole input)."""


def whole_input_stall_sections(
    prepared: PreparedSpans, options: AnalysisOptions | None = None
) -> StallSections:
    """The stall sections of the *whole* input, with the stalled instances' clock offsets
    (medians over all their spans): what every part's :func:`trace_partials` is handed."""
    options = options or AnalysisOptions()
    stalls, cascades, unexplained, runtimes = stall_sections(prepared.spans)
    offsets: dict[tuple[str, str], int] = {}
    if stalls:
        adjusted, _ = skew_adjusted(prepared, options)
        offsets = stall_clock_offsets(adjusted, stalls)
    return StallSections(stalls, cascades, unexplained, runtimes, offsets)


_SHIFT_KEYS: Final = ["service", "instance", "shift_ns"]


@dataclass(frozen=True, slots=True)
class StallInputs:
    """What one part of the input (whole traces) contributes to stall detection: the span
    columns the detectors read, and how often each clock-skew shift was applied per instance."""

    narrowed: pl.DataFrame
    """:func:`~tailscope.analysis._stall_common.narrow` of the part's prepared spans (ids,
    names, kinds, exported times, error/timeout flags, event times, ``is_root``): about a
    third of the kernel columns' bytes (no attributes, no events)."""
    clock_shifts: pl.DataFrame
    """Spans per (``service``, ``instance``, ``shift_ns``): the ``skew_adjustment_ns`` of the
    part's spans counted per instance (spans without an instance are left out). Counts add up
    across parts, so the merged counts give every instance's median shift exactly."""

    def to_ipc(self) -> list[tuple[str, bytes]]:
        """Each frame as (name, Arrow IPC stream bytes), as :meth:`TracePartials.to_ipc`."""
        return [(f.name, ipc_bytes(getattr(self, f.name).to_arrow())) for f in fields(self)]

    @classmethod
    def from_ipc(cls, rows: Iterable[tuple[str, bytes]]) -> StallInputs:
        """The inverse of :meth:`to_ipc` over any number of parts (frames stacked; the
        narrowed rows in a canonical order, so the result does not depend on the split)."""
        frames = _frames_by_name(rows, [f.name for f in fields(cls)])
        empty = stall_inputs(s.empty_table().select(list(KERNEL_COLUMNS)))
        narrowed = (
            pl.concat(frames["narrowed"], how="vertical_relaxed")
            if frames["narrowed"]
            else empty.narrowed
        )
        shifts = (
            pl.concat(frames["clock_shifts"], how="vertical_relaxed")
            if frames["clock_shifts"]
            else empty.clock_shifts
        )
        return cls(narrowed=narrowed.sort("tid", "sid", "start"), clock_shifts=shifts)


def ipc_bytes(table: pa.Table) -> bytes:
    """``table`` as Arrow IPC stream bytes (how an engine ships a frame)."""
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def ipc_table(data: bytes) -> pa.Table:
    """The inverse of :func:`ipc_bytes`."""
    return ipc.open_stream(pa.BufferReader(data)).read_all()


def _frames_by_name(
    rows: Iterable[tuple[str, bytes]], names: Sequence[str]
) -> dict[str, list[pl.DataFrame]]:
    """(name, IPC bytes) rows as polars frames grouped by name (every name present)."""
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in names}
    for name, data in rows:
        frame = pl.from_arrow(ipc_table(data))
        assert isinstance(frame, pl.DataFrame)
        frames[name].append(frame)
    return frames


def stall_inputs(table: pa.Table, options: AnalysisOptions | None = None) -> StallInputs:
    """The stall-detection inputs of one part of the input: whole traces,
    :data:`STALL_INPUT_COLUMNS` (more columns are ignored). Per trace (roots, event times,
    timeout flags and clock-skew shifts need only the trace), so an engine computes them where
    the spans are and ships these instead of the span table."""
    options = options or AnalysisOptions()
    table = kernel_table(table, STALL_INPUT_COLUMNS)
    attributes = s.SPAN_SCHEMA.field(s.ATTRIBUTES)  # not read: null lists
    table = table.append_column(attributes, pa.nulls(table.num_rows, attributes.type))
    prepared = prepare_spans(IngestResult(table, IngestStats()))
    adjusted, _ = skew_adjusted(prepared, options)
    shifts = (
        adjusted.select(
            pl.col(s.SERVICE).cast(pl.String).alias("service"),
            pl.col(s.INSTANCE).cast(pl.String).alias("instance"),
            pl.col(SKEW_ADJUSTMENT).cast(pl.Int64).alias("shift_ns"),
        )
        .drop_nulls(["service", "instance"])
        .group_by(_SHIFT_KEYS)
        .agg(pl.len().cast(pl.Int64).alias("spans"))
    )
    return StallInputs(narrowed=narrow(prepared.spans), clock_shifts=shifts)


def clock_offsets_from_counts(
    clock_shifts: pl.DataFrame, stalls: Sequence[Stall]
) -> dict[tuple[str, str], int]:
    """Per stalled instance, the median clock-skew shift of its spans from counts per
    (service, instance, shift) — any number of parts' :attr:`StallInputs.clock_shifts`
    stacked, or summed per key by an engine's ``groupBy``. Equals
    :func:`~tailscope.analysis.critical_path.stall_clock_offsets` of the whole input: the
    middle value(s) of the sorted shifts are found from the cumulative counts and averaged as
    ``numpy.median`` does (0 for an instance without spans)."""
    offsets: dict[tuple[str, str], int] = {}
    for stall in stalls:
        offsets.setdefault((stall.service, stall.instance), 0)
    if not offsets or clock_shifts.height == 0:
        return offsets
    wanted = pl.DataFrame(
        list(offsets), schema={"service": pl.String, "instance": pl.String}, orient="row"
    )
    counts = (
        clock_shifts.with_columns(pl.col("service", "instance").cast(pl.String))
        .join(wanted, on=["service", "instance"], how="semi")
        .group_by(_SHIFT_KEYS)
        .agg(pl.col("spans").sum())
        .sort(_SHIFT_KEYS)
    )
    for (service, instance), mine in counts.group_by(["service", "instance"], maintain_order=True):
        shifts = mine["shift_ns"].to_numpy()
        reach = np.cumsum(mine["spans"].to_numpy())
        n = int(reach[-1])
        low, high = np.searchsorted(reach, [(n - 1) // 2, n // 2], side="right")
        middle = np.array([shifts[low], shifts[high]], dtype=np.int64)
        offsets[(str(service), str(instance))] = int(np.median(middle))
    return offsets


def stall_sections_from_inputs(inputs: StallInputs) -> StallSections:
    """The stall sections of the whole input from the stall inputs of all its parts
    (:meth:`StallInputs.from_ipc`): the single-machine detectors over the stacked narrowed
    columns, and the stalled instances' clock offsets from the merged shift counts."""
    if inputs.narrowed.height == 0:
        return StallSections()
    narrowed = inputs.narrowed
    stalls, cascades, unexplained, runtimes = stall_sections(narrowed, narrowed=narrowed)
    offsets = clock_offsets_from_counts(inputs.clock_shifts, stalls) if stalls else {}
    return StallSections(stalls, cascades, unexplained, runtimes, offsets)


def report_from_partials(
    partials: TracePartials,
    stats: IngestStats,
    options: AnalysisOptions | None = None,
    sections: StallSections | None = None,
    problems: Sequence[ProblemEntry] = (),
) -> Report:
    """The report of the whole input from the partials of all its parts."""
    from tailscope.analysis.pipeline import MAX_PROBLEMS_IN_REPORT

    options = options or AnalysisOptions()
    sections = sections or StallSections()
    path = partials.hop_times.select(
        pl.exclude("hop_ns"),
        pl.lit(0, pl.Int64).alias("seg_start"),
        pl.col("hop_ns").alias("seg_end"),
    )
    roots, hops = hop_attribution(
        path,
        partials.requests,
        HopOptions(
            min_tail_requests=options.min_tail_requests,
            resamples=options.bootstrap_resamples,
            seed=options.seed,
        ),
        stalls=sections.stalls,
        languages=languages_from_counts(partials.services.drop_nulls("language")),
    )
    totals = partials.totals.select(
        pl.col("spans", "traces", "orphan_spans", "skew_adjustments").sum(),
        pl.col("first_start").min(),
        pl.col("last_end").max(),
    ).row(0, named=True)
    spans = int(totals["spans"] or 0)
    entries = [
        ProblemEntry(file=p.file, line=p.line, reason=p.reason)
        for p in stats.problems[:MAX_PROBLEMS_IN_REPORT]
    ]
    summary = InputSummary(
        files=tuple(stats.files),
        spans=spans,
        traces=int(totals["traces"] or 0),
        services=partials.services["service"].n_unique(),
        skipped_records=stats.skipped_records,
        problems=(*entries, *problems),
        orphan_spans=int(totals["orphan_spans"] or 0),
        skew_adjustments=int(totals["skew_adjustments"] or 0),
        skipped_by_reason=dict(stats.skipped),
        duplicate_spans=stats.duplicates_dropped,
        non_trace_records=stats.non_trace_lines,
        unknown_service_resources=stats.unknown_service_resources,
        time_range_unix_nano=(int(totals["first_start"]), int(totals["last_end"]))
        if spans
        else None,
    )
    return Report(
        tailscope_version=__version__,
        input=summary,
        operations=operations_from_partials(
            partials.operations, partials.root_keys, options.exemplars
        ),
        roots=roots,
        hops=hops,
        stalls=sections.stalls,
        cascades=sections.cascades,
        unexplained_timeouts=sections.unexplained,
        runtimes=sections.runtimes,
    )
