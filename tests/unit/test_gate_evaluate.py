"""The gate decision on simulated systems: same system passes (measured false-alarm rate), a 20 %
slower bottleneck fails on its root operation, too few requests is inconclusive."""

from __future__ import annotations

import pyarrow as pa
import pytest
from repo_paths import GATE_SCENARIO as _GATE_SCENARIO

from tailscope.errors import BaselineError, UsageError
from tailscope.gate import (
    Baseline,
    GatePolicy,
    QuantileComparison,
    build_baseline,
    evaluate,
    threshold_check,
)
from tailscope.simulate import Scenario, load_scenario, simulate

SCENARIO = _GATE_SCENARIO
ROOT = "web/GET /search"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


def _summarise(table: pa.Table) -> Baseline:
    return build_baseline(table, label=None, created="t", tailscope_version="test")


def _run(scenario: Scenario, seed: int, requests: int) -> Baseline:
    return _summarise(simulate(scenario, seed=seed, requests=requests).table)


def test_false_alarm_rate_of_identical_systems_is_below_5_percent(scenario: Scenario) -> None:
    # GIVEN 20 pairs of runs of the same system with different seeds, gated with NO allowance
    # (any significant increase fails) on every operation at p50, p90 and p99
    policy = GatePolicy(quantiles=(0.5, 0.9, 0.99), max_increase_pct=0.0, operations=("*",))
    rows: list[QuantileComparison] = []
    for pair in range(20):
        baseline = _run(scenario, seed=1000 + 2 * pair, requests=800)
        current = _run(scenario, seed=1001 + 2 * pair, requests=800)
        rows.extend(evaluate(current, baseline, policy).rows)
    conclusive = [r for r in rows if r.verdict != "inconclusive"]
    false_alarms = [r for r in conclusive if r.verdict == "fail"]
    # THEN (almost) every comparison is conclusive, so the rate below is measured, not assumed
    assert len(rows) == 20 * 4 * 3
    assert len(conclusive) == len(rows)
    # AND the false-alarm rate is below 5 % (the design bound is α/2 = 2.5 % per comparison)
    rate = len(false_alarms) / len(conclusive)
    assert rate < 0.05, (
        f"false-alarm rate {rate:.1%}: {[(r.name, r.quantile) for r in false_alarms]}"
    )


def test_bottleneck_20_percent_slower_fails_on_its_root_operation(scenario: Scenario) -> None:
    # GIVEN the same system, but the bottleneck hop (search's own work) 20 % slower
    slower = scenario.with_work_scaled("search", "Search", 1.2)
    baseline = _run(scenario, seed=21, requests=6000)
    current = _run(slower, seed=22, requests=6000)
    policy = GatePolicy(quantiles=(0.99,), max_increase_pct=5.0)
    # WHEN gated at p99 with 5 % allowed
    verdict = evaluate(current, baseline, policy)
    # THEN the gate fails, on the root operation, and says so
    assert verdict.verdict == "fail"
    [row] = verdict.rows
    assert (row.name, row.verdict) == (ROOT, "fail")
    assert row.interval_pct is not None and row.interval_pct[0] > 5.0
    assert row.change_pct is not None and 10.0 < row.change_pct < 25.0
    assert ROOT in verdict.summary()
    # AND with --operations the slow hop itself is named, its caller's client span too
    hops = evaluate(current, baseline, GatePolicy(max_increase_pct=5.0, operations=("*",)))
    failed = {r.name for r in hops.rows_with("fail")}
    assert "search/Search (server)" in failed
    assert "search/SELECT index-db (client)" not in failed


def test_too_few_requests_is_inconclusive_and_fails_only_when_strict(scenario: Scenario) -> None:
    baseline = _run(scenario, seed=31, requests=2000)
    small = _run(scenario, seed=32, requests=300)  # p99 at 95 % needs 437 per side
    verdict = evaluate(small, baseline, GatePolicy())
    assert verdict.verdict == "inconclusive"
    assert [r.verdict for r in verdict.rows] == ["inconclusive"]
    assert "needs >= 437" in verdict.rows[0].reason
    assert not verdict.failed
    assert evaluate(small, baseline, GatePolicy(strict=True)).failed
    # --min-samples makes an otherwise conclusive comparison inconclusive
    bigger = _run(scenario, seed=33, requests=1000)
    assert evaluate(bigger, baseline, GatePolicy(min_samples=1500)).verdict == "inconclusive"
    assert evaluate(bigger, baseline, GatePolicy(min_samples=500)).verdict == "pass"


def test_mismatched_baseline_and_bad_policy_are_errors(scenario: Scenario) -> None:
    current = _run(scenario, seed=41, requests=500)
    from tailscope.simulate import builtin_scenario

    other = _summarise(simulate(builtin_scenario("steady"), seed=1, requests=200).table)
    with pytest.raises(BaselineError, match="baseline does not match the input"):
        evaluate(current, other, GatePolicy())
    with pytest.raises(UsageError, match="matches no operation"):
        evaluate(current, current, GatePolicy(operations=("nosuch/*",)))
    with pytest.raises(UsageError, match="--quantile"):
        GatePolicy(quantiles=(99.0,))
    with pytest.raises(UsageError, match="max-increase"):
        GatePolicy(max_increase_pct=None, max_increase_ms=None)


def test_absolute_allowance_and_threshold_checks(scenario: Scenario) -> None:
    baseline = _run(scenario, seed=51, requests=2500)
    current = _run(scenario.with_work_scaled("search", "Search", 1.5), seed=52, requests=2500)
    # a 50 % slower bottleneck adds roughly 10-20 ms at p99: over 2 ms, not over 100 ms
    assert evaluate(current, baseline, GatePolicy(max_increase_pct=None, max_increase_ms=2)).failed
    relaxed = GatePolicy(max_increase_pct=None, max_increase_ms=100)
    assert evaluate(current, baseline, relaxed).verdict == "pass"
    # with both limits, both must be exceeded
    both = GatePolicy(max_increase_pct=5.0, max_increase_ms=100)
    assert evaluate(current, baseline, both).verdict == "pass"
    # a failing --fail-on-* check fails an otherwise passing gate
    checks = (threshold_check("stalls", 3, 0), threshold_check("cascades", 0, 0))
    verdict = evaluate(baseline, baseline, GatePolicy(), checks)
    assert verdict.failed and "stalls 3 > 0" in verdict.summary()
