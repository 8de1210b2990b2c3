"""False-alarm rate and power of ``tailscope gate`` on simulated seed pairs (docs/gating.md).

For each size (requests per run) and each of ``--pairs`` pairs it simulates, with the scenario
of ``tailscope generate`` (default ``tests/data/gate-scenario.toml``) and different seeds:

* a baseline run and a current run of the **same system** (any failure is a false alarm);
* current runs of the system with one service's own work made slower (``--service``,
  ``--operation``), scaled so that the **true** root p99 rises by each of ``--rises`` percent.
  The scale factor is calibrated on two large reference runs and the true rise it gives is
  measured on another large run and printed (it is not assumed).

Each current run is gated against its pair's baseline exactly as ``tailscope gate`` does
(:func:`tailscope.gate.evaluate` on the two summaries; the baseline side goes through the
encoded baseline file, so only its histogram is used), at p99 with ``--max-increase-pct``
(default 10) and ``--confidence`` (default 0.95). For comparison the previous decision rule
(two order-statistic intervals at 97.5 % each, combined by Bonferroni) is applied to the same
pairs. Rates carry a 95 % Wilson interval.

    python benchmarks/gate_power.py                          # 40 pairs at 1,000 / 3,000 / 10,000
    python benchmarks/gate_power.py --pairs 10 --sizes 3000  # quick look
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from tailscope.gate import (
    Baseline,
    GatePolicy,
    build_baseline,
    decode_baseline,
    encode_baseline,
    evaluate,
    quantile_interval_from_histogram,
)
from tailscope.simulate import Scenario, load_scenario, simulate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = REPO / "tests" / "data" / "gate-scenario.toml"


def summarise(scenario: Scenario, seed: int, requests: int) -> Baseline:
    table = simulate(scenario, seed=seed, requests=requests).table
    return build_baseline(table, label=None, created="bench", tailscope_version="bench")


def through_file(baseline: Baseline) -> Baseline:
    """What the gate reads back from a stored baseline file (histograms only)."""
    return decode_baseline(encode_baseline(baseline), "baseline")


def root_p99_ns(run: Baseline) -> float:
    (root,) = run.roots
    return float(root.histogram.quantile_ns(0.99))


def old_rule_fails(base: Baseline, cur: Baseline, allowance_pct: float, confidence: float) -> bool:
    """The previous decision: Bonferroni-combined order-statistic intervals."""
    side = 1.0 - (1.0 - confidence) / 2.0
    b = quantile_interval_from_histogram(base.roots[0].histogram, 0.99, side)
    c = quantile_interval_from_histogram(cur.roots[0].histogram, 0.99, side)
    if b is None or c is None:
        return False
    return 100.0 * (c.lower_ns / b.upper_ns - 1.0) > allowance_pct


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Tally:
    fails: int = 0
    old_fails: int = 0
    inconclusive: int = 0
    pairs: int = 0
    changes: list[float] = field(default_factory=list)

    def rate(self, old: bool = False) -> str:
        k = self.old_fails if old else self.fails
        low, high = wilson(k, self.pairs)
        return f"{k}/{self.pairs} = {k / self.pairs:.1%} [{low:.1%}, {high:.1%}]"


def calibrate(
    scenario: Scenario, service: str, operation: str, rises: list[float], requests: int
) -> dict[float, tuple[float, float]]:
    """Scale factor per target rise, and the true rise it gives (measured on large runs)."""
    reference = root_p99_ns(summarise(scenario, 900_001, requests))
    probe_factor = 1.4
    probe = root_p99_ns(
        summarise(scenario.with_work_scaled(service, operation, probe_factor), 900_002, requests)
    )
    per_factor = (probe / reference - 1.0) / (probe_factor - 1.0)
    out: dict[float, tuple[float, float]] = {}
    for rise in rises:
        factor = 1.0 + rise / 100.0 / per_factor
        check = root_p99_ns(
            summarise(scenario.with_work_scaled(service, operation, factor), 900_003, requests)
        )
        out[rise] = (factor, 100.0 * (check / reference - 1.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--service", default="search")
    parser.add_argument("--operation", default="Search")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--rises", type=float, nargs="+", default=[10.0, 20.0, 30.0, 50.0])
    parser.add_argument("--max-increase-pct", type=float, default=10.0)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--reference-requests", type=int, default=100_000)
    args = parser.parse_args()

    started = time.perf_counter()
    scenario = load_scenario(args.scenario)
    factors = calibrate(scenario, args.service, args.operation, args.rises, args.reference_requests)
    for rise, (factor, true_rise) in factors.items():
        print(
            f"target +{rise:g}%: {args.service}/{args.operation} own work x{factor:.3f}; "
            f"true root p99 rise {true_rise:+.1f}% ({args.reference_requests:,} requests)"
        )
    policy = GatePolicy(
        quantiles=(0.99,), max_increase_pct=args.max_increase_pct, confidence=args.confidence
    )
    same: dict[int, Tally] = {n: Tally() for n in args.sizes}
    regressed: dict[tuple[int, float], Tally] = {
        (n, r): Tally() for n in args.sizes for r in args.rises
    }
    slower = {
        rise: scenario.with_work_scaled(args.service, args.operation, factor)
        for rise, (factor, _true) in factors.items()
    }
    for n in args.sizes:
        for pair in range(args.pairs):
            seed = 10_000 * n + 16 * pair
            base = through_file(summarise(scenario, seed, n))
            currents = [(same[n], summarise(scenario, seed + 1, n))]
            for k, rise in enumerate(args.rises):
                currents.append((regressed[(n, rise)], summarise(slower[rise], seed + 2 + k, n)))
            for tally, cur in currents:
                (row,) = evaluate(cur, base, policy).rows
                tally.pairs += 1
                tally.fails += row.verdict == "fail"
                tally.inconclusive += row.verdict == "inconclusive"
                tally.old_fails += old_rule_fails(base, cur, args.max_increase_pct, args.confidence)
                if row.change_pct is not None:
                    tally.changes.append(row.change_pct)

    print()
    print(
        f"p99, allowance +{args.max_increase_pct:g}%, confidence {args.confidence:.0%}, "
        f"{args.pairs} seed pairs per cell; scenario {args.scenario.name}"
    )
    print()
    print(
        "| requests per run | true p99 rise | gate fails (new rule) | inconclusive "
        "| old rule (Bonferroni order statistics) |"
    )
    print("|--:|--:|--:|--:|--:|")
    for n in args.sizes:
        t = same[n]
        print(f"| {n:,} | 0 (same system) | {t.rate()} | {t.inconclusive} | {t.rate(old=True)} |")
        for rise in args.rises:
            t = regressed[(n, rise)]
            true_rise = factors[rise][1]
            print(
                f"| {n:,} | {true_rise:+.1f}% | {t.rate()} | {t.inconclusive} "
                f"| {t.rate(old=True)} |"
            )
    print()
    print(f"elapsed {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
