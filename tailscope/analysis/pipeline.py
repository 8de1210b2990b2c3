"""The analysis pipeline: an ingested span table in, a :class:`~tailscope.report.model.Report` out.

:func:`analyze` runs every analysis once, in dependency order, and keeps the intermediate frames
that interactive front ends draw from:

* ``Analysis.spans`` — the span table after clock-skew adjustment, narrowed to the columns the
  analyses read (:data:`ANALYSIS_COLUMNS`: ids raw bytes, names as polars categoricals; the
  nested ``attributes``, ``events``, ``links`` and ``resource_attributes`` are not kept: a
  caller that needs them keeps the Arrow table, whose rows align with this frame, as the TUI
  does), with ``start_unix_nano``/``end_unix_nano`` *shifted* into
  the parent's clock (``duration_ns`` unchanged), plus ``skew_adjustment_ns`` (int64 ns added to
  both; subtract it to get the exported times), ``skew_corrected`` (this span's own edge was
  corrected), ``is_root`` and ``is_orphan`` (booleans, see
  :func:`tailscope.analysis.traces.with_roots`), ``event_times`` and ``exception_timeout``
  (derived from ``events``, see :func:`tailscope.analysis._stall_common.event_columns`), and
  ``duration_unknown`` (the export had no duration: a 0 ns stand-in, not a latency).
* ``Analysis.path`` — critical-path segments of every trace (see
  :data:`tailscope.analysis.critical_path.SEGMENT_COLUMNS`; times in the adjusted clock, ns;
  with ``AnalysisOptions(keep_frames=False)``, as the CLI runs, only the columns hop
  attribution reads: ``seg_start``, ``seg_end``, the hop columns and ``root_row``).

:func:`prepare_spans` is the only step that reads the Arrow table: a caller that drops its
reference to the ingest result afterwards (the CLI does) frees the table before the analyses
allocate anything.

Stop-the-world stalls, cascades and runtimes are computed by :mod:`tailscope.analysis.stalls`,
:mod:`~tailscope.analysis.cascades` and :mod:`~tailscope.analysis.runtimes` on the *exported*
times (each instance on its own clock), with ``is_root``/``is_orphan`` added. The pipeline is pure:
it reads no files and prints nothing.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import polars as pl

from tailscope import __version__
from tailscope import schema as s
from tailscope.analysis._stall_common import event_columns
from tailscope.analysis.critical_path import (
    PathSegments,
    StallClockOffsets,
    follows_from_rows,
    path_segments,
    segments_frame,
)
from tailscope.analysis.hops import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    HopOptions,
    hop_attribution,
)
from tailscope.analysis.percentiles import DEFAULT_EXEMPLARS, operation_stats
from tailscope.analysis.skew import (
    DEFAULT_MAX_SHIFT_NS,
    SKEW_ADJUSTMENT,
    SKEW_CORRECTED,
    clock_host_codes,
    skew_shifts,
)
from tailscope.analysis.span_tree import SpanTree, build_span_tree
from tailscope.analysis.traces import DURATION_UNKNOWN, duration_unknown_rows
from tailscope.memory import release_freed_memory
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
from tailscope.types import DEFAULT_MIN_TAIL_REQUESTS

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

    from tailscope.analysis.runtimes import RuntimeLatencies
    from tailscope.ingest.model import IngestResult, IngestStats

MAX_PROBLEMS_IN_REPORT: Final = 20

OVERLAP_MAX_SPANS: Final = 400_000
"""Above this many spans :func:`analyze` runs its steps one after the other (runtime latencies
before stall detection, cascades and runtimes before the critical paths) instead of beside
each other: both working sets at once would lift the peak memory (1M spans, cascades beside
the critical paths: ~1.15 GB against ~0.9 GB). Below it the overlap saves the fixed per-query costs
that dominate small runs."""


ANALYSIS_COLUMNS: Final = (
    s.TRACE_ID,
    s.SPAN_ID,
    s.PARENT_SPAN_ID,
    s.NAME,
    s.KIND,
    s.START,
    s.END,
    s.DURATION,
    s.STATUS_CODE,
    s.STATUS_MESSAGE,
    s.SERVICE,
    s.INSTANCE,
    s.HOST,
    s.LANGUAGE,
    s.RUNTIME_NAME,
    s.HTTP_STATUS_CODE,
    s.RPC_GRPC_STATUS_CODE,
    s.RPC_RESPONSE_STATUS_CODE,
    s.SERVER_ADDRESS,
    s.ERROR_TYPE,
    s.HTTP_RESEND_COUNT,
    s.DB_SYSTEM,
)
"""The ``SPAN_SCHEMA`` columns converted to polars for the analyses; the nested columns are
read in place from the Arrow table (a million spans' attributes are ~0.3 GB in polars)."""


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Knobs of :func:`analyze` (defaults suit interactive use)."""

    min_tail_requests: int = DEFAULT_MIN_TAIL_REQUESTS
    """A root operation with fewer requests above its p99 is reported as inconclusive."""
    bootstrap_resamples: int = DEFAULT_RESAMPLES
    """Resamples behind the 95 % intervals of hop shares."""
    seed: int = DEFAULT_SEED
    """Seed of the bootstrap (fixed: the same input gives the same report)."""
    max_skew_shift_ms: float = DEFAULT_MAX_SHIFT_NS / 1e6
    """Largest clock-skew correction of one parent/child edge (ms)."""
    exemplars: int = DEFAULT_EXEMPLARS
    """Trace ids of the slowest spans kept per operation."""
    detect_stalls: bool = True
    """Run stall, cascade and runtime analysis (off: those sections stay empty)."""
    keep_frames: bool = True
    """Return the full segment frame (ids and root names per segment) for drill-down; off
    (the CLI, which only renders the report), ``Analysis.path`` has just the columns hop
    attribution reads."""
    release_memory: bool = False
    """Hand freed memory back to the OS between the large steps (:mod:`tailscope.memory`):
    the peak is then the largest step's working set rather than their sum (~200 MiB less at
    1M spans). Results are the same; the CLI turns it on."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What :func:`analyze` returns: the report and the frames it was computed from."""

    report: Report
    spans: pl.DataFrame
    """Skew-adjusted span table (see the module docstring for the columns)."""
    path: pl.DataFrame
    """Critical-path segments of every trace (ns, adjusted clock)."""


@dataclass(frozen=True, slots=True)
class PreparedSpans:
    """What the analyses read from an ingested table (:func:`prepare_spans`); holds no
    reference to the Arrow table."""

    spans: pl.DataFrame
    """:data:`ANALYSIS_COLUMNS` with ``is_root``, ``is_orphan``, ``event_times``,
    ``exception_timeout`` and ``duration_unknown`` (input row order)."""
    tree: SpanTree
    follows_from: NDArray[np.bool_]
    """Per span: marked as a Jaeger ``FOLLOWS_FROM`` child (pruned from critical paths)."""
    stats: IngestStats


def _column(table: pa.Table, name: str) -> pl.Series:
    """One column of ``table`` as a single-chunk polars Series."""
    series = pl.from_arrow(table[name])
    assert isinstance(series, pl.Series)
    return series.alias(name).rechunk()


def prepare_spans(ingest: IngestResult) -> PreparedSpans:
    """Link spans to their parents and convert the columns the analyses read to polars.

    The nested columns are read in place (``FOLLOWS_FROM`` marks and missing durations from
    ``attributes``, event times and exception timeouts from ``events``) and never converted.
    """
    table = ingest.table
    tree = build_span_tree(table)
    # one column at a time (the transient copy is one column), each in one chunk: else every
    # later selection of the id columns would copy them again
    spans = pl.DataFrame([_column(table, name) for name in ANALYSIS_COLUMNS])
    error = (spans[s.STATUS_CODE] == int(s.StatusCode.ERROR)).to_numpy()
    # roots and orphans from the span tree (the one definition; see traces.with_roots)
    spans = spans.with_columns(
        pl.Series("is_root", tree.parent < 0, dtype=pl.Boolean),
        pl.Series("is_orphan", tree.is_orphan, dtype=pl.Boolean),
        *event_columns(table[s.EVENTS], error),
        pl.Series(
            DURATION_UNKNOWN,
            duration_unknown_rows(table[s.ATTRIBUTES]),
            dtype=pl.Boolean,
        ),
    )
    return PreparedSpans(
        spans=spans,
        tree=tree,
        follows_from=follows_from_rows(table[s.ATTRIBUTES]),
        stats=ingest.stats,
    )


def root_durations(spans: pl.DataFrame) -> pl.DataFrame:
    """One row per root span (true roots and orphans): ``root_row`` (row number in ``spans``),
    ``trace_id``, ``root_span_id``, ``root_service``, ``root_operation``, ``duration_ns``.
    Needs the ``is_root`` column; roots exported without a duration are left out."""
    timed_root = pl.col("is_root")
    if DURATION_UNKNOWN in spans.columns:
        timed_root = timed_root & ~pl.col(DURATION_UNKNOWN)
    return (
        spans.with_row_index("root_row")
        .filter(timed_root)
        .select(
            pl.col("root_row").cast(pl.Int64),
            pl.col(s.TRACE_ID),
            pl.col(s.SPAN_ID).alias("root_span_id"),
            pl.col(s.SERVICE).cast(pl.String).alias("root_service"),
            pl.col(s.NAME).cast(pl.String).alias("root_operation"),
            pl.col(s.DURATION),
        )
    )


def language_counts(spans: pl.DataFrame) -> pl.DataFrame:
    """Spans per (service, ``telemetry.sdk.language``): ``service``, ``language``, ``len``.
    Counts of parts of the input add up to the whole input's (the scale-out kernels ship them)."""
    schema = {"service": pl.String, "language": pl.String, "len": pl.UInt32}
    if s.LANGUAGE not in spans.columns or spans.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        spans.select(
            pl.col(s.SERVICE).cast(pl.String).alias("service"),
            pl.col(s.LANGUAGE).cast(pl.String).alias("language"),
        )
        .drop_nulls()
        .group_by("service", "language")
        .len()
        .cast(schema)  # type: ignore[arg-type]
    )


def languages_from_counts(counts: pl.DataFrame) -> dict[str, str]:
    """Service name -> the language most of its spans report (ties: the first by name), from
    :func:`language_counts` of the whole input or of its parts stacked."""
    if counts.height == 0:
        return {}
    chosen = (
        counts.group_by("service", "language")
        .agg(pl.col("len").sum())
        .sort("len", "service", "language", descending=[True, False, False])
        .unique("service", keep="first", maintain_order=True)
    )
    return {str(a): str(b) for a, b in chosen.select("service", "language").iter_rows()}


def service_languages(spans: pl.DataFrame) -> dict[str, str]:
    """Service name -> the ``telemetry.sdk.language`` most of its spans report."""
    return languages_from_counts(language_counts(spans))


def stall_sections(
    raw: pl.DataFrame,
    *,
    narrowed: pl.DataFrame | None = None,
) -> tuple[
    tuple[Stall, ...],
    tuple[Cascade, ...],
    tuple[UnexplainedTimeout, ...],
    tuple[RuntimeSummary, ...],
]:
    """Stalls, cascades, unexplained timeouts and runtimes of the prepared spans (the frame of
    :class:`PreparedSpans`: exported times, ``is_root``/``is_orphan``). Also used by the gate's
    ``--fail-on-stalls``/``--fail-on-cascades``, so both count the same findings.

    ``narrowed``: ``narrow(raw)`` when the caller already has it (the scale-out engine stacks
    the parts' narrowed columns and passes them as both ``raw`` and ``narrowed``: the detectors
    read the narrowed columns only)."""
    detected = _StallInputs.detect(raw, narrowed)
    cascades, unexplained, runtimes = detected.followups()
    return detected.stalls, cascades, unexplained, runtimes


@dataclass(frozen=True, slots=True)
class _StallInputs:
    """The stalls of a run and the frames the analyses that build on them (cascades,
    runtimes) read: :func:`analyze` runs those on a worker thread while the critical paths,
    which need only the stalls, are built."""

    raw: pl.DataFrame
    narrowed: pl.DataFrame
    calls: pl.DataFrame
    stalls: tuple[Stall, ...]

    @staticmethod
    def detect(raw: pl.DataFrame, narrowed: pl.DataFrame | None) -> _StallInputs:
        from tailscope.analysis._stall_common import client_calls, narrow
        from tailscope.analysis.stalls import detect_stalls

        if narrowed is None:
            narrowed = narrow(raw)  # once for all three analyses
        calls = client_calls(narrowed)
        stalls = tuple(detect_stalls(raw, narrowed=narrowed, calls=calls))
        return _StallInputs(raw=raw, narrowed=narrowed, calls=calls, stalls=stalls)

    def followups(
        self, latencies: Future[RuntimeLatencies | None] | None = None
    ) -> tuple[tuple[Cascade, ...], tuple[UnexplainedTimeout, ...], tuple[RuntimeSummary, ...]]:
        """Cascades, unexplained timeouts and runtimes (they read the stalls, nothing else
        of the report). ``latencies``: :func:`~tailscope.analysis.runtimes.runtime_latencies`
        of these spans, being computed elsewhere."""
        from tailscope.analysis.cascades import find_cascades
        from tailscope.analysis.runtimes import compare_runtimes

        cascades, unexplained = find_cascades(
            self.raw, self.stalls, narrowed=self.narrowed, calls=self.calls
        )
        runtimes = tuple(
            compare_runtimes(
                self.raw,
                self.stalls,
                narrowed=self.narrowed,
                latencies=None if latencies is None else latencies.result(),
            )
        )
        return tuple(cascades), tuple(unexplained), runtimes


def skew_adjusted(
    prepared: PreparedSpans, options: AnalysisOptions
) -> tuple[pl.DataFrame, NDArray[np.bool_]]:
    """The spans with skew-adjusted times (and ``skew_adjustment_ns``, ``skew_corrected``), and
    per span whether its own edge was corrected. Per trace, like :func:`trace_paths`."""
    raw, tree = prepared.spans, prepared.tree
    start = raw[s.START].to_numpy()
    end = raw[s.END].to_numpy()
    shift, corrected = skew_shifts(
        start,
        end,
        clock_host_codes(raw),
        tree,
        int(options.max_skew_shift_ms * 1e6),
    )
    adjusted = raw.with_columns(
        pl.Series(s.START, start + shift),
        pl.Series(s.END, end + shift),
        pl.Series(SKEW_ADJUSTMENT, shift),
        pl.Series(SKEW_CORRECTED, corrected),
    )
    return adjusted, corrected


def trace_paths(
    prepared: PreparedSpans,
    options: AnalysisOptions,
    stalls: Sequence[Stall] = (),
    stall_offsets: StallClockOffsets | None = None,
    unsplit: UnsplitPaths | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, NDArray[np.bool_]]:
    """The per-trace steps: clock-skew adjustment and critical-path segments.

    Returns the adjusted spans, the segments and, per span, whether its own edge was
    corrected. Each trace is handled on its own, so this runs unchanged on any set of whole
    traces (the scale-out kernels in :mod:`tailscope.analysis.kernels` call it per batch).
    ``stalls`` (the run's detected stalls) mark the parts of segments spent inside a pause of
    the instance that served them; their windows are moved into the adjusted clock by
    ``stall_offsets``, a statistic of the whole input
    (:func:`~tailscope.analysis.critical_path.stall_clock_offsets`), computed from
    ``prepared`` when None. ``unsplit``: :func:`unsplit_paths` of ``prepared`` when the caller
    already has them.
    """
    if unsplit is None:
        unsplit = unsplit_paths(prepared, options)
    path = segments_frame(
        unsplit.adjusted,
        prepared.tree,
        prepared.follows_from,
        ids=options.keep_frames,
        stalls=stalls,
        stall_offsets=stall_offsets,
        segments=unsplit.segments,
    )
    return unsplit.adjusted, path, unsplit.corrected


@dataclass(frozen=True, slots=True)
class UnsplitPaths:
    """The stall-free part of :func:`trace_paths` (:func:`unsplit_paths`)."""

    adjusted: pl.DataFrame
    """The spans with skew-adjusted times (:func:`skew_adjusted`)."""
    corrected: NDArray[np.bool_]
    segments: PathSegments
    """Critical-path segments of ``adjusted``, before the stall split."""


def unsplit_paths(prepared: PreparedSpans, options: AnalysisOptions) -> UnsplitPaths:
    """Skew adjustment and critical-path segments: what :func:`trace_paths` computes before it
    cuts the stalls out (:func:`analyze` runs it while the stalls are being detected)."""
    adjusted, corrected = skew_adjusted(prepared, options)
    segments = path_segments(
        adjusted[s.START].to_numpy(),
        adjusted[s.END].to_numpy(),
        adjusted[s.KIND].to_numpy(),
        prepared.tree,
        prepared.follows_from,
    )
    return UnsplitPaths(adjusted=adjusted, corrected=corrected, segments=segments)


def _between_steps(options: AnalysisOptions) -> None:
    if options.release_memory:
        release_freed_memory()


_Followups = tuple[tuple[Cascade, ...], tuple[UnexplainedTimeout, ...], tuple[RuntimeSummary, ...]]


def _stall_failure(exc: Exception) -> ProblemEntry:
    return ProblemEntry(
        file="<analysis>",
        line=None,
        reason=f"stall/cascade analysis failed: {type(exc).__name__}: {exc}",
    )


def _stall_free_sections(
    raw: pl.DataFrame, options: AnalysisOptions
) -> tuple[tuple[OperationStats, ...], dict[str, str]]:
    """Per-operation percentiles and service languages: they read no analysis result."""
    root_keys = {
        (str(a), str(b), int(c))
        for a, b, c in raw.filter(pl.col("is_root"))
        .select(s.SERVICE, s.NAME, s.KIND)
        .unique()
        .iter_rows()
    }
    operations = operation_stats(raw, options.exemplars, root_keys)
    return operations, service_languages(raw)


def analyze(
    ingest: IngestResult | PreparedSpans, options: AnalysisOptions | None = None
) -> Analysis:
    """Analyse an ingested span table: percentiles, critical paths, hops, stalls.

    Args:
        ingest: the span table and ingest statistics from :func:`tailscope.ingest.read_spans`,
            or what :func:`prepare_spans` made of them.
        options: thresholds; defaults when None.

    Returns:
        The :class:`Analysis` (report, adjusted spans, critical-path segments).
    """
    options = options or AnalysisOptions()
    prepared = ingest if isinstance(ingest, PreparedSpans) else prepare_spans(ingest)
    raw, stats = prepared.spans, prepared.stats
    _between_steps(options)  # the ingested table, if the caller dropped it

    problems = [
        ProblemEntry(file=p.file, line=p.line, reason=p.reason)
        for p in stats.problems[:MAX_PROBLEMS_IN_REPORT]
    ]
    stalls: tuple[Stall, ...] = ()
    cascades: tuple[Cascade, ...] = ()
    unexplained: tuple[UnexplainedTimeout, ...] = ()
    runtimes: tuple[RuntimeSummary, ...] = ()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailscope-analysis") as worker:
        # polars and numpy release the GIL: what needs no stalls runs beside their detection,
        # and cascades and runtimes beside the critical paths (each step's result is the same
        # whichever thread computes it)
        independent = worker.submit(_stall_free_sections, raw, options)
        followups: Future[_Followups] | None = None
        unsplit: Future[UnsplitPaths] | None = None
        if raw.height <= OVERLAP_MAX_SPANS:
            unsplit = worker.submit(unsplit_paths, prepared, options)
        # first: their working frames are freed before the critical paths are built
        if options.detect_stalls and raw.height:
            from tailscope.analysis._stall_common import narrow
            from tailscope.analysis.runtimes import runtime_latencies

            try:
                narrowed = narrow(raw)  # once for all three analyses
                latencies = worker.submit(runtime_latencies, raw, narrowed=narrowed)
                if raw.height > OVERLAP_MAX_SPANS:
                    wait((latencies,))
                detected = _StallInputs.detect(raw, narrowed)
                del narrowed
            except Exception as exc:  # a failing detector must not cost the rest of the report
                problems.append(_stall_failure(exc))
            else:
                stalls = detected.stalls
                followups = worker.submit(detected.followups, latencies)
                del detected
                if raw.height > OVERLAP_MAX_SPANS:  # their working sets would add up
                    wait((followups,))

        _between_steps(options)
        adjusted, path, corrected = trace_paths(
            prepared, options, stalls, unsplit=None if unsplit is None else unsplit.result()
        )
        del unsplit
        _between_steps(options)
        operations, languages = independent.result()
        hop_options = HopOptions(
            min_tail_requests=options.min_tail_requests,
            resamples=options.bootstrap_resamples,
            seed=options.seed,
        )
        roots, hops = hop_attribution(
            path, root_durations(adjusted), hop_options, stalls=stalls, languages=languages
        )
        if followups is not None:
            try:
                cascades, unexplained, runtimes = followups.result()
            except Exception as exc:  # as before: no stall sections, paths without stalls
                problems.append(_stall_failure(exc))
                stalls = ()
                adjusted, path, corrected = trace_paths(prepared, options, stalls)
                roots, hops = hop_attribution(
                    path, root_durations(adjusted), hop_options, languages=languages
                )
    start = raw[s.START].to_numpy()
    end = raw[s.END].to_numpy()

    time_range = (int(start.min()), int(end.max())) if raw.height else None
    summary = InputSummary(
        files=tuple(stats.files),
        spans=raw.height,
        traces=int(raw[s.TRACE_ID].n_unique()) if raw.height else 0,
        services=int(raw[s.SERVICE].n_unique()) if raw.height else 0,
        skipped_records=stats.skipped_records,
        problems=tuple(problems),
        orphan_spans=int(raw["is_orphan"].sum()),
        skew_adjustments=int(corrected.sum()),
        skipped_by_reason=dict(stats.skipped),
        duplicate_spans=stats.duplicates_dropped,
        non_trace_records=stats.non_trace_lines,
        unknown_service_resources=stats.unknown_service_resources,
        time_range_unix_nano=time_range,
    )
    report = Report(
        tailscope_version=__version__,
        input=summary,
        operations=operations,
        roots=roots,
        hops=hops,
        stalls=stalls,
        cascades=cascades,
        unexplained_timeouts=unexplained,
        runtimes=runtimes,
    )
    return Analysis(report=report, spans=adjusted, path=path)
