"""Analyze benchmark: the whole ``tailscope analyze`` command against a DuckDB percentile query.

For each size (default 50k, 300k and 1M spans: a load test of a minute or two, and a long one) a
simulated OTLP/JSON Lines file is generated
once with ``tailscope generate SCENARIO --spans N --seed SEED`` (cached in ``--workdir``), then,
in the same run, each contender runs in its own process (wall time and peak RSS are that
process's own, from ``wait4``):

* **tailscope analyze**: ``python -m tailscope analyze FILE --format json -o /dev/null --quiet``
  — ingest, per-operation HdrHistogram percentiles, skew adjustment, critical paths of every
  trace, hop attribution with 200 bootstrap resamples, stall/cascade/runtime detection, JSON;
* **tailscope analyze --no-stalls** (with ``--no-stalls-too``): the same without
  stall/cascade/runtime detection, i.e. the scope of issue 4 (ingest, percentiles, critical
  paths, hops);
* **duckdb**: ``read_ndjson`` of the same file, unnest resourceSpans → scopeSpans → spans, and
  per-(service, operation, kind) ``count`` and ``quantile_cont`` at p50/p90/p99/p99.9 (no
  critical path, no attribution): what users do today.

Each contender runs ``--repeat`` times, interleaved; medians of wall time, CPU time (user +
system: less sensitive to other load on a shared machine) and peak RSS are printed with the
ratio DuckDB / tailscope, time per million spans and peak RSS per span at each size (and the
marginal cost per span between sizes), so that linear growth is visible, then one summary
table of the ratios against issue 16's targets (2.5x at 300k, 2x at 50k). Everything is the
whole process, start-up imports and exit included: what a user waits for. ``--stages`` adds
one run that splits tailscope's time into ingest, conversion and analysis.

Run:  python benchmarks/analyze.py                               # 50k, 300k, 1M; 3 repeats
      python benchmarks/analyze.py --scenario ingest-file        # the ingest benchmark's file
      python benchmarks/analyze.py --sizes 100000 --repeat 1     # quick look
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
import pyarrow as pa
from tailscope.ingest import read_spans
from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans
t0 = time.perf_counter()
prepared = prepare_spans(read_spans([sys.argv[1]]))
t1 = time.perf_counter()
pa.default_memory_pool().release_unused()
analyze(prepared, AnalysisOptions(detect_stalls=False, keep_frames=False))
t2 = time.perf_counter()
analyze(prepared, AnalysisOptions(keep_frames=False))
t3 = time.perf_counter()
print(f'STAGE ingest + conversion {t1 - t0:.2f}')
print(f'STAGE percentiles, critical paths, hops {t2 - t1:.2f}')
print(f'STAGE the same with stalls, cascades, runtimes {t3 - t2:.2f}')
"""


@dataclass(frozen=True)
class Contender:
    label: str
    argv: tuple[str, ...]
    """Command line; ``{file}`` is replaced by the input file."""


def contenders(no_stalls_too: bool = False) -> list[Contender]:
    """tailscope first, DuckDB (the baseline every ratio divides) last."""
    analyze = (sys.executable, "-m", "tailscope", "analyze", "{file}", "--format", "json")
    quiet = ("-o", os.devnull, "--quiet")
    runners = [Contender("tailscope analyze", (*analyze, *quiet))]
    if no_stalls_too:
        runners.append(
            Contender("tailscope analyze --no-stalls", (*analyze, *quiet, "--no-stalls"))
        )
    runners.append(
        Contender("duckdb read_ndjson + quantile", (sys.executable, "-c", DUCKDB, "{file}"))
    )
    return runners


TARGETS = {50_000: 2.0, 300_000: 2.5}
"""Issue 16: whole-process ``tailscope analyze`` at least this many times faster than DuckDB."""


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def compiled_env(workdir: Path) -> dict[str, str]:
    """The environment of every timed process: tailscope byte-compiled once, as ``pip install``
    leaves it, with the ``.pyc`` files under ``workdir`` (the source tree is not touched).

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes) an editable install recompiles
    every imported tailscope module in every process: 50-70 ms of CPU per run that no installed
    copy pays. Installed packages (polars, DuckDB, ...) already carry their ``.pyc`` files.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    import tailscope

    package = Path(tailscope.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], env=env, check=True)
    return env


def measure(
    argv: tuple[str, ...], path: Path, env: dict[str, str] | None = None
) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, stdout) of one run in its own process."""
    command = [str(path) if a == "{file}" else a for a in argv]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        # wait4 reaps the child and returns its own resource usage (peak RSS in KiB)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"benchmark step failed: {' '.join(command)}\n{err.read()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss / 1024, out.read()


INGEST_FILE = "ingest-file"
"""``--scenario`` value for the ingest benchmark's own file (``benchmarks/ingest.py``: 100
spans a line, 8 attributes a span, 10 services), the file issue 4 names."""


def ensure_file(workdir: Path, spans: int, scenario: str, seed: int) -> Path:
    path = workdir / f"{scenario}-{spans}-seed{seed}.jsonl"
    if not path.exists() and scenario == INGEST_FILE:
        print(f"generating {path} ...", flush=True)
        sys.path.insert(0, str(Path(__file__).parent))
        from ingest import generate  # benchmarks/ingest.py

        generate(path, spans, seed=seed)
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
                str(seed),
                "-o",
                str(path),
                "--quiet",
            ],
            check=True,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="50000,300000,1000000", help="spans per file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument(
        "--scenario",
        default="gc-cascade",
        help=f"tailscope generate scenario, or {INGEST_FILE!r}: the ingest benchmark's file",
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tailscope-bench-analyze"))
    parser.add_argument("--stages", action="store_true", help="also split tailscope's time")
    parser.add_argument(
        "--no-stalls-too", action="store_true", help="also time analyze --no-stalls"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    runners = contenders(args.no_stalls_too)
    env = compiled_env(args.workdir)
    for spans in sizes:  # generate every file before timing anything
        ensure_file(args.workdir, spans, args.scenario, args.seed)
    print(f"before: {load_average()}")
    # (label, spans) -> (median seconds, median peak MiB)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for spans in sizes:
        path = ensure_file(args.workdir, spans, args.scenario, args.seed)
        runs: dict[str, list[tuple[float, float, float]]] = {c.label: [] for c in runners}
        for _ in range(args.repeat):
            for c in runners:  # interleaved: a noisy minute hurts every contender alike
                wall, cpu, peak, _ = measure(c.argv, path, env)
                runs[c.label].append((wall, cpu, peak))
        size_mb = path.stat().st_size / 1e6
        print(
            f"\n== {spans:,} spans ({size_mb:,.0f} MB, {args.scenario} seed {args.seed}), "
            f"median of {args.repeat} =="
        )
        print(
            f"{'':<32}{'time':>9}{'CPU':>8}{'peak RSS':>12}{'s/M spans':>11}{'B/span':>8}"
            f"{'vs duckdb':>11}"
        )
        duck_s = statistics.median(w for w, _, _ in runs[runners[-1].label])
        for c in runners:
            seconds = statistics.median(w for w, _, _ in runs[c.label])
            cpu = statistics.median(u for _, u, _ in runs[c.label])
            peak = statistics.median(p for _, _, p in runs[c.label])
            results[(c.label, spans)] = (seconds, peak)
            print(
                f"{c.label:<32}{seconds:8.2f}s{cpu:7.1f}s{peak:8.0f} MiB"
                f"{seconds / spans * 1e6:10.2f}{peak * 2**20 / spans:8.0f}{duck_s / seconds:10.2f}x"
            )
        if args.stages:
            _, _, _, out = measure((sys.executable, "-c", STAGES, "{file}"), path, env)
            for line in out.splitlines():
                if line.startswith("STAGE "):
                    name, _, seconds_text = line[6:].rpartition(" ")
                    print(f"  {name:<48} {float(seconds_text):6.2f} s")
    print(f"\nafter: {load_average()}")
    print(f"\n== whole process, median of {args.repeat}: DuckDB / tailscope (issue 16 targets) ==")
    print(f"{'spans':>10}  {'contender':<32}{'tailscope':>10}{'duckdb':>9}{'ratio':>8}  target")
    duck = runners[-1].label
    for spans in sizes:
        duck_s = results[(duck, spans)][0]
        for c in runners[:-1]:
            seconds = results[(c.label, spans)][0]
            target = TARGETS.get(spans)
            verdict = (
                ""
                if target is None
                else (f">= {target}x {'met' if duck_s / seconds >= target else 'NOT met'}")
            )
            print(
                f"{spans:>10,}  {c.label:<32}{seconds:9.2f}s{duck_s:8.2f}s{duck_s / seconds:7.2f}x"
                f"  {verdict}"
            )
    if len(sizes) > 1:
        print("\n== growth (marginal cost per span between consecutive sizes) ==")
        for c in runners:
            for small, large in itertools.pairwise(sizes):
                s0, m0 = results[(c.label, small)]
                s1, m1 = results[(c.label, large)]
                extra = large - small
                print(
                    f"{c.label:<32}{small:>9,} -> {large:>9,}: time x{s1 / s0:4.2f}, "
                    f"RSS x{m1 / m0:4.2f} for spans x{large / small:4.2f}; "
                    f"{(s1 - s0) / extra * 1e6:5.2f} s and {(m1 - m0) * 2**20 / extra:5.0f} B "
                    "per extra span"
                )


if __name__ == "__main__":
    main()
