"""Accuracy of stall and cascade detection against the simulator's ground truth.

For every built-in scenario, several seeds and three conditions (the scenario's own clocks;
host offsets drawn in ±20 ms; ±20 ms plus 50 % head sampling) it simulates traces, runs
``detect_stalls`` and ``find_cascades`` and grades them with
:func:`tailscope.analysis._stall_grading.grade`. Prints one row per run and a pooled summary per
condition (counts summed over runs before dividing, so a run with nothing to find does not
count as a perfect score), plus the median detection time.

    python benchmarks/accuracy.py                    # 4 scenarios x 3 seeds x 3 conditions
    python benchmarks/accuracy.py --seeds 1 2 --requests 3000 --scenarios gc-cascade steady
    python benchmarks/accuracy.py --real RUNS/r1 RUNS/r2   # real-SDK runs (RUNS: outside git)

``--real DIR...`` grades runs of the real-SDK harness (``benchmarks/real/run.py``): each DIR holds
the receiver's trace files and ``truth.json``; runs whose ``load.json`` says ``discarded`` are
graded and shown but left out of the pooled line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tailscope.analysis._stall_grading import Grade, grade
from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import detect_stalls
from tailscope.ingest import read_spans
from tailscope.simulate import BUILTIN_SCENARIOS, builtin_scenario, simulate

CONDITIONS: dict[str, tuple[float | None, float | None]] = {
    "own clocks": (None, None),
    "skew ±20 ms": (20.0, None),
    "skew ±20 ms, sampling 0.5": (20.0, 0.5),
}


@dataclass
class Run:
    scenario: str
    seed: int
    condition: str
    grade: Grade
    detect_s: float
    spans: int


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def run_one(scenario: str, seed: int, requests: int, condition: str) -> Run:
    skew, sampling = CONDITIONS[condition]
    sim = simulate(
        builtin_scenario(scenario),
        seed=seed,
        requests=requests,
        clock_skew_ms=skew,
        sampling=sampling,
    )
    spans = pl.from_arrow(sim.table)
    assert isinstance(spans, pl.DataFrame)
    began = time.perf_counter()
    stalls = detect_stalls(spans)
    cascades, _ = find_cascades(spans, stalls)
    elapsed = time.perf_counter() - began
    return Run(scenario, seed, condition, grade(stalls, cascades, sim.truth), elapsed, spans.height)


def pooled(runs: list[Run]) -> Grade:
    """Counts summed over runs."""
    fields = Grade.__slots__
    return Grade(**{f: sum(getattr(r.grade, f) for r in runs) for f in fields})


def trace_files(run_dir: Path) -> list[str]:
    """The trace exports of one real-SDK run (or capture): JSON Lines and framed protobuf."""
    names = ("traces.jsonl", "traces.jsonl.gz", "traces.pb", "traces.pb.gz")
    return [
        str(run_dir / n) for n in names if (run_dir / n).exists() and (run_dir / n).stat().st_size
    ]


def grade_real(run_dir: Path) -> tuple[Grade, int, float, bool]:
    """Grade one real-SDK run directory: (grade, spans, detection seconds, discarded)."""
    truth = json.loads((run_dir / "truth.json").read_text())
    spans = pl.from_arrow(read_spans(trace_files(run_dir)).table)
    assert isinstance(spans, pl.DataFrame)
    began = time.perf_counter()
    stalls = detect_stalls(spans)
    cascades, _ = find_cascades(spans, stalls)
    elapsed = time.perf_counter() - began
    load = run_dir / "load.json"
    discarded = bool(json.loads(load.read_text())["discarded"]) if load.exists() else False
    return grade(stalls, cascades, truth), spans.height, elapsed, discarded


def real_main(dirs: list[Path]) -> None:
    """Per-run table of real-SDK runs and the pooled grade of the kept ones."""
    header = (
        f"{'run':<28}{'kept':>5}{'spans':>8}{'stall P':>9}{'strictP':>9}{'stall R':>9}"
        f"{'casc P':>9}{'casc R':>9}{'nonGC%':>8}{'found':>7}{'frz':>5}{'pauses':>7}{'gc tr':>7}"
        f"{'sec':>7}"
    )
    print(header)
    print("-" * len(header))
    kept: list[Grade] = []
    for d in dirs:
        g, n, elapsed, discarded = grade_real(d)
        if not discarded:
            kept.append(g)
        print(
            f"{d.name[:27]:<28}{'no' if discarded else 'yes':>5}{n:>8}"
            f"{_fmt(g.stall_precision):>9}{_fmt(g.stall_precision_strict):>9}"
            f"{_fmt(g.stall_recall):>9}"
            f"{_fmt(g.cascade_precision):>9}{_fmt(g.cascade_recall):>9}"
            f"{_fmt(g.non_gc_labelled_share):>8}"
            f"{g.stalls_found:>7}{g.stalls_on_freezes:>5}{g.pauses_to_find:>7}"
            f"{g.gc_caused_traces:>7}{elapsed:>7.2f}",
            flush=True,
        )
    if kept:
        fields = Grade.__slots__
        g = Grade(**{f: sum(getattr(k, f) for k in kept) for f in fields})
        print()
        print(
            f"pooled over {len(kept)} kept runs: stall P {_fmt(g.stall_precision)} "
            f"({g.stalls_correct}/{g.stalls_found}; strict {_fmt(g.stall_precision_strict)} with "
            f"{g.stalls_on_freezes} on non-GC freezes)  stall R {_fmt(g.stall_recall)} "
            f"({g.pauses_found}/{g.pauses_to_find})  cascade P {_fmt(g.cascade_precision)} "
            f"({g.cascade_traces_correct}/{g.cascade_traces_found})  cascade R "
            f"{_fmt(g.cascade_recall)} ({g.cascade_traces_correct}/{g.gc_caused_traces})  "
            f"slow-dependency timeouts labelled GC {_fmt(g.non_gc_labelled_share)} "
            f"({g.non_gc_labelled}/{g.non_gc_timeouts})"
        )
    print(
        "stall P leaves out stalls on non-GC freezes (truth 'freezes'), strictP counts them wrong"
    )
    print(
        "targets (issue 14, per run): stall P >= 0.95, stall R >= 0.90 (pauses >= 25 ms that "
        "touched >= 3 requests), cascade P and R >= 0.95, slow-dependency timeouts labelled "
        "GC <= 0.05"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(BUILTIN_SCENARIOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--real", nargs="+", type=Path, metavar="DIR", help="grade real-SDK runs")
    args = parser.parse_args()
    if args.real:
        real_main(args.real)
        return

    header = (
        f"{'scenario':<16}{'seed':>5}  {'condition':<27}{'spans':>7}"
        f"{'stall P':>9}{'stall R':>9}{'casc P':>9}{'casc R':>9}{'nonGC%':>8}"
        f"{'found':>7}{'pauses':>7}{'gc tr':>7}{'sec':>7}"
    )
    print(header)
    print("-" * len(header))
    runs: list[Run] = []
    for condition in CONDITIONS:
        for scenario in args.scenarios:
            for seed in args.seeds:
                r = run_one(scenario, seed, args.requests, condition)
                runs.append(r)
                g = r.grade
                print(
                    f"{scenario:<16}{seed:>5}  {condition:<27}{r.spans:>7}"
                    f"{_fmt(g.stall_precision):>9}{_fmt(g.stall_recall):>9}"
                    f"{_fmt(g.cascade_precision):>9}{_fmt(g.cascade_recall):>9}"
                    f"{_fmt(g.non_gc_labelled_share):>8}"
                    f"{g.stalls_found:>7}{g.pauses_to_find:>7}{g.gc_caused_traces:>7}"
                    f"{r.detect_s:>7.2f}",
                    flush=True,
                )
    print()
    print("pooled per condition (counts summed over scenarios and seeds):")
    for condition in CONDITIONS:
        g = pooled([r for r in runs if r.condition == condition])
        print(
            f"  {condition:<27} stall P {_fmt(g.stall_precision)} ({g.stalls_correct}/"
            f"{g.stalls_found})  stall R {_fmt(g.stall_recall)} ({g.pauses_found}/"
            f"{g.pauses_to_find})  cascade P {_fmt(g.cascade_precision)} "
            f"({g.cascade_traces_correct}/{g.cascade_traces_found})  cascade R "
            f"{_fmt(g.cascade_recall)} ({g.cascade_traces_correct}/{g.gc_caused_traces})  "
            f"non-GC timeouts labelled GC {_fmt(g.non_gc_labelled_share)} "
            f"({g.non_gc_labelled}/{g.non_gc_timeouts})"
        )
    times = [r.detect_s for r in runs]
    print(f"median detect+cascade time per run: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
