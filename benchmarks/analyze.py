"""Analyze benchmark: the whole ``tailscope analyze`` against a DuckDB percentile query.

For each size (default 250k, 500k and 1M spans) a simulated OTLP/JSON Lines file is generated
once with ``tailscope generate checkout --spans N`` (cached in ``--workdir``), then, in the same
run and each in its own fresh interpreter so that wall time and peak RSS are its own:

* **tailscope**: ``tailscope analyze FILE --format json`` — ingest, per-operation HdrHistogram
  percentiles, skew adjustment, critical paths of every trace, hop attribution with bootstrap
  intervals, stall/cascade/runtime detection, JSON rendering;
* **duckdb**: ``read_ndjson`` of the same file, unnest resourceSpans → scopeSpans → spans, and
  per-(service, operation) ``count`` and ``quantile_cont`` at p50/p90/p99/p99.9 (no critical
  path, no attribution): what users do today;
* **analysis only**: ``tailscope.analysis.pipeline.analyze`` on the table already in memory,
  split into its stages, to show where the time goes after ingest.

Each contender runs ``--repeat`` times; medians are printed with the ratio DuckDB / tailscope
and the growth per span between sizes.

Run:  python benchmarks/analyze.py                              # 250k, 500k, 1M; 3 repeats
      python benchmarks/analyze.py --sizes 100000 --repeat 1    # quick look
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PEAK_RSS = (
    "\nfor _l in open('/proc/self/status'):\n"
    "    if _l.startswith('VmHWM:'): print('PEAK_MIB', int(_l.split()[1]) / 1024)\n"
)

TAILSCOPE = """
import sys
from tailscope.cli import main
try:
    main(["analyze", sys.argv[1], "--format", "json", "-o", "/dev/null", "--quiet", *sys.argv[2:]])
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
"""

DUCKDB = """
import sys, duckdb
con = duckdb.connect()
rows = con.execute('''
WITH rs AS (
  SELECT unnest(resourceSpans) AS r
  FROM read_ndjson(?, maximum_object_size=1073741824)
), ss AS (
  SELECT r.resource AS res, unnest(r.scopeSpans) AS s FROM rs
), sp AS (
  SELECT list_filter(res.attributes,
                     lambda a: a.key = 'service.name')[1].value.stringValue AS service,
         unnest(s.spans) AS span
  FROM ss
)
SELECT service, span.name AS operation, span.kind AS kind, count(*) AS n,
       quantile_cont((CAST(span.endTimeUnixNano AS HUGEINT)
                      - CAST(span.startTimeUnixNano AS HUGEINT)) / 1e6,
                     [0.5, 0.9, 0.99, 0.999]) AS q
FROM sp GROUP BY ALL
''', [sys.argv[1]]).fetchall()
print('ROWS', sum(r[3] for r in rows))
"""

STAGES = """
import sys, time
from tailscope.ingest import read_spans
t = time.perf_counter()
result = read_spans([sys.argv[1]])
print('STAGE ingest', time.perf_counter() - t)
import polars as pl
from tailscope import schema as s
from tailscope.analysis.span_tree import build_span_tree
from tailscope.analysis.skew import skew_shifts, clock_host_codes
from tailscope.analysis.critical_path import segments_frame
from tailscope.analysis.percentiles import operation_stats
from tailscope.analysis.hops import hop_attribution
from tailscope.analysis.pipeline import root_durations, _stall_sections
marks = [('start', time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
tree = build_span_tree(result.table); mark('span tree')
raw = pl.from_arrow(result.table).with_columns(
    pl.Series('is_root', tree.parent < 0), pl.Series('is_orphan', tree.is_orphan))
mark('to polars')
start, end = raw[s.START].to_numpy(), raw[s.END].to_numpy()
shift, corrected = skew_shifts(start, end, clock_host_codes(raw), tree); mark('skew')
adjusted = raw.with_columns(pl.Series(s.START, start + shift), pl.Series(s.END, end + shift))
path = segments_frame(adjusted, tree); mark('critical path')
ops = operation_stats(raw); mark('percentiles')
roots, hops = hop_attribution(path, root_durations(adjusted)); mark('hops + bootstrap')
if len(sys.argv) < 3:
    _stall_sections(raw); mark('stalls/cascades/runtimes')
for (_, a), (name, b) in zip(marks, marks[1:]):
    print('STAGE', name, b - a)
print('STAGE analysis total', marks[-1][1] - marks[0][1])
"""


def measure(code: str, path: Path, *extra: str) -> tuple[float, float, list[str]]:
    """(wall seconds, peak RSS MiB, stdout lines) of ``code`` in a fresh interpreter."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code + PEAK_RSS, str(path), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    peak = next(float(x.split()[1]) for x in lines if x.startswith("PEAK_MIB"))
    return wall, peak, lines


def ensure_file(workdir: Path, spans: int, scenario: str) -> Path:
    path = workdir / f"{scenario}-{spans}.jsonl"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tailscope",
                "generate",
                scenario,
                "--spans",
                str(spans),
                "--seed",
                "1",
                "-o",
                str(path),
                "--quiet",
            ],
            check=True,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", default="checkout")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tailscope-bench-analyze"))
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage breakdown")
    parser.add_argument(
        "--with-stalls",
        action="store_true",
        help="include stall/cascade/runtime detection (default: --no-stalls, i.e. ingest, "
        "percentiles, critical paths and hop attribution as issue 4 specifies)",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    summary: list[tuple[int, float, float, float, float]] = []
    for spans in sizes:
        path = ensure_file(args.workdir, spans, args.scenario)
        size_mb = path.stat().st_size / 1e6
        extra = () if args.with_stalls else ("--no-stalls",)
        ours = [measure(TAILSCOPE, path, *extra) for _ in range(args.repeat)]
        duck = [measure(DUCKDB, path) for _ in range(args.repeat)]
        ours_s = statistics.median(w for w, _, _ in ours)
        ours_mb = statistics.median(p for _, p, _ in ours)
        duck_s = statistics.median(w for w, _, _ in duck)
        duck_mb = statistics.median(p for _, p, _ in duck)
        print(
            f"\n== {spans:,} spans ({size_mb:,.0f} MB, {args.scenario}), median of {args.repeat} =="
        )
        label = "tailscope analyze" + ("" if args.with_stalls else " --no-stalls")
        print(f"{label:<30}: {ours_s:6.2f} s   peak RSS {ours_mb:7.0f} MiB")
        print(f"{'duckdb percentiles':<30}: {duck_s:6.2f} s   peak RSS {duck_mb:7.0f} MiB")
        print(f"speed-up (duckdb / tailscope): {duck_s / ours_s:.2f}x")
        if not args.no_stages:
            _, _, lines = measure(STAGES, path, *extra)
            for line in lines:
                if line.startswith("STAGE"):
                    name, _, seconds = line[6:].rpartition(" ")
                    print(f"  {name:<28} {float(seconds):6.2f} s")
        summary.append((spans, ours_s, ours_mb, duck_s, duck_mb))
    if len(summary) > 1:
        print("\n== growth ==")
        base_spans, base_s, base_mb, _, _ = summary[0]
        for spans, s, mb, d, _ in summary:
            print(
                f"{spans:>9,} spans: time x{s / base_s:4.2f}, RSS x{mb / base_mb:4.2f} "
                f"for spans x{spans / base_spans:4.2f}; {s / spans * 1e6:5.2f} s per M spans; "
                f"vs duckdb {d / s:.2f}x"
            )


if __name__ == "__main__":
    main()
