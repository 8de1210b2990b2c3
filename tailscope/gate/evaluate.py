"""Gate a run against a baseline: ``evaluate(current, baseline, policy) -> GateVerdict``.

For each gated operation and quantile, each side (both read from HdrHistograms, as a stored
baseline file holds them) gets a Harrell–Davis estimate with its Maritz–Jarrett standard error
(:mod:`tailscope.gate.intervals`). The change gets a two-sided normal interval at the policy's
confidence: of the log-ratio (delta method) and of the difference. An operation **fails only
when the lower end of the interval lies beyond the allowed increase** (with both a relative and
an absolute allowance, beyond both): a one-sided test of "the quantile rose by no more than the
allowance" at level ``(1 - confidence) / 2``. Its false-alarm rate and power are measured by
``benchmarks/gate_power.py`` (``docs/gating.md``).

Too few samples for the tail to be reached (fewer than the order-statistic minimum, e.g. p99 at
95 % needs 437 per side), fewer than ``min_samples``, or an operation present on one side only:
"inconclusive", which passes unless the policy is strict.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from tailscope.errors import BaselineError, UsageError
from tailscope.gate.baseline import Baseline, OperationHistogram
from tailscope.gate.intervals import (
    QuantileEstimate,
    harrell_davis_from_histogram,
    order_statistic_ranks,
)
from tailscope.report.model import (
    GatePolicy,
    GateVerdict,
    QuantileComparison,
    ThresholdCheck,
    quantile_label,
)
from tailscope.types import Verdict

__all__ = [
    "GatePolicy",
    "GateVerdict",
    "QuantileChange",
    "QuantileComparison",
    "ThresholdCheck",
    "evaluate",
    "minimum_samples",
    "quantile_change",
    "quantile_label",
    "select_series",
    "threshold_check",
]

NS_PER_MS = 1_000_000


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
    base_est = harrell_davis_from_histogram(base.histogram, q) if base else None
    cur_est = harrell_davis_from_histogram(cur.histogram, q) if cur else None
    base_ms = base_est.estimate_ns / NS_PER_MS if base_est else None
    cur_ms = cur_est.estimate_ns / NS_PER_MS if cur_est else None
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
    need = minimum_samples(q, policy.side_confidence)
    if fewest < need or base_est is None or cur_est is None:
        return row(
            "inconclusive",
            f"{fewest} samples: a {label} comparison at {policy.confidence:.0%} needs >= {need} "
            "per side",
        )
    change = quantile_change(base_est, cur_est, policy.confidence)
    interval = change.interval_ms
    interval_pct = change.interval_pct
    low_ms, low_pct = interval[0], interval_pct[0]
    beyond_pct = policy.max_increase_pct is None or low_pct > policy.max_increase_pct
    beyond_ms = policy.max_increase_ms is None or low_ms > policy.max_increase_ms
    allowed = _allowance(policy)
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


@dataclass(frozen=True, slots=True)
class QuantileChange:
    """Two-sided confidence intervals of a quantile's change, current vs baseline."""

    interval_ms: tuple[float, float]
    """Difference ``current - baseline``, milliseconds."""
    interval_pct: tuple[float, float]
    """Ratio ``current / baseline`` minus 1, percent (the upper end may be ``inf``)."""


def quantile_change(
    baseline: QuantileEstimate, current: QuantileEstimate, confidence: float
) -> QuantileChange:
    """Normal-theory intervals of the difference and of the log-ratio of two independent
    Harrell–Davis estimates, with their Maritz–Jarrett standard errors.

    Difference: ``d ± z·sqrt(se_b² + se_c²)``. Ratio: ``exp(log(c/b) ± z·sqrt((se_b/b)² +
    (se_c/c)²))`` (delta method on the log scale, where a ratio of quantiles is close to normal
    and the interval stays positive). ``z`` is the two-sided normal quantile of ``confidence``.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    b, c = baseline.estimate_ns, current.estimate_ns
    se_diff = math.hypot(baseline.standard_error_ns, current.standard_error_ns)
    diff = (c - b) / NS_PER_MS
    half = z * se_diff / NS_PER_MS
    interval_ms = (diff - half, diff + half)
    if b <= 0.0 or c <= 0.0:
        return QuantileChange(interval_ms, (-100.0, math.inf))
    se_log = math.hypot(baseline.standard_error_ns / b, current.standard_error_ns / c)
    log_ratio = math.log(c / b)
    interval_pct = (
        100.0 * math.expm1(log_ratio - z * se_log),
        100.0 * math.expm1(log_ratio + z * se_log),
    )
    return QuantileChange(interval_ms, interval_pct)


def _allowance(policy: GatePolicy) -> str:
    parts = []
    if policy.max_increase_pct is not None:
        parts.append(f"+{policy.max_increase_pct:g}%")
    if policy.max_increase_ms is not None:
        parts.append(f"+{policy.max_increase_ms:g} ms")
    return " and ".join(parts)
