"""Ingest benchmark: OTLP/JSON Lines and protobuf → final Arrow span table.

Generates (deterministically) or takes an OTLP/JSON Lines file of about ``--spans`` spans
(~100 spans per line, ~8 attributes per span, 10 services), then measures in the same run, each
contender in its own subprocess so peak RSS is its own:

* ours: ``tailscope.ingest.read_spans`` on the JSON Lines file and on the same spans as
  collector-framed protobuf;
* (a) the straightforward path: ``json_format.Parse`` into ExportTraceServiceRequest plus a
  Python loop building columns (on the first ``--baseline-lines`` lines; the rate is
  extrapolated, since it is linear per line);
* (b) ``pyarrow.json.read_json`` nested read of the same file (no flattening).

``--whole-process`` instead times what a user waits for at several sizes (default 50k, 300k
and 1M spans): the whole ``tailscope convert FILE -o OUT.arrow`` and ``-o OUT.parquet``
process (start-up imports, reading, writing, exit), against the ``json_format.Parse`` path (a)
run as its own process in the same run, interleaved, ``--repeat`` times each. The
``json_format`` process reads the first ``--baseline-lines`` lines of the file (all of them
when the file is smaller): its fixed cost (process wall time minus its own parse loop) plus its
per-span loop time times the file's spans is its whole-process time at that size (the loop is
linear per line; running it on 1M spans would take minutes). Ratios are that time over ours.

Run:  python benchmarks/ingest.py                 # 1M spans, 3 repetitions, medians
      python benchmarks/ingest.py --spans 100000 --repeat 1   # quick look
      python benchmarks/ingest.py --whole-process             # convert at 50k, 300k, 1M
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = [f"svc-{name}" for name in "abcdefghij"]
OPERATIONS = ["GET /api/items", "POST /api/cart", "SELECT items", "grpc.Check", "publish"]


def generate(path: Path, spans: int, spans_per_line: int = 100, seed: int = 7) -> None:
    """Write ``spans`` spans as OTLP/JSON Lines, deterministic for a given seed."""
    rng = random.Random(seed)
    t0 = 1_700_000_000_000_000_000
    written = 0
    with path.open("w") as out:
        line = 0
        while written < spans:
            count = min(spans_per_line, spans - written)
            service = SERVICES[line % len(SERVICES)]
            trace = rng.getrandbits(128).to_bytes(16, "big").hex()
            parent = ""
            span_objs = []
            for i in range(count):
                span_id = rng.getrandbits(64).to_bytes(8, "big").hex()
                start = t0 + line * 1_000_000_000 + i * 1_000_000 + rng.randrange(1000)
                duration = rng.randrange(10_000, 50_000_000)
                span_objs.append(
                    {
                        "traceId": trace,
                        "spanId": span_id,
                        "parentSpanId": parent,
                        "name": OPERATIONS[(line + i) % len(OPERATIONS)],
                        "kind": 2 if i == 0 else 3,
                        "startTimeUnixNano": str(start),
                        "endTimeUnixNano": str(start + duration),
                        "attributes": [
                            {"key": "http.request.method", "value": {"stringValue": "GET"}},
                            {
                                "key": "http.response.status_code",
                                "value": {"intValue": str(200 if rng.random() < 0.97 else 503)},
                            },
                            {"key": "url.path", "value": {"stringValue": f"/api/items/{i}"}},
                            {"key": "server.address", "value": {"stringValue": "items.internal"}},
                            {"key": "rpc.system", "value": {"stringValue": "grpc"}},
                            {"key": "net.peer.port", "value": {"intValue": "8080"}},
                            {"key": "retry", "value": {"boolValue": False}},
                            {"key": "weight", "value": {"doubleValue": rng.random()}},
                        ],
                        "status": {"code": 2} if rng.random() < 0.02 else {},
                    }
                )
                parent = span_id if i % 10 == 0 else parent
            doc = {
                "resourceSpans": [
                    {
                        "resource": {
                            "attributes": [
                                {"key": "service.name", "value": {"stringValue": service}},
                                {"key": "host.name", "value": {"stringValue": f"host-{line % 4}"}},
                                {"key": "process.pid", "value": {"intValue": "4242"}},
                                {"key": "telemetry.sdk.language", "value": {"stringValue": "go"}},
                            ]
                        },
                        "scopeSpans": [{"scope": {"name": "bench"}, "spans": span_objs}],
                    }
                ]
            }
            out.write(json.dumps(doc, separators=(",", ":")))
            out.write("\n")
            written += count
            line += 1


def to_proto(json_path: Path, proto_path: Path, spans: int) -> int:
    """The first ``spans`` spans as collector-framed protobuf (4-byte big-endian length per
    TracesData message), built from our own reading of the JSON file. Returns spans written."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    from tailscope.ingest import read_spans

    def any_value(text: str, tag: int) -> AnyValue:
        if tag == 2:
            return AnyValue(bool_value=text == "true")
        if tag == 3:
            return AnyValue(int_value=int(text))
        if tag == 4:
            return AnyValue(double_value=float(text))
        return AnyValue(string_value=text)

    table = read_spans([str(json_path)]).table.slice(0, spans)
    with proto_path.open("wb") as out:
        for batch in table.to_batches(max_chunksize=100):
            rows = batch.to_pylist()
            msg = TracesData()
            rs = msg.resource_spans.add()
            for key, value in json.loads(rows[0]["resource_attributes"]).items():
                if "stringValue" in value:
                    rs.resource.attributes.add(key=key).value.string_value = value["stringValue"]
                else:
                    rs.resource.attributes.add(key=key).value.int_value = int(value["intValue"])
            scope = rs.scope_spans.add()
            scope.scope.name = rows[0]["scope_name"] or ""
            for row in rows:
                sp = scope.spans.add(
                    trace_id=row["trace_id"],
                    span_id=row["span_id"],
                    parent_span_id=row["parent_span_id"] or b"",
                    name=row["name"],
                    kind=row["kind"],
                    start_time_unix_nano=row["start_unix_nano"],
                    end_time_unix_nano=row["end_unix_nano"],
                )
                sp.status.code = row["status_code"]
                for attr in row["attributes"]:
                    sp.attributes.add(key=attr["key"]).value.CopyFrom(
                        any_value(attr["value"], attr["type"])
                    )
            payload = msg.SerializeToString()
            out.write(len(payload).to_bytes(4, "big"))
            out.write(payload)
    return int(table.num_rows)


OURS = """
import sys, time
from tailscope.ingest import read_spans
t = time.perf_counter()
table = read_spans([sys.argv[1]]).table
print(time.perf_counter() - t, table.num_rows, table.nbytes)
"""

NAIVE = """
import sys, time, itertools
import pyarrow as pa
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
t = time.perf_counter()
cols = {k: [] for k in ("trace_id", "span_id", "parent", "name", "kind", "start", "end",
                        "service", "attrs")}
n = 0
with open(sys.argv[1]) as fh:
    for line in itertools.islice(fh, int(sys.argv[2])):
        req = json_format.Parse(line, ExportTraceServiceRequest())
        for rs in req.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes
                            if a.key == "service.name"), "unknown_service")
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    cols["trace_id"].append(sp.trace_id)
                    cols["span_id"].append(sp.span_id)
                    cols["parent"].append(sp.parent_span_id or None)
                    cols["name"].append(sp.name)
                    cols["kind"].append(sp.kind)
                    cols["start"].append(sp.start_time_unix_nano)
                    cols["end"].append(sp.end_time_unix_nano)
                    cols["service"].append(service)
                    cols["attrs"].append({a.key: json_format.MessageToDict(a.value)
                                          for a in sp.attributes})
                    n += 1
table = pa.table({k: pa.array(v) if k != "attrs" else pa.array([str(x) for x in v])
                  for k, v in cols.items()})
print(time.perf_counter() - t, n, table.nbytes)
"""

PYARROW_JSON = """
import sys, time
import pyarrow.json as pj
t = time.perf_counter()
table = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=16 << 20))
print(time.perf_counter() - t, table.num_rows, table.nbytes)
"""


def run(code: str, *args: str) -> tuple[float, int, int, float]:
    """(seconds, rows, table bytes, peak RSS MiB) of ``code`` in a fresh interpreter."""
    # VmHWM (peak resident set) from /proc is per process image; ru_maxrss would carry over
    # the parent's peak through fork+exec on Linux.
    wrapper = (
        code
        + "\nfor _l in open('/proc/self/status'):\n"
        + "    if _l.startswith('VmHWM:'): print(int(_l.split()[1]) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2]), float(out[3])


CONVERT_TARGET = {300_000: 55.0}
"""Issue 16: whole-process ``tailscope convert`` at least this many times the json_format path."""


def timed_process(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of one command in its own process, start-up and exit included."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return wall, done.stdout


def whole_process(args: argparse.Namespace, workdir: Path) -> None:
    """``tailscope convert`` to Arrow and Parquet at each size against the json_format path,
    every run its own process, interleaved; medians and ratios."""
    sizes = [int(x) for x in args.sizes.split(",")]
    paths = {}
    for spans in sizes:  # generate every file before timing anything
        path = args.workdir / f"ingest-{spans}-seed7.jsonl"
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr, flush=True)
            generate(path, spans)
        paths[spans] = path
    sys.path.insert(0, str(Path(__file__).parent))
    from analyze import compiled_env  # benchmarks/analyze.py

    env = compiled_env(args.workdir)
    load = os.getloadavg()
    print(
        f"before: load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}, {os.cpu_count()} cores"
    )
    convert = [sys.executable, "-m", "tailscope", "convert"]
    rows = []
    for spans, path in paths.items():
        arrow_s: list[float] = []
        parquet_s: list[float] = []
        naive_s: list[float] = []
        for _ in range(args.repeat):  # interleaved: a noisy minute hurts every contender alike
            arrow_s.append(
                timed_process([*convert, str(path), "-o", str(workdir / "t.arrow"), "-q"], env)[0]
            )
            parquet_s.append(
                timed_process([*convert, str(path), "-o", str(workdir / "t.parquet"), "-q"], env)[0]
            )
            wall, out = timed_process(
                [sys.executable, "-c", NAIVE, str(path), str(args.baseline_lines)], env
            )
            loop_s, naive_spans = float(out.split()[0]), int(out.split()[1])
            naive_s.append(wall - loop_s + loop_s / naive_spans * spans)
        rows.append((spans, path, *map(statistics.median, (arrow_s, parquet_s, naive_s))))
    load = os.getloadavg()
    print(f"after:  load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    print(
        f"\n== whole process, median of {args.repeat}: tailscope convert vs json_format.Parse "
        "(issue 16 target: >= 55x at 300k, to Arrow and to Parquet) =="
    )
    print(
        f"{'spans':>10}{'MB':>6}{'-> .arrow':>11}{'spans/s':>10}{'ratio':>8}"
        f"{'-> .parquet':>13}{'spans/s':>10}{'ratio':>8}{'json_format':>13}{'spans/s':>9}"
    )
    for spans, path, arrow, parquet, naive in rows:
        target = CONVERT_TARGET.get(spans)
        met = ""
        if target is not None:
            met = "  target met" if min(naive / arrow, naive / parquet) >= target else "  NOT met"
        print(
            f"{spans:>10,}{path.stat().st_size / 1e6:6.0f}{arrow:10.2f}s{spans / arrow:10,.0f}"
            f"{naive / arrow:7.1f}x{parquet:12.2f}s{spans / parquet:10,.0f}{naive / parquet:7.1f}x"
            f"{naive:12.1f}s{spans / naive:9,.0f}{met}"
        )
    print(
        f"json_format: whole process on the first {args.baseline_lines} lines, its per-span "
        "loop time extrapolated to each size plus its own start-up"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time whole tailscope convert processes at --sizes against json_format",
    )
    parser.add_argument("--sizes", default="50000,300000,1000000", help="with --whole-process")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/tailscope-bench-ingest"),
        help="with --whole-process: where the generated inputs are kept between runs",
    )
    parser.add_argument("--file", type=Path, help="use this OTLP/JSON Lines file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-lines", type=int, default=200)
    parser.add_argument(
        "--proto-spans", type=int, help="spans in the protobuf file (default: all of --spans)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tailscope-bench-"))
    try:
        if args.whole_process:
            args.workdir.mkdir(parents=True, exist_ok=True)
            whole_process(args, workdir)
        else:
            measure(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, workdir: Path) -> None:
    """Generate inputs in ``workdir``, run every contender and print the comparison."""
    path = args.file or workdir / "spans.jsonl"
    if args.file is None:
        t = time.perf_counter()
        generate(path, args.spans)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    proto_path = workdir / "spans.pb"
    to_proto(path, proto_path, args.proto_spans or sys.maxsize)
    mb = path.stat().st_size / 1e6

    def median_of(code: str, *extra: str) -> tuple[float, int, int, float]:
        runs = [run(code, *extra) for _ in range(args.repeat)]
        return (
            statistics.median(r[0] for r in runs),
            runs[0][1],
            runs[0][2],
            statistics.median(r[3] for r in runs),
        )

    ours_s, rows, table_bytes, ours_rss = median_of(OURS, str(path))
    proto_s, proto_rows, proto_bytes, proto_rss = median_of(OURS, str(proto_path))
    naive_s, naive_rows, _, naive_rss = run(NAIVE, str(path), str(args.baseline_lines))
    pj_s, _, _, pj_rss = median_of(PYARROW_JSON, str(path))

    ours_rate = rows / ours_s
    naive_rate = naive_rows / naive_s
    pj_rate = rows / pj_s
    table_mib = table_bytes / 2**20
    print(f"input: {path} ({rows:,} spans, {mb:.0f} MB), {os.cpu_count()} cores")
    print(f"medians of {args.repeat} runs, each in a fresh subprocess")
    print(
        f"ours OTLP/JSON  : {ours_rate:>12,.0f} spans/s {mb / ours_s:7.1f} MB/s  "
        f"peak RSS {ours_rss:7.0f} MiB = {ours_rss / table_mib:.2f}x final table "
        f"({table_mib:.0f} MiB)"
    )
    proto_mib = proto_bytes / 2**20
    print(
        f"ours protobuf   : {proto_rows / proto_s:>12,.0f} spans/s "
        f"{proto_path.stat().st_size / 1e6 / proto_s:7.1f} MB/s  peak RSS {proto_rss:7.0f} MiB = "
        f"{proto_rss / proto_mib:.2f}x final table ({proto_mib:.0f} MiB, {proto_rows:,} spans)"
    )
    print(
        f"(a) json_format : {naive_rate:>12,.0f} spans/s (first {args.baseline_lines} lines, "
        f"{naive_rows:,} spans, peak RSS {naive_rss:.0f} MiB) -> ours is "
        f"{ours_rate / naive_rate:.1f}x"
    )
    print(
        f"(b) pyarrow.json: {pj_rate:>12,.0f} spans/s {mb / pj_s:7.1f} MB/s  peak RSS "
        f"{pj_rss:7.0f} MiB (nested, not flattened) -> ours is {ours_rate / pj_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
