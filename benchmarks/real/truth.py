"""Truth step of the real-SDK harness: runtime pause logs + traces -> ``truth.json``.

Written in the simulator's truth format, so :func:`tailscope.analysis._stall_grading.grade`
grades real runs and simulated ones the same way. All processes share this machine's clock, so
``host_offsets_ns`` is empty.

* ``pauses``: every collection of at least ``min_pause_ms`` recorded by the runtime's own hook
  (CPython ``gc.callbacks`` start/stop, Node ``perf_hooks`` 'gc' entries), in Unix ns.
  ``requests_touched`` = distinct traces with a span of that instance *in flight across* the pause
  (``start < pause end`` and ``end > pause start``: ``stretched_span_ids``) or *arriving during*
  it: a CLIENT span aimed at the instance (``server.address`` = its service) started inside the
  pause, or, for the gateway (called by the uninstrumented load generator), a request the load
  generator sent inside the pause (``queued_span_ids`` = the callers' CLIENT spans, or the
  gateway's SERVER spans).
* ``timeouts``: CLIENT spans with ``error.type = timeout``. ``cause`` is
  ``slow-dependency`` when the database is the callee or downstream of it and served this trace
  in a slow window while the call was outstanding (a callee that never reaches the database,
  like ``audit``, is not slowed by a query the trace's abandoned work sent while the caller
  waited on it); else ``pause`` when collections of the caller, the callee or the callee's
  downstream instances covered at least ``cause_share`` of the call's timeout while it was
  outstanding; else ``other`` (CPU starvation, queueing). A CPython caller's own collections
  are not counted: its ``http.client`` timeout is a socket timeout, timed per socket operation
  by ``poll`` with the GIL released, so an answer that arrives in time is read when the caller
  resumes, however long it was frozen. Measured, not argued: a controlled run of ``pysvc``'s
  client code against ``aux.py db`` (80 ms budget; full collections of 670–1310 ms induced in
  the caller 0.3–18 ms after the call started) saw 0 of 24 calls time out whose answer came
  within the budget of the send, and all 16 answered after 120 ms time out, 8 with the
  collection and 8 without
  (docs/detection.md, "Real-SDK runs: what a socket timeout measures"). Node's per-attempt
  ``setTimeout`` runs before pending I/O when the loop resumes, so a Node caller's pauses
  still count.
* ``trace_outcomes``: traces with a timeout; ``gc_caused`` = at least one timeout caused by a pause.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tailscope import schema as s
from tailscope.ingest import read_spans

SERVER, CLIENT = 2, 3


def _intervals_overlap(intervals: list[tuple[int, int]], a: int, b: int) -> int:
    """Length of the union of ``intervals`` clipped to [a, b]."""
    clipped = sorted((max(x, a), min(y, b)) for x, y in intervals if x < b and y > a)
    total, cur_s, cur_e = 0, None, None
    for x, y in clipped:
        if cur_e is None or x > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = x, y
        else:
            cur_e = max(cur_e, y)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def non_gc_freezes(
    gc_logs: list[dict[str, Any]], pauses: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Heartbeat gaps (a 2 ms tick more than 10 ms late) minus the recorded collections: the time
    each process was frozen for another reason (CPU starvation, the GIL held by other work, or
    synchronous work). Kept at least 10 ms long after the subtraction."""
    by_inst: dict[str, list[tuple[int, int]]] = {}
    for p in pauses:
        by_inst.setdefault(p["instance"], []).append((p["start_unix_nano"], p["end_unix_nano"]))
    out = []
    for g in gc_logs:
        for f in g.get("freezes", []):
            a, b = int(f["start_unix_nano"]), int(f["end_unix_nano"])
            gc_ns = _intervals_overlap(by_inst.get(g["instance"], []), a, b)
            if (b - a) - gc_ns >= 10_000_000:
                out.append(
                    {
                        "instance": g["instance"],
                        "start_unix_nano": a,
                        "end_unix_nano": b,
                        "duration_ms": round((b - a) / 1e6, 3),
                        "gc_ms": round(gc_ns / 1e6, 3),
                    }
                )
    return sorted(out, key=lambda f: f["start_unix_nano"])


def load_spans(out: Path) -> pl.DataFrame:
    names = ("traces.jsonl", "traces.jsonl.gz", "traces.pb", "traces.pb.gz")
    files = [str(out / n) for n in names if (out / n).exists() and (out / n).stat().st_size]
    table = read_spans(files).table
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    lgid = (
        pl.col(s.ATTRIBUTES)
        .list.eval(
            pl.element()
            .filter(pl.element().struct.field("key") == "loadgen.request_id")
            .struct.field("value")
        )
        .list.first()
        .cast(pl.Int64, strict=False)
    )
    return df.select(
        pl.col(s.TRACE_ID).bin.encode("hex").alias("tid"),
        pl.col(s.SPAN_ID).bin.encode("hex").alias("sid"),
        pl.col(s.PARENT_SPAN_ID).bin.encode("hex").alias("pid"),
        pl.col(s.KIND).cast(pl.Int64).alias("kind"),
        pl.col(s.START).alias("start"),
        pl.col(s.END).alias("end"),
        pl.col(s.SERVICE).cast(pl.String).alias("service"),
        pl.col(s.INSTANCE).cast(pl.String).alias("instance"),
        pl.col(s.SERVER_ADDRESS).cast(pl.String).alias("target"),
        pl.col(s.ERROR_TYPE).cast(pl.String).alias("error_type"),
        pl.col(s.HTTP_RESEND_COUNT).fill_null(0).alias("resend"),
        lgid.alias("lgid"),
    )


def read_logs(work: Path) -> dict[str, Any]:
    """The raw logs of a run: pause logs per service, the database's and the load generator's."""
    return {
        "gc": [json.loads(p.read_text()) for p in sorted(work.glob("gc.*.json"))],
        "db": json.loads((work / "db.json").read_text()),
        "loadgen": json.loads((work / "loadgen.json").read_text())["requests"],
    }


def build_truth(
    out: Path,
    work: Path,
    port: dict[str, int],
    calls: dict[str, list[tuple[str, str, int, float]]],
    min_pause_ms: float,
    cause_share: float,
) -> dict[str, Any]:
    truth = compute_truth(load_spans(out), read_logs(work), calls, min_pause_ms, cause_share)
    truth["ports"] = port
    return truth


def compute_truth(
    spans: pl.DataFrame,
    logs: dict[str, Any],
    calls: dict[str, list[tuple[str, str, int, float]]],
    min_pause_ms: float,
    cause_share: float,
) -> dict[str, Any]:
    """Truth from the span table (:func:`load_spans`) and the raw logs (:func:`read_logs`)."""
    pauses: list[dict[str, Any]] = []
    short: dict[str, int] = {}
    for g in logs["gc"]:
        service = g["instance"].rsplit("-", 1)[0]
        for p in g["pauses"]:
            dur = (p["end_unix_nano"] - p["start_unix_nano"]) / 1e6
            if dur < min_pause_ms:
                short[g["instance"]] = short.get(g["instance"], 0) + 1
                continue
            pauses.append(
                {
                    "service": service,
                    "instance": g["instance"],
                    "host": "",
                    "kind": "gc-stw",
                    "runtime": g["runtime"],
                    "origin": p.get("origin", "unknown"),
                    "gc": p.get("generation", p.get("kind")),
                    "start_unix_nano": int(p["start_unix_nano"]),
                    "end_unix_nano": int(p["end_unix_nano"]),
                    "duration_ms": round(dur, 3),
                }
            )
    pauses.sort(key=lambda p: p["start_unix_nano"])
    freezes = non_gc_freezes(logs["gc"], pauses)
    loadgen = logs["loadgen"]
    sent = {int(i): int(t) for i, t, *_ in loadgen}

    by_inst = {k[0]: v for k, v in spans.partition_by("instance", as_dict=True).items()}
    clients = spans.filter(pl.col("kind") == CLIENT)
    by_target = {k[0]: v for k, v in clients.partition_by("target", as_dict=True).items() if k[0]}
    gw = spans.filter((pl.col("kind") == SERVER) & pl.col("lgid").is_not_null())
    gw_sent = np.array([sent.get(int(i), -1) for i in gw["lgid"]], dtype=np.int64)
    for p in pauses:
        ps, pe = p["start_unix_nano"], p["end_unix_nano"]
        mine = by_inst.get(p["instance"])
        stretched: list[str] = []
        tids: set[str] = set()
        if mine is not None:
            st, en = mine["start"].to_numpy(), mine["end"].to_numpy()
            m = (st < pe) & (en > ps)
            stretched = mine["sid"].filter(pl.Series(m)).to_list()
            tids |= set(mine["tid"].filter(pl.Series(m)).to_list())
        queued: list[str] = []
        callers = by_target.get(p["service"])
        if callers is not None:
            st = callers["start"].to_numpy()
            m = (st >= ps) & (st <= pe)
            queued = callers["sid"].filter(pl.Series(m)).to_list()
            tids |= set(callers["tid"].filter(pl.Series(m)).to_list())
        if p["service"] == "gateway" and gw.height:
            m = (gw_sent >= ps) & (gw_sent <= pe)
            queued += gw["sid"].filter(pl.Series(m)).to_list()
            tids |= set(gw["tid"].filter(pl.Series(m)).to_list())
        p.update(stretched_span_ids=stretched, queued_span_ids=queued, requests_touched=len(tids))

    # timeouts and their causes
    def downstream(svc: str) -> set[str]:
        found = {svc}
        for callee, *_ in calls.get(svc, []):
            found |= downstream(callee)
        return found

    budget = {(c, callee): t for c, lst in calls.items() for callee, _, t, _ in lst}
    # services whose client timeout is a socket timeout (see the module docstring)
    per_socket_op = {
        g["instance"].rsplit("-", 1)[0] for g in logs["gc"] if g["runtime"] == "cpython"
    }
    pauses_of: dict[str, list[tuple[int, int]]] = {}
    for p in pauses:
        pauses_of.setdefault(p["service"], []).append((p["start_unix_nano"], p["end_unix_nano"]))
    db = logs["db"]
    slow_db: dict[str, list[tuple[int, int]]] = {}
    for tid, _psid, a, b, slow in db["requests"]:
        if slow:
            slow_db.setdefault(tid, []).append((a, b))
    timeouts = []
    outcomes: dict[str, dict[str, Any]] = {}
    for row in clients.filter(pl.col("error_type") == "timeout").iter_rows(named=True):
        a, b = row["start"], row["end"]
        callee = row["target"] or ""
        timeout_ms = budget.get((row["service"], callee), 0)
        caller = set() if row["service"] in per_socket_op else {row["service"]}
        where = caller | downstream(callee)
        overlap = {w: _intervals_overlap(pauses_of.get(w, []), a, b) for w in where}
        total = _intervals_overlap([iv for w in where for iv in pauses_of.get(w, [])], a, b)
        slow = "db" in downstream(callee) and any(
            x < b and y > a for x, y in slow_db.get(row["tid"], [])
        )
        if slow:
            cause = "slow-dependency"
        elif total >= cause_share * timeout_ms * 1e6:
            cause = "pause"
        else:
            cause = "other"
        timeouts.append(
            {
                "trace_id": row["tid"],
                "span_id": row["sid"],
                "caller_service": row["service"],
                "caller_instance": row["instance"],
                "callee_service": callee,
                "callee_instance": f"{callee}-1",
                "timeout_ms": timeout_ms,
                "attempt": row["resend"] + 1,
                "cause": cause,
                "pause_overlap_ms": round(total / 1e6, 3),
                "pause_overlap_by_service_ms": {
                    w: round(v / 1e6, 3) for w, v in overlap.items() if v
                },
                "paused_caller": _intervals_overlap(pauses_of.get(row["service"], []), a, b)
                >= cause_share * timeout_ms * 1e6,
            }
        )
        o = outcomes.setdefault(row["tid"], {"timed_out": True, "gc_caused": False, "causes": []})
        o["causes"].append(cause)
        o["gc_caused"] = o["gc_caused"] or cause == "pause"
    retries = [
        {"trace_id": r["tid"], "span_id": r["sid"], "attempt": r["resend"] + 1}
        for r in clients.filter(pl.col("resend") > 0).iter_rows(named=True)
    ]
    return {
        "tailscope_truth_version": 1,
        "source": "real-sdk",
        "spans": spans.height,
        "traces": spans["tid"].n_unique(),
        "sampling": 1.0,
        "host_offsets_ns": {},
        "calls": {k: [list(c) for c in v] for k, v in calls.items()},
        "min_pause_ms": min_pause_ms,
        "short_pauses": short,
        "pause_cause_share": cause_share,
        "db_slow_windows": db["slow_windows"],
        "db_requests": len(db["requests"]),
        "db_slow_requests": sum(1 for r in db["requests"] if r[4]),
        "loadgen": {
            "requests": len(loadgen),
            "ok": sum(1 for r in loadgen if r[3] == 200),
            "failed": sum(1 for r in loadgen if r[3] != 200),
        },
        "pauses": pauses,
        "freezes": freezes,
        "timeouts": timeouts,
        "retries": retries,
        "trace_outcomes": outcomes,
    }


def main() -> None:
    """``python benchmarks/real/truth.py RUN_DIR...``: recompute each run's truth.json from its
    traces and raw logs (keeps the run's scenario, seed and discard verdict)."""
    import sys

    from run import CALLS, MIN_PAUSE_MS, PAUSE_CAUSE_SHARE, judge_load

    for arg in sys.argv[1:]:
        out = Path(arg)
        old = json.loads((out / "truth.json").read_text())
        load = json.loads((out / "load.json").read_text())
        verdict = judge_load(load["samples"])  # the current discard rule
        load.update({k: v for k, v in verdict.items() if k != "samples"})
        (out / "load.json").write_text(json.dumps(load, indent=1))
        old["discarded"] = load["discarded"]
        truth = build_truth(
            out, out / "work", old.get("ports", {}), CALLS, MIN_PAUSE_MS, PAUSE_CAUSE_SHARE
        )
        truth.update({k: old[k] for k in ("scenario", "seed", "discarded") if k in old})
        (out / "truth.json").write_text(json.dumps(truth, indent=1))
        print(
            f"{out}: {len(truth['pauses'])} pauses, {len(truth['timeouts'])} timeouts, "
            f"starved {load['starved_seconds']}/{load['seconds']} s, "
            f"{'DISCARDED' if load['discarded'] else 'kept'}"
        )


if __name__ == "__main__":
    main()
