"""The analysis pipeline: an ingested span table in, a :class:`~tailscope.report.model.Report` out.

:func:`analyze` runs every analysis once, in dependency order, and keeps the intermediate frames
that interactive front ends draw from:

* ``Analysis.spans`` — the span table after clock-skew adjustment: every ``SPAN_SCHEMA`` column
  (ids raw bytes, names as polars categoricals), with ``start_unix_nano``/``end_unix_nano``
  *shifted* into the parent's clock (``duration_ns`` unchanged), plus ``skew_adjustment_ns``
  (int64 ns added to both; subtract it to get the exported times), ``skew_corrected`` (this
  span's own edge was corrected), ``is_root`` and ``is_orphan`` (booleans, see
  :func:`tailscope.analysis.traces.with_roots`).
* ``Analysis.path`` — critical-path segments of every trace (see
  :data:`tailscope.analysis.critical_path.SEGMENT_COLUMNS`; times in the adjusted clock, ns).

Stop-the-world stalls, cascades and runtimes are computed by :mod:`tailscope.analysis.stalls`,
:mod:`~tailscope.analysis.cascades` and :mod:`~tailscope.analysis.runtimes` on the *exported*
times (each instance on its own clock), with ``is_root``/``is_orphan`` added. The pipeline is pure:
it reads no files and prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import polars as pl

from tailscope import __version__
from tailscope import schema as s
from tailscope.analysis.critical_path import segments_frame
from tailscope.analysis.hops import (
    DEFAULT_MIN_TAIL_REQUESTS,
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
from tailscope.analysis.span_tree import build_span_tree
from tailscope.report.model import (
    Cascade,
    InputSummary,
    ProblemEntry,
    Report,
    RuntimeSummary,
    Stall,
    UnexplainedTimeout,
)

if TYPE_CHECKING:
    from tailscope.ingest.model import IngestResult

MAX_PROBLEMS_IN_REPORT: Final = 20


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


@dataclass(frozen=True, slots=True)
class Analysis:
    """What :func:`analyze` returns: the report and the frames it was computed from."""

    report: Report
    spans: pl.DataFrame
    """Skew-adjusted span table (see the module docstring for the columns)."""
    path: pl.DataFrame
    """Critical-path segments of every trace (ns, adjusted clock)."""


def root_durations(spans: pl.DataFrame) -> pl.DataFrame:
    """One row per root span (true roots and orphans): ``root_row`` (row number in ``spans``),
    ``trace_id``, ``root_span_id``, ``root_service``, ``root_operation``, ``duration_ns``.
    Needs the ``is_root`` column."""
    return (
        spans.with_row_index("root_row")
        .filter(pl.col("is_root"))
        .select(
            pl.col("root_row").cast(pl.Int64),
            pl.col(s.TRACE_ID),
            pl.col(s.SPAN_ID).alias("root_span_id"),
            pl.col(s.SERVICE).cast(pl.String).alias("root_service"),
            pl.col(s.NAME).cast(pl.String).alias("root_operation"),
            pl.col(s.DURATION),
        )
    )


def _stall_sections(
    raw: pl.DataFrame,
) -> tuple[
    tuple[Stall, ...],
    tuple[Cascade, ...],
    tuple[UnexplainedTimeout, ...],
    tuple[RuntimeSummary, ...],
]:
    """Stalls, cascades, unexplained timeouts and runtimes from the stalls engineer's modules."""
    from tailscope.analysis._stall_common import client_calls, narrow
    from tailscope.analysis.cascades import find_cascades
    from tailscope.analysis.runtimes import compare_runtimes
    from tailscope.analysis.stalls import detect_stalls

    narrowed = narrow(raw)  # once for all three analyses
    calls = client_calls(narrowed)
    stalls = tuple(detect_stalls(raw, narrowed=narrowed, calls=calls))
    cascades, unexplained = find_cascades(raw, stalls, narrowed=narrowed, calls=calls)
    runtimes = tuple(compare_runtimes(raw, stalls, narrowed=narrowed))
    return stalls, tuple(cascades), tuple(unexplained), runtimes


def analyze(ingest: IngestResult, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse an ingested span table: percentiles, critical paths, hops, stalls.

    Args:
        ingest: the span table and ingest statistics from :func:`tailscope.ingest.read_spans`.
        options: thresholds; defaults when None.

    Returns:
        The :class:`Analysis` (report, adjusted spans, critical-path segments).
    """
    options = options or AnalysisOptions()
    tree = build_span_tree(ingest.table)
    raw = pl.from_arrow(ingest.table)
    assert isinstance(raw, pl.DataFrame)
    # the same roots and orphans as tailscope.analysis.traces.with_roots, from the tree
    raw = raw.with_columns(
        pl.Series("is_root", tree.parent < 0, dtype=pl.Boolean),
        pl.Series("is_orphan", tree.is_orphan, dtype=pl.Boolean),
    )
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
    path = segments_frame(adjusted, tree)

    root_keys = {
        (str(a), str(b), int(c))
        for a, b, c in raw.filter(pl.col("is_root"))
        .select(s.SERVICE, s.NAME, s.KIND)
        .unique()
        .iter_rows()
    }
    operations = operation_stats(raw, options.exemplars, root_keys)
    roots, hops = hop_attribution(
        path,
        root_durations(adjusted),
        HopOptions(
            min_tail_requests=options.min_tail_requests,
            resamples=options.bootstrap_resamples,
            seed=options.seed,
        ),
    )

    problems = [
        ProblemEntry(file=p.file, line=p.line, reason=p.reason)
        for p in ingest.stats.problems[:MAX_PROBLEMS_IN_REPORT]
    ]
    stalls: tuple[Stall, ...] = ()
    cascades: tuple[Cascade, ...] = ()
    unexplained: tuple[UnexplainedTimeout, ...] = ()
    runtimes: tuple[RuntimeSummary, ...] = ()
    if options.detect_stalls and raw.height:
        try:
            stalls, cascades, unexplained, runtimes = _stall_sections(raw)
        except Exception as exc:  # a failing detector must not cost the rest of the report
            problems.append(
                ProblemEntry(
                    file="<analysis>",
                    line=None,
                    reason=f"stall/cascade analysis failed: {type(exc).__name__}: {exc}",
                )
            )

    time_range = (int(start.min()), int(end.max())) if raw.height else None
    summary = InputSummary(
        files=tuple(ingest.stats.files),
        spans=raw.height,
        traces=int(raw[s.TRACE_ID].n_unique()) if raw.height else 0,
        services=int(raw[s.SERVICE].n_unique()) if raw.height else 0,
        skipped_records=ingest.stats.skipped_records,
        problems=tuple(problems),
        orphan_spans=int(raw["is_orphan"].sum()),
        skew_adjustments=int(corrected.sum()),
        skipped_by_reason=dict(ingest.stats.skipped),
        duplicate_spans=ingest.stats.duplicates_dropped,
        non_trace_records=ingest.stats.non_trace_lines,
        unknown_service_resources=ingest.stats.unknown_service_resources,
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
