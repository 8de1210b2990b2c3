"""Gate a run against a baseline: ``evaluate(current, baseline, policy) -> GateVerdict``.

For each gated operation and quantile the decision uses a confidence interval for the change of
the quantile. Each side gets a distribution-free order-statistic interval
(:mod:`tailscope.gate.intervals`) at confidence ``1 - α/2``; by Bonferroni both hold together with
probability at least ``1 - α``, so the difference interval
``[current_low - baseline_high, current_high - baseline_low]`` (and the ratio interval
``[current_low / baseline_high, current_high / baseline_low]``) covers the true change with
probability at least ``1 - α``. An operation **fails only when the whole interval lies beyond the
allowed increase**; with both a relative and an absolute allowance, it must exceed both. Under
the assumptions (independent requests, the same load in both runs) the false-alarm rate per
operation and quantile is at most ``α/2``.

Too few samples for the interval to exist at this confidence (p99 at 95 % needs 437 per side),
fewer than ``min_samples``, or an operation present on one side only: "inconclusive", which
passes unless the policy is strict.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tailscope.errors import BaselineError, UsageError
from tailscope.gate.baseline import Baseline, OperationHistogram
from tailscope.gate.intervals import order_statistic_ranks, quantile_interval_from_histogram
from tailscope.types import Verdict

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What counts as a regression."""

    quantiles: tuple[float, ...] = (0.99,)
    max_increase_pct: float | None = 10.0
    """Allowed relative increase of each quantile, percent. ``None``: no relative limit."""
    max_increase_ms: float | None = None
    """Allowed absolute increase, milliseconds. ``None``: no absolute limit."""
    confidence: float = 0.95
    """Joint confidence of the change interval (each side is computed at ``1 - α/2``)."""
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
        """Confidence of each side's quantile interval (Bonferroni: ``1 - α/2``)."""
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
                f"{r.name} {r.quantile_label} {_signed_pct(r.change_pct)}" for r in failed[:3]
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


def _signed_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def minimum_samples(quantile: float, confidence: float) -> int:
    """Smallest sample count for which the order-statistic interval exists."""
    tail = (1.0 - confidence) / 2.0
    n = math.ceil(max(math.log(tail) / math.log(quantile), math.log(tail) / math.log1p(-quantile)))
    while order_statistic_ranks(n, quantile, confidence) is None:
        n += 1
    while n > 2 and order_statistic_ranks(n - 1, quantile, confidence) is not None:
        n -= 1
    return n


def threshold_check(name: str, observed: int, limit: int, detail: str = "") -> ThresholdCheck:
    """``fail`` when ``observed`` exceeds ``limit`` (``--fail-on-stalls 0`` fails on any)."""
    return ThresholdCheck(name, observed, limit, "fail" if observed > limit else "pass", detail)


def select_series(
    current: Baseline, baseline: Baseline, globs: Sequence[str]
) -> list[tuple[str, OperationHistogram | None, OperationHistogram | None]]:
    """The (display name, baseline side, current side) pairs to gate.

    No globs: every root operation of either side. Globs: every operation whose
    ``service/operation`` matches one (a glob matching nothing is a usage error).
    """
    if not globs:
        base = {r.key: r for r in baseline.roots}
        cur = {r.key: r for r in current.roots}
        keys = sorted(set(base) | set(cur), key=_sort_key)
        return [(_display(k), base.get(k), cur.get(k)) for k in keys]
    base = {o.key: o for o in baseline.operations}
    cur = {o.key: o for o in current.operations}
    every = set(base) | set(cur)
    chosen: set[tuple[str, str, str | None]] = set()
    for glob in globs:
        matched = {k for k in every if fnmatch.fnmatchcase(f"{k[0]}/{k[1]}", glob)}
        if not matched:
            known = sorted({f"{k[0]}/{k[1]}" for k in every})
            raise UsageError(
                f"--operations {glob!r} matches no operation in the baseline or the input "
                f"(known: {', '.join(known[:8])}{' ...' if len(known) > 8 else ''})"
            )
        chosen |= matched
    return [(_display(k), base.get(k), cur.get(k)) for k in sorted(chosen, key=_sort_key)]


def _sort_key(key: tuple[str, str, str | None]) -> tuple[str, str, str]:
    return (key[0], key[1], key[2] or "")


def _display(key: tuple[str, str, str | None]) -> str:
    name = f"{key[0]}/{key[1]}"
    return name if key[2] is None else f"{name} ({key[2]})"


def evaluate(
    current: Baseline,
    baseline: Baseline,
    policy: GatePolicy,
    checks: Sequence[ThresholdCheck] = (),
) -> GateVerdict:
    """Compare the current run's histograms with the baseline's under ``policy``.

    Args:
        current: the run being gated, summarised with :func:`~tailscope.gate.build_baseline`.
        baseline: the known-good run(s).
        policy: quantiles, allowances (percent and/or ms), confidence, sample minimum, globs.
        checks: extra threshold checks (stalls, cascades) folded into the overall verdict.

    Raises:
        BaselineError: no gated operation appears on both sides (the baseline is of another
            system or another endpoint set).
        UsageError: a glob matches nothing.
    """
    series = select_series(current, baseline, policy.operations)
    if not series:
        raise BaselineError("nothing to gate: neither the baseline nor the input has operations")
    if not any(b is not None and c is not None for _, b, c in series):
        base_names = sorted({b.name for _, b, _c in series if b is not None})
        cur_names = sorted({c.name for _, _b, c in series if c is not None})
        raise BaselineError(
            "baseline does not match the input: no gated operation is in both "
            f"(baseline: {_few(base_names)}; input: {_few(cur_names)})"
        )
    rows = [
        _compare(name, base, cur, q, policy) for name, base, cur in series for q in policy.quantiles
    ]
    verdicts = {r.verdict for r in rows} | {c.verdict for c in checks}
    overall: Verdict
    if "fail" in verdicts or (policy.strict and "inconclusive" in verdicts):
        overall = "fail"
    elif "inconclusive" in verdicts:
        overall = "inconclusive"
    else:
        overall = "pass"
    return GateVerdict(
        verdict=overall,
        rows=tuple(rows),
        checks=tuple(checks),
        policy=policy,
        baseline_label=baseline.label,
        baseline_created=baseline.created,
        current_label=current.label,
    )


def _few(names: list[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _compare(
    name: str,
    base: OperationHistogram | None,
    cur: OperationHistogram | None,
    q: float,
    policy: GatePolicy,
) -> QuantileComparison:
    label = quantile_label(q)
    ref = base or cur
    assert ref is not None
    base_ms = base.histogram.quantile_ns(q) / NS_PER_MS if base else None
    cur_ms = cur.histogram.quantile_ns(q) / NS_PER_MS if cur else None
    change_ms = cur_ms - base_ms if cur_ms is not None and base_ms is not None else None
    change_pct = 100.0 * change_ms / base_ms if change_ms is not None and base_ms else None

    def row(
        verdict: Verdict,
        reason: str,
        interval_ms: tuple[float, float] | None = None,
        interval_pct: tuple[float, float] | None = None,
    ) -> QuantileComparison:
        return QuantileComparison(
            name=name,
            service=ref.service,
            operation=ref.operation,
            kind=ref.kind,
            quantile=q,
            baseline_count=base.count if base else 0,
            current_count=cur.count if cur else 0,
            baseline_ms=base_ms,
            current_ms=cur_ms,
            change_ms=change_ms,
            change_pct=change_pct,
            interval_ms=interval_ms,
            interval_pct=interval_pct,
            verdict=verdict,
            reason=reason,
        )

    if base is None:
        return row("inconclusive", "not in the baseline (new operation)")
    if cur is None:
        return row("inconclusive", "no samples in the input (operation missing)")
    fewest = min(base.count, cur.count)
    if fewest < policy.min_samples:
        return row("inconclusive", f"{fewest} samples < --min-samples {policy.min_samples}")
    side = policy.side_confidence
    base_ci = quantile_interval_from_histogram(base.histogram, q, side)
    cur_ci = quantile_interval_from_histogram(cur.histogram, q, side)
    if base_ci is None or cur_ci is None:
        need = minimum_samples(q, side)
        return row(
            "inconclusive",
            f"{fewest} samples: a {label} interval at {policy.confidence:.0%} needs >= {need} "
            "per side",
        )
    low_ms = (cur_ci.lower_ns - base_ci.upper_ns) / NS_PER_MS
    high_ms = (cur_ci.upper_ns - base_ci.lower_ns) / NS_PER_MS
    low_pct = 100.0 * (cur_ci.lower_ns / base_ci.upper_ns - 1.0)
    high_pct = (
        100.0 * (cur_ci.upper_ns / base_ci.lower_ns - 1.0) if base_ci.lower_ns > 0 else math.inf
    )
    beyond_pct = policy.max_increase_pct is None or low_pct > policy.max_increase_pct
    beyond_ms = policy.max_increase_ms is None or low_ms > policy.max_increase_ms
    allowed = _allowance(policy)
    interval = (low_ms, high_ms)
    interval_pct = (low_pct, high_pct)
    if beyond_pct and beyond_ms:
        return row(
            "fail",
            f"{label} rose by at least {low_ms:.2f} ms ({low_pct:+.1f}%) at "
            f"{policy.confidence:.0%} confidence; allowed {allowed}",
            interval,
            interval_pct,
        )
    point_over = (
        change_pct is not None
        and change_ms is not None
        and (policy.max_increase_pct is None or change_pct > policy.max_increase_pct)
        and (policy.max_increase_ms is None or change_ms > policy.max_increase_ms)
    )
    reason = (
        f"increase above {allowed} is not significant at {policy.confidence:.0%}"
        if point_over
        else f"within {allowed}"
    )
    return row("pass", reason, interval, interval_pct)


def _allowance(policy: GatePolicy) -> str:
    parts = []
    if policy.max_increase_pct is not None:
        parts.append(f"+{policy.max_increase_pct:g}%")
    if policy.max_increase_ms is not None:
        parts.append(f"+{policy.max_increase_ms:g} ms")
    return " and ".join(parts)
