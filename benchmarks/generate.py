"""Generator benchmark: spans/s and peak RSS of ``tailscope generate``, streaming vs in-memory.

Each contender runs in its own subprocess (so its peak RSS is its own), ``--repeat`` times;
medians are printed, with ratios against the baseline measured in the same run:

* ours, streaming (``write_simulation``): otlp-json, otlp-json.gz, otlp-proto, parquet;
* baseline: the straightforward path — ``simulate()`` the whole run in memory, then write the
  span table to Parquet in one go.

It also runs streaming otlp-json at a quarter of ``--spans``: bounded memory means the peak RSS
barely grows with size. The 10-million-span time is extrapolated linearly from the measured
rate (generation is linear in spans: each request is simulated independently).

Run:  python benchmarks/generate.py                          # 1M spans, 3 repetitions
      python benchmarks/generate.py --spans 100000 --repeat 1  # quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from tailscope.simulate import builtin_scenario, simulate
from tailscope.simulate.run import RunSize
from tailscope.simulate.writers import write_simulation

mode, scenario, spans, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
sc = builtin_scenario(scenario)
t0 = time.perf_counter()
cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
if mode == "baseline":
    import pyarrow.parquet as pq
    sim = simulate(sc, seed=1, spans=spans)
    pq.write_table(sim.table, out, compression="zstd")
    produced = sim.table.num_rows
else:
    summary = write_simulation(sc, seed=1, size=RunSize(spans=spans), output=out,
                               output_format=mode)
    produced = summary.spans
seconds = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_seconds = usage.ru_utime + usage.ru_stime - cpu0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "spans": produced,
                  "rss_mb": rss_mb,
                  "bytes": out.stat().st_size}))
"""

CONTENDERS = [
    ("otlp-json", "out.jsonl"),
    ("otlp-json", "out.jsonl.gz"),
    ("otlp-proto", "out.pb"),
    ("parquet", "out.parquet"),
]


def run_once(mode: str, scenario: str, spans: int, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, scenario, str(spans), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    out.unlink()
    return result


def measure(mode: str, scenario: str, spans: int, out: Path, repeat: int) -> dict[str, float]:
    runs = [run_once(mode, scenario, spans, out) for _ in range(repeat)]
    return {
        key: statistics.median(r[key] for r in runs)
        for key in ("seconds", "cpu_seconds", "spans", "rss_mb", "bytes")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", default="checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = measure("baseline", args.scenario, args.spans, folder / "base.parquet", args.repeat)
        base_rate = base["spans"] / base["seconds"]
        base_cpu_rate = base["spans"] / base["cpu_seconds"]
        print(f"scenario {args.scenario}, {args.spans:,} spans, median of {args.repeat}")
        print("spans/s per wall second and per CPU second (CPU is robust to a shared machine)")
        print(
            f"{'contender':<30}{'wall/s':>9}{'x base':>7}{'cpu/s':>9}{'x base':>7}"
            f"{'peak RSS':>10}{'x base':>7}{'MB out':>8}"
        )
        print(
            f"{'base: in-memory+parquet':<30}{base_rate:>9,.0f}{1.0:>7.2f}{base_cpu_rate:>9,.0f}"
            f"{1.0:>7.2f}{base['rss_mb']:>8,.0f}MB{1.0:>7.2f}{base['bytes'] / 1e6:>8.1f}"
        )
        rates = {}
        for mode, name in CONTENDERS:
            r = measure(mode, args.scenario, args.spans, folder / name, args.repeat)
            rate = r["spans"] / r["seconds"]
            cpu_rate = r["spans"] / r["cpu_seconds"]
            rates[name] = cpu_rate
            print(
                f"{'streaming ' + name:<30}{rate:>9,.0f}{rate / base_rate:>7.2f}{cpu_rate:>9,.0f}"
                f"{cpu_rate / base_cpu_rate:>7.2f}{r['rss_mb']:>8,.0f}MB"
                f"{r['rss_mb'] / base['rss_mb']:>7.2f}{r['bytes'] / 1e6:>8.1f}"
            )
        small = measure("otlp-json", args.scenario, args.spans // 4, folder / "q.jsonl", 1)
        large_rss = measure("otlp-json", args.scenario, args.spans, folder / "q.jsonl", 1)["rss_mb"]
        print(
            f"bounded memory: streaming otlp-json peak RSS {small['rss_mb']:.0f} MB at "
            f"{args.spans // 4:,} spans vs {large_rss:.0f} MB at {args.spans:,} "
            f"(x{large_rss / small['rss_mb']:.2f} for 4x the spans)"
        )
        for name, rate in rates.items():
            print(f"extrapolated 10M spans, {name}: {10_000_000 / rate / 60:.1f} CPU-min (1 core)")


if __name__ == "__main__":
    main()
