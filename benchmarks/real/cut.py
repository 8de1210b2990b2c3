"""Cut a small capture (a few hundred spans, with its truth) out of a real-SDK run.

    python benchmarks/real/cut.py RUN_DIR OUT_DIR --case caller-paused [--width-ms 1200]

The capture keeps every span of the traces whose first span starts inside a window around the
first event of the chosen kind; the window opens ``--lead-ms`` before the event. Trace files are
written gzip-compressed in the run's encodings (``traces.jsonl.gz`` = OTLP/JSON lines,
``traces.pb.gz`` = collector-framed protobuf) and the truth is recomputed from the cut traces
with the same code as the run's (``truth.compute_truth``), so ``requests_touched`` counts only
the requests the capture holds.

Cases: ``low-rate`` (a pause of the ~24 req/s audit instance), ``caller-paused`` (a timeout
caused by the caller's own collection), ``paused-caller`` (a pause of at least 25 ms that
touched at least 3 requests, of an instance that calls others: its callees fall silent too),
``back-to-back`` (two pauses of one instance less than
20 ms apart), ``slow-dependency`` (timeouts in a slow-database window, no pause cause),
``node-ms`` (a pause of a Node.js instance, whose span starts have whole-millisecond clocks),
``gc-cascade`` (the window with the most pause-caused timeouts).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import itertools
import json
import struct
import sys
from pathlib import Path
from typing import Any

import polars as pl
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CALLS
from truth import compute_truth, load_spans, read_logs

MS = 1_000_000


def _hex(trace_id: str) -> str:
    if len(trace_id) == 32:
        return trace_id.lower()
    return base64.b64decode(trace_id).hex()


def event_time(truth: dict[str, Any], case: str, spans_by_tid: dict[str, int], nth: int) -> int:
    """Unix ns of the first event of ``case`` in the run (raises when there is none)."""
    pauses = truth["pauses"]
    big = [p for p in pauses if p["duration_ms"] >= 25 and p["requests_touched"] >= 3]
    if case == "low-rate":
        hits = [p["start_unix_nano"] for p in big if p["service"] == "audit"]
    elif case == "node-ms":
        hits = [p["start_unix_nano"] for p in big if p["runtime"] == "nodejs"]
    elif case == "back-to-back":
        hits = []
        by: dict[str, list[dict[str, Any]]] = {}
        for p in pauses:
            by.setdefault(p["instance"], []).append(p)
        for ps in by.values():
            for a, b in itertools.pairwise(ps):
                if (
                    b["start_unix_nano"] - a["end_unix_nano"] < 20 * MS
                    and a["duration_ms"] >= 10
                    and b["duration_ms"] >= 10
                ):
                    hits.append(a["start_unix_nano"])
    elif case == "caller-paused":
        hits = [
            spans_by_tid[t["trace_id"]]
            for t in truth["timeouts"]
            if t["cause"] == "pause" and t["paused_caller"]
        ]
    elif case == "paused-caller":
        hits = [p["start_unix_nano"] for p in big if p["service"] in CALLS]
    elif case == "slow-dependency":
        hits = [
            spans_by_tid[t["trace_id"]]
            for t in truth["timeouts"]
            if t["cause"] == "slow-dependency"
        ]
    elif case == "gc-cascade":
        times = sorted(
            spans_by_tid[t["trace_id"]] for t in truth["timeouts"] if t["cause"] == "pause"
        )
        best, hits = 0, []
        for i, t0 in enumerate(times):
            n = sum(1 for t in times[i:] if t - t0 < 800 * MS)
            if n > best:
                best, hits = n, [t0 + 200 * MS]
    else:
        raise SystemExit(f"unknown case {case!r}")
    # skip the first and last 3 s (warm-up, shutdown)
    first, last = min(spans_by_tid.values()), max(spans_by_tid.values())
    hits = sorted(h for h in hits if first + 3000 * MS < h < last - 3000 * MS)
    if not hits:
        raise SystemExit(f"no {case} event in this run")
    return hits[min(nth, len(hits) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--case", required=True)
    ap.add_argument("--width-ms", type=float, default=1200.0)
    ap.add_argument("--lead-ms", type=float, default=500.0)
    ap.add_argument("--nth", type=int, default=0, help="use the n-th event of the case (from 0)")
    args = ap.parse_args()
    run_truth = json.loads((args.run / "truth.json").read_text())
    spans = load_spans(args.run)
    first_start = {r[0]: r[1] for r in spans.group_by("tid").agg(pl.col("start").min()).iter_rows()}
    t = event_time(run_truth, args.case, first_start, args.nth)
    a, b = t - int(args.lead_ms * MS), t - int(args.lead_ms * MS) + int(args.width_ms * MS)
    keep = {tid for tid, s in first_start.items() if a <= s <= b}
    args.out.mkdir(parents=True, exist_ok=True)
    n_json = n_pb = 0
    src = args.run / "traces.jsonl"
    if src.exists():
        with gzip.open(args.out / "traces.jsonl.gz", "wt") as f:
            for line in src.read_text().splitlines():
                req = json.loads(line)
                for rs in req.get("resourceSpans", []):
                    for ss in rs.get("scopeSpans", []):
                        ss["spans"] = [x for x in ss.get("spans", []) if _hex(x["traceId"]) in keep]
                        n_json += len(ss["spans"])
                    rs["scopeSpans"] = [ss for ss in rs.get("scopeSpans", []) if ss["spans"]]
                req["resourceSpans"] = [rs for rs in req["resourceSpans"] if rs["scopeSpans"]]
                if req["resourceSpans"]:
                    f.write(json.dumps(req, separators=(",", ":")) + "\n")
    src = args.run / "traces.pb"
    if src.exists():
        data = src.read_bytes()
        with gzip.open(args.out / "traces.pb.gz", "wb") as g:
            pos = 0
            while pos + 4 <= len(data):
                (n,) = struct.unpack(">I", data[pos : pos + 4])
                msg = ExportTraceServiceRequest.FromString(data[pos + 4 : pos + 4 + n])
                pos += 4 + n
                out = ExportTraceServiceRequest()
                for rs in msg.resource_spans:
                    new_rs = None
                    for ss in rs.scope_spans:
                        kept = [x for x in ss.spans if x.trace_id.hex() in keep]
                        if not kept:
                            continue
                        if new_rs is None:
                            new_rs = out.resource_spans.add()
                            new_rs.resource.CopyFrom(rs.resource)
                            new_rs.schema_url = rs.schema_url
                        new_ss = new_rs.scope_spans.add()
                        new_ss.scope.CopyFrom(ss.scope)
                        new_ss.schema_url = ss.schema_url
                        new_ss.spans.extend(kept)
                        n_pb += len(kept)
                if out.resource_spans:
                    body = out.SerializeToString()
                    g.write(struct.pack(">I", len(body)) + body)
    logs = read_logs(args.run / "work")
    # collections from shortly before the window to the end of its last trace
    last_end = int(load_spans(args.out)["end"].max())
    for gl in logs["gc"]:
        for key in ("pauses", "freezes"):
            gl[key] = [
                p
                for p in gl.get(key, [])
                if a - 200 * MS <= int(p["end_unix_nano"]) and int(p["start_unix_nano"]) <= last_end
            ]
    cut = load_spans(args.out)
    calls = {k: [tuple(c) for c in v] for k, v in run_truth["calls"].items()}
    truth = compute_truth(
        cut, logs, calls, run_truth["min_pause_ms"], run_truth["pause_cause_share"]
    )
    truth.update(
        scenario=f"real capture {args.case}",
        source_run=args.run.name,
        source_run_readme=(args.run / "README").read_text().strip(),
        window_unix_nano=[a, b],
        case=args.case,
    )
    truth.pop("db_slow_windows", None)
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(
        f"{args.out}: {cut.height} spans ({n_json} JSON, {n_pb} protobuf), "
        f"{len(keep)} traces, {len(truth['pauses'])} pauses, {len(truth['timeouts'])} timeouts"
    )


if __name__ == "__main__":
    main()
