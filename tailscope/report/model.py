"""The report model: frozen, typed, JSON-serialisable. What analyses produce and every output reads.

Renderers (text, JSON, Markdown), the TUI and the gate consume these objects; they never reach
back into the span table to recompute analytics. Field names are the JSON keys documented in
``docs/report-schema.md``; bump :data:`SCHEMA_VERSION` on any incompatible change.
Times: ``*_ms`` fields are milliseconds (float), ``*_unix_nano`` integer Unix nanoseconds.
Trace ids are lowercase hex strings everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tailscope.errors import UsageError
from tailscope.report.numbers import signed_percent
from tailscope.types import HopComponent, RankingStatus, StallKind, Verdict

SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True)
class ProblemEntry:
    """One skipped input record."""

    file: str
    line: int | None
    """1-based line (or None for binary inputs)."""
    reason: str


@dataclass(frozen=True, slots=True)
class InputSummary:
    """What was read, and what could not be."""

    files: tuple[str, ...]
    spans: int
    """Spans in the table (after dropping bad records and duplicates)."""
    traces: int
    services: int
    skipped_records: int
    """Malformed records skipped (see ``problems`` and ``skipped_by_reason``)."""
    problems: tuple[ProblemEntry, ...]
    """The first few skipped records with file, line and reason (capped; all are counted)."""
    orphan_spans: int
    """Spans whose parent is not in the input (treated as roots of their own)."""
    skew_adjustments: int
    """Cross-host clock-skew shifts applied while building critical paths."""
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    duplicate_spans: int = 0
    """Spans seen more than once (same trace and span id); all but one dropped."""
    non_trace_records: int = 0
    """Metric/log lines in mixed exports, skipped quietly."""
    unknown_service_resources: int = 0
    """Resources with no ``service.name`` (named ``unknown_service``)."""
    time_range_unix_nano: tuple[int, int] | None = None
    """Earliest span start and latest span end."""


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Latency of one (service, operation, kind), from an HdrHistogram (3 significant digits)."""

    service: str
    operation: str
    kind: str
    """``server``, ``client``, ``internal``, ``producer``, ``consumer`` or ``unspecified``."""
    count: int
    error_rate: float
    """Fraction of spans with status ERROR (0..1)."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    exemplar_trace_ids: tuple[str, ...]
    """Traces of the slowest spans, slowest first."""
    is_root: bool = False
    """True when this operation is the root (entry point) of some traces."""


@dataclass(frozen=True, slots=True)
class HopShare:
    """How much one hop contributes to one root operation's latency variance and p99 tail."""

    root_service: str
    root_operation: str
    hop_service: str
    hop_operation: str
    component: HopComponent
    requests: int
    """Root requests (traces) of this root operation analysed."""
    mean_ms: float
    """Mean critical-path time of this hop per request (0 when not on the path)."""
    p99_ms: float
    on_critical_path: float
    """Fraction of requests in which this hop is on the critical path."""
    variance_share: float
    """Cov(x_h, T) / Var(T); shares of one root operation sum to 1."""
    variance_share_ci: tuple[float, float]
    """Bootstrap 95 % interval."""
    tail_share: float
    """(E[x_h | T > p99] - E[x_h]) / (E[T | T > p99] - E[T]); sums to 1."""
    tail_share_ci: tuple[float, float]
    inconclusive: bool = False
    """Too few tail requests for the shares to mean anything; shown but not ranked."""
    exemplar_trace_ids: tuple[str, ...] = ()
    """Slowest requests in which this hop took the most time."""
    stall_ids: tuple[int, ...] = ()
    """For ``component == "stall"``: indexes into ``Report.stalls`` of the pauses this time
    was spent behind (``hop_service`` is the paused service)."""


@dataclass(frozen=True, slots=True)
class HopRef:
    """A hop named in a verdict, with its tail share and 95 % interval."""

    hop_service: str
    hop_operation: str
    component: HopComponent
    tail_share: float
    tail_share_ci: tuple[float, float]


@dataclass(frozen=True, slots=True)
class PausedService:
    """One service whose stop-the-world pauses are on a root operation's critical paths."""

    service: str
    language: str | None
    """``telemetry.sdk.language`` of its spans (e.g. ``java``), if exported."""
    stall_ids: tuple[int, ...]
    """Indexes into ``Report.stalls`` of those pauses."""
    min_pause_ms: float
    max_pause_ms: float
    tail_share: float
    """Share of the root's tail spent behind this service's pauses."""
    tail_share_ci: tuple[float, float]


@dataclass(frozen=True, slots=True)
class RootVerdict:
    """The answer for one entry point: which hop owns its tail, and how much of it is pause.

    Built by :func:`tailscope.analysis.verdict.root_verdict` from the numbers in this report;
    ``text`` is the one sentence every output shows first."""

    status: RankingStatus
    """``conclusive``: the top hop's tail-share interval lies above the next hop's."""
    text: str
    top: HopRef | None
    """The hop with the largest tail share (None when nothing is ranked)."""
    indistinct: tuple[HopRef, ...]
    """When ``ambiguous``: the other hops whose interval overlaps the top hop's."""
    stall_tail_share: float
    """Share of the tail spent behind detected stop-the-world pauses (all ``stall`` hops)."""
    stall_tail_share_ci: tuple[float, float]
    paused_services: tuple[PausedService, ...]
    """Largest share first."""


@dataclass(frozen=True, slots=True)
class RootSummary:
    """One root operation (entry point): its end-to-end latency and analysis status."""

    service: str
    operation: str
    requests: int
    p50_ms: float
    p99_ms: float
    tail_requests: int
    """Requests above p99 (the tail that tail shares are computed on)."""
    inconclusive: bool
    """Fewer tail requests than the floor: shares are noise, nothing is ranked."""
    verdict: RootVerdict | None = None
    """What to tell a person first (see :class:`RootVerdict`)."""


@dataclass(frozen=True, slots=True)
class Stall:
    """A window in which one process (or every process of a host) took no timestamps."""

    service: str
    instance: str
    host: str | None
    start_unix_nano: int
    end_unix_nano: int
    duration_ms: float
    spans_affected: int
    """Spans of this instance in flight across the window (stretched)."""
    queued_requests: int
    """Requests to this instance that arrived during the window and started after it."""
    confidence: float
    """0..1: how strongly the evidence says this was a stop-the-world pause."""
    kind: StallKind
    evidence: tuple[str, ...] = ()
    """Short human-readable reasons (e.g. ``7 spans of 5 traces in flight``)."""


@dataclass(frozen=True, slots=True)
class Cascade:
    """Timeouts and retries upstream of one stall."""

    stall: int
    """Index into ``Report.stalls``."""
    service: str
    instance: str
    start_unix_nano: int
    end_unix_nano: int
    timed_out_spans: int
    retries: int
    amplification: float
    """Attempts per logical call on the affected edges (1.0 = no retries)."""
    root_operations: tuple[str, ...]
    """``service operation`` of the affected roots."""
    trace_ids: tuple[str, ...]
    """Every affected trace, lowercase hex."""
    p99_impact_ms: float
    """Root p99 with the affected traces minus without them (largest over affected roots)."""


@dataclass(frozen=True, slots=True)
class UnexplainedTimeout:
    """Timeouts on one call edge that no stall explains (slow dependency, overload ...)."""

    caller_service: str
    callee: str
    """The callee service, or the ``server.address`` / ``db.system`` of an uninstrumented one."""
    operation: str
    timed_out_spans: int
    inferred_timeout_ms: float | None
    likely_hop: str
    """Where the time went, e.g. ``dependency postgres``, ``self orders``, ``network``."""
    trace_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuntimeSummary:
    """Tail latency per runtime, from SERVER spans' self time."""

    language: str
    runtime: str | None
    services: int
    instances: int
    spans: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    tail_ratio: float
    """p99 / p50 (0 when p50 is 0)."""
    stalls: int
    stall_ms_per_minute_per_instance: float


# --- the gate's verdict (``tailscope gate``, the TUI's Compare screen) -------------------------
@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What counts as a regression."""

    quantiles: tuple[float, ...] = (0.99,)
    max_increase_pct: float | None = 10.0
    """Allowed relative increase of each quantile, percent. ``None``: no relative limit."""
    max_increase_ms: float | None = None
    """Allowed absolute increase, milliseconds. ``None``: no absolute limit."""
    confidence: float = 0.95
    """Two-sided confidence of the change interval; failing needs its lower end beyond the
    allowance, so the false-alarm rate at the allowance is at most ``(1 - confidence) / 2``."""
    min_samples: int = 0
    """Operations with fewer samples on either side are inconclusive."""
    operations: tuple[str, ...] = ()
    """Globs over ``service/operation``; empty: gate the root operations."""
    strict: bool = False
    """Inconclusive operations fail the gate."""

    def __post_init__(self) -> None:
        if not self.quantiles:
            raise UsageError("give at least one --quantile")
        for q in self.quantiles:
            if not 0.0 < q < 1.0:
                raise UsageError(f"--quantile must be between 0 and 1 (exclusive), got {q}")
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"--confidence must be in [0.5, 1), got {self.confidence}")
        if self.max_increase_pct is None and self.max_increase_ms is None:
            raise UsageError("give --max-increase-pct and/or --max-increase-ms")
        for name, value in (
            ("--max-increase-pct", self.max_increase_pct),
            ("--max-increase-ms", self.max_increase_ms),
        ):
            if value is not None and (value < 0 or not math.isfinite(value)):
                raise UsageError(f"{name} must be a non-negative number, got {value}")
        if self.min_samples < 0:
            raise UsageError(f"--min-samples must be >= 0, got {self.min_samples}")

    @property
    def side_confidence(self) -> float:
        """``1 - α/2``: the confidence at which each side's order-statistic interval must exist
        for the comparison to be conclusive (the sample-size floor)."""
        return 1.0 - (1.0 - self.confidence) / 2.0


@dataclass(frozen=True, slots=True)
class QuantileComparison:
    """One row of the gate table: one operation at one quantile."""

    name: str
    """``service/operation``, with `` (kind)`` for non-root operations."""
    service: str
    operation: str
    kind: str | None
    """Span kind, or ``None`` for a root operation (end-to-end request latency)."""
    quantile: float
    baseline_count: int
    current_count: int
    baseline_ms: float | None
    current_ms: float | None
    change_ms: float | None
    change_pct: float | None
    """Point estimate of the change, percent of the baseline quantile."""
    interval_ms: tuple[float, float] | None
    """Confidence interval of the change, ms (``None`` when inconclusive)."""
    interval_pct: tuple[float, float] | None
    """Confidence interval of the relative change, percent."""
    verdict: Verdict
    reason: str
    """One line: why this verdict."""

    @property
    def quantile_label(self) -> str:
        return quantile_label(self.quantile)


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    """A count that must not exceed a limit (``--fail-on-stalls``, ``--fail-on-cascades``)."""

    name: str
    observed: int
    limit: int
    verdict: Verdict
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The outcome of ``tailscope gate``: every row, every threshold check, and the decision."""

    verdict: Verdict
    """``fail`` if any row or check failed (or, with ``strict``, was inconclusive); otherwise
    ``inconclusive`` if any row was, else ``pass``."""
    rows: tuple[QuantileComparison, ...]
    checks: tuple[ThresholdCheck, ...]
    policy: GatePolicy
    baseline_label: str | None
    baseline_created: str
    current_label: str | None

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    def rows_with(self, verdict: Verdict) -> tuple[QuantileComparison, ...]:
        return tuple(r for r in self.rows if r.verdict == verdict)

    def summary(self) -> str:
        """One line, e.g. ``FAIL: 3 operation(s) gated; 1 regression(s) (a/b p99 +23.0%)``."""
        failed = self.rows_with("fail")
        inconclusive = self.rows_with("inconclusive")
        names = sorted({r.name for r in self.rows})
        parts = [f"{self.verdict.upper()}: {len(names)} operation(s) gated"]
        if failed:
            worst = ", ".join(
                f"{r.name} {r.quantile_label} {signed_percent(r.change_pct)}" for r in failed[:3]
            )
            parts.append(f"{len(failed)} regression(s) ({worst})")
        if inconclusive:
            parts.append(f"{len(inconclusive)} inconclusive")
        failed_checks = [c for c in self.checks if c.verdict == "fail"]
        if failed_checks:
            parts.append(", ".join(f"{c.name} {c.observed} > {c.limit}" for c in failed_checks))
        return "; ".join(parts)


def quantile_label(q: float) -> str:
    """``p99``, ``p99.9``, ``p50``."""
    text = f"{q * 100:.4f}".rstrip("0").rstrip(".")
    return f"p{text}"


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``tailscope analyze`` found. Sections are tuples, ordered most important first."""

    tailscope_version: str
    input: InputSummary
    operations: tuple[OperationStats, ...]
    roots: tuple[RootSummary, ...]
    hops: tuple[HopShare, ...]
    stalls: tuple[Stall, ...] = ()
    cascades: tuple[Cascade, ...] = ()
    unexplained_timeouts: tuple[UnexplainedTimeout, ...] = ()
    runtimes: tuple[RuntimeSummary, ...] = ()
    schema_version: int = SCHEMA_VERSION
    gate: GateVerdict | None = None
    """The gate's verdict against a baseline (``tailscope gate``, ``tailscope tui --baseline``);
    ``None`` when the run was not gated."""
