"""Scale-out benchmark: ``analyze --engine spark`` on ``local[N]`` against the single-machine path.

For each size (default 1M and 5M spans) a simulated trace set is generated once with
``tailscope generate SCENARIO --spans N`` as Parquet and converted to the engine's input with
``tailscope convert --partition-by hour,bucket`` (both cached in ``--workdir``). Then, in the same
run, each contender runs in its own process (wall time):

* **local**: ``tailscope analyze DIR -f json`` — the single-machine pipeline;
* **spark**: ``tailscope analyze DIR --engine spark --spark-master local[N] --spark-partitions P``;
* **local/spark --no-stalls**: the same without stall detection (on Spark the stall detectors
  run on the driver over the narrowed columns the cluster prepared, so ``--no-stalls``
  isolates the fully distributed stages: traces and percentiles);
* **silence stage**: the first step of stall stage 3 alone (stall inputs, then every
  instance's silence candidates per (instance, hour) on the cluster,
  ``tailscope.spark.engine.run_silence_stage``), in a process of its own: its time, the rows
  and Arrow bytes the driver received, and whether the candidates equal those of the
  single-machine detector over the same spans (computed afterwards in that process).

It prints the times, the peak resident memory ``/usr/bin/time`` reports (the largest of the
``tailscope`` process and the children it waited for: with ``local[N]`` usually the JVM that
runs the driver and the executors, whose heap ``spark.driver.memory`` caps at 4 GB), the
ratio spark / local, and whether the two JSON reports are equal (the input file list aside,
which names the same files). The *marginal* Spark throughput between the
two sizes (``--no-stalls``: extra spans / extra seconds / cores) removes the fixed cost (JVM
start, Python workers, scheduling) and is the per-core figure used for the sizing in
``docs/scale-out.md``.

Run:  nice -n 10 python benchmarks/scaleout.py                    # 1M and 5M spans, local[2]
      nice -n 10 python benchmarks/scaleout.py --sizes 200000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK_RSS_MB: dict[str, float] = {}
"""Peak resident memory (MB) of the last run of each label (``/usr/bin/time``'s ``%M``)."""


def run(args: list[str], label: str = "") -> float:
    """Wall time (s) of ``python -m tailscope ARGS`` (fails loudly); its peak RSS goes to
    :data:`PEAK_RSS_MB` under ``label`` when ``/usr/bin/time`` exists."""
    timer = ["/usr/bin/time", "-f", "peak-rss-kb %M"] if os.path.exists("/usr/bin/time") else []
    t0 = time.perf_counter()
    done = subprocess.run(
        [*timer, sys.executable, "-m", "tailscope", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"tailscope {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if line.startswith("peak-rss-kb ") and label:
            PEAK_RSS_MB[label] = int(line.split()[1]) / 1024
    return elapsed


def dataset(workdir: Path, scenario: str, spans: int, buckets: int) -> Path:
    """The partitioned dataset of ``spans`` simulated spans (generated once, cached)."""
    source = workdir / f"{scenario}-{spans}.parquet"
    if not source.exists():
        run(["generate", scenario, "--spans", str(spans), "--seed", "7", "-o", str(source), "-q"])
    out = workdir / f"{scenario}-{spans}-b{buckets}"
    if not out.exists():
        args = ["convert", str(source), "-o", str(out), "--partition-by", "hour,bucket"]
        run([*args, "--buckets", str(buckets), "--quiet"])
    return out


def report(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    summary = data["input"]
    assert isinstance(summary, dict)
    summary["files"] = []
    return data


def measure_silences(data: Path, master: str, partitions: int) -> None:
    """Print one JSON line: the silence stage on Spark over ``data`` (seconds, driver rows and
    bytes, candidates) and whether its candidates equal the single-machine detector's."""
    from pyspark.sql import SparkSession

    from tailscope.analysis._stall_common import instance_timestamps, narrow
    from tailscope.analysis.pipeline import prepare_spans
    from tailscope.analysis.stalls import _gaps, _silences
    from tailscope.ingest import read_spans
    from tailscope.spark.engine import SparkOptions, run_silence_stage

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    stage = run_silence_stage(session, str(data), spark_options=SparkOptions(partitions=partitions))
    seconds = time.perf_counter() - t0
    session.stop()
    spans = read_spans([str(data)])
    rows = spans.table.num_rows
    stamps = instance_timestamps(narrow(prepare_spans(spans).spans))
    del spans
    want = _silences(_gaps(stamps))
    print(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "spans": rows,
                "driver_rows": stage.driver_rows,
                "driver_bytes": stage.driver_bytes,
                "candidates": stage.candidates.height,
                "equal": stage.candidates.equals(want),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--scenario", default="gc-cascade")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument(
        "--no-stalls-only", action="store_true", help="only the two --no-stalls runs per size"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ts-scale")
    parser.add_argument("--measure-silences", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.measure_silences is not None:  # the silence-stage contender's own process
        measure_silences(opts.measure_silences, opts.master, opts.partitions)
        return
    opts.workdir.mkdir(parents=True, exist_ok=True)
    cores = int(opts.master.removeprefix("local[").removesuffix("]") or 1)
    print(f"# load average at start: {os.getloadavg()}; master {opts.master}, P={opts.partitions}")
    spark_args = ["--engine", "spark", "--spark-master", opts.master]
    spark_args += ["--spark-partitions", str(opts.partitions)]
    no_stalls: dict[int, float] = {}
    for spans in opts.sizes:
        data = dataset(opts.workdir, opts.scenario, spans, opts.buckets)
        local_out = opts.workdir / f"local-{spans}.json"
        spark_out = opts.workdir / f"spark-{spans}.json"
        times: dict[str, float] = {}
        if not opts.no_stalls_only:
            times["local"] = run(
                ["analyze", str(data), "-f", "json", "-o", str(local_out), "-q"], "local"
            )
            times["spark"] = run(
                ["analyze", str(data), *spark_args, "-f", "json", "-o", str(spark_out), "-q"],
                "spark",
            )
        times["local --no-stalls"] = run(
            ["analyze", str(data), "--no-stalls", "-f", "json", "-o", os.devnull, "-q"],
            "local --no-stalls",
        )
        times["spark --no-stalls"] = run(
            ["analyze", str(data), "--no-stalls", *spark_args, "-f", "json", "-o", os.devnull],
            "spark --no-stalls",
        )
        no_stalls[spans] = times["spark --no-stalls"]
        stage_args = ["--master", opts.master, "--partitions", str(opts.partitions)]
        silences = subprocess.run(
            [sys.executable, __file__, "--measure-silences", str(data), *stage_args],
            capture_output=True,
            text=True,
            check=False,
        )
        if silences.returncode != 0:
            sys.exit(f"silence stage failed:\n{silences.stderr[-3000:]}")
        print(f"{spans:>10,} spans: silence stage {silences.stdout.strip().splitlines()[-1]}")
        line = f"{spans:>10,} spans: " + ", ".join(
            f"{k} {v:.1f} s" + (f" ({PEAK_RSS_MB[k]:,.0f} MB)" if k in PEAK_RSS_MB else "")
            for k, v in times.items()
        )
        if "spark" in times:
            equal = report(local_out) == report(spark_out)
            line += f"; spark/local {times['spark'] / times['local']:.2f}x; reports equal: {equal}"
        print(f"{line}; load {os.getloadavg()[0]:.1f}", flush=True)
    if len(no_stalls) >= 2:
        (n0, t0), (n1, t1) = sorted(no_stalls.items())[0], sorted(no_stalls.items())[-1]
        if t1 > t0:
            per_core = (n1 - n0) / (t1 - t0) / cores
            print(
                f"marginal Spark throughput (--no-stalls, {n0:,} -> {n1:,} spans): "
                f"{per_core:,.0f} spans/s per core"
            )


if __name__ == "__main__":
    main()
