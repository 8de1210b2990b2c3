"""Where one whole ``tailscope analyze`` process spends its time, stage by stage.

Runs, in a fresh process per size and ``--repeat`` times, the steps ``tailscope analyze FILE
--format json`` takes (the console script's pandas hook included) and prints the median wall
and CPU seconds of each: start-up (interpreter and imports), ingest, prepare, stall detection
(stalls, cascades, runtimes), critical paths with the stall split, per-operation percentiles,
hop attribution (with its bootstrap), render (JSON). The stages call the same functions as
:func:`tailscope.analysis.pipeline.analyze`, in the same order; the report is not written.

Run:  flock /tmp/tailscope-heavy.lock python benchmarks/analyze_stages.py FILE [FILE ...]
      python benchmarks/analyze_stages.py --repeat 1 /tmp/tailscope-bench-analyze/*-50000-*.jsonl
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

STAGES = r"""
import time
t_process = time.perf_counter()
import sys
from tailscope.cli.startup import keep_pandas_out
keep_pandas_out()
import tailscope.cli  # noqa: F401  the CLI's own imports
from tailscope.analysis import pipeline as p
from tailscope.analysis.hops import HopOptions, hop_attribution
from tailscope.analysis.percentiles import operation_stats
from tailscope.memory import release_freed_memory
from tailscope.cli.inputs import load
from tailscope.render import RenderOptions, get_renderer
import polars as pl
from tailscope import schema as s

marks = [("start-up (interpreter, imports)", t_process, 0.0)]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))

mark("start-up (interpreter, imports)")
options = p.AnalysisOptions(keep_frames=False)
prepared = p.prepare_spans(load([sys.argv[1]], quiet=True))
mark("ingest + prepare")
release_freed_memory()
raw = prepared.spans
stalls, cascades, unexplained, runtimes = p.stall_sections(raw)
mark("stall detection (stalls, cascades, runtimes)")
adjusted, path, corrected = p.trace_paths(prepared, options, stalls)
mark("skew + critical paths + stall split")
root_keys = {
    (str(a), str(b), int(c))
    for a, b, c in raw.filter(pl.col("is_root"))
    .select(s.SERVICE, s.NAME, s.KIND)
    .unique()
    .iter_rows()
}
operations = p.operation_stats(raw, options.exemplars, root_keys)
mark("per-operation percentiles")
roots, hops = hop_attribution(
    path,
    p.root_durations(adjusted),
    HopOptions(min_tail_requests=options.min_tail_requests, resamples=options.bootstrap_resamples,
               seed=options.seed),
    stalls=stalls,
    languages=p.service_languages(raw),
)
mark("hop attribution (bootstrap)")
report = p.analyze(prepared, options).report
t_again, c_again = time.perf_counter(), time.process_time()
get_renderer("json").render(report, RenderOptions(top=10, color=False, width=160))
_, t_last, c_last = marks[-1]
marks.append((
    "render json",
    t_last + time.perf_counter() - t_again,
    c_last + time.process_time() - c_again,
))
for (_, t0, c0), (name, t1, c1) in zip(marks, marks[1:]):
    print(f"STAGE {name}|{t1 - t0:.4f}|{c1 - c0:.4f}")
"""


def run_once(path: Path) -> dict[str, tuple[float, float]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", STAGES, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    stages: dict[str, tuple[float, float]] = {}
    for line in out.splitlines():
        if line.startswith("STAGE "):
            name, wall, cpu = line[6:].split("|")
            stages.setdefault(name, (float(wall), float(cpu)))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; median of {args.repeat} processes per file; seconds")
    for path in args.files:
        runs = [run_once(path) for _ in range(args.repeat)]
        print(f"\n== {path.name} ==")
        print(f"{'stage':<48}{'wall':>8}{'CPU':>8}")
        total = 0.0
        for name in runs[0]:
            wall = statistics.median(r[name][0] for r in runs)
            cpu = statistics.median(r[name][1] for r in runs)
            total += wall
            print(f"{name:<48}{wall:8.3f}{cpu:8.3f}")
        print(f"{'sum':<48}{total:8.3f}")


if __name__ == "__main__":
    main()
