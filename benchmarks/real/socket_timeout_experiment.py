"""Does a caller's stop-the-world collection make an http.client call to a prompt server time out?

The experiment behind the truth's treatment of CPython callers (``truth.py``; docs/detection.md,
"Real-SDK runs: what a socket timeout measures"). The client code of ``pysvc.py``'s ``call()``
(``HTTPConnection(timeout=budget)``, request, getresponse, read) against the harness's own
database (``aux.py db``, run as a subprocess), with a full collection induced in the *calling*
process by another thread at a known offset from the call's start. Each scenario is repeated;
per attempt it prints the outcome, the call's duration, where the collection fell, and the
database's own arrival and answer times (its log, same host clock).

    benchmarks/real/.venv/bin/python benchmarks/real/socket_timeout_experiment.py OUT_DIR

Run it under ``flock /tmp/tailscope-heavy.lock``: it holds a CPU for ~40 s of collections.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

AUX = str(Path(__file__).with_name("aux.py"))
BUDGET_MS = 80  # payments -> db in run.py CALLS
HEAP = [[i, {"k": i}] for i in range(2_500_000)]  # a full collection takes ~hundreds of ms
PAUSES: list[tuple[int, int]] = []
_start = [0]


def _cb(phase: str, info: dict) -> None:
    if phase == "start":
        _start[0] = time.time_ns()
    else:
        PAUSES.append((_start[0], time.time_ns()))


def call(port: int) -> dict:
    """pysvc.call without the span: the same http.client usage and the same exceptions."""
    t0 = time.time_ns()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=BUDGET_MS / 1000)
    out, t_sent = "ok", 0
    try:
        conn.request("GET", "/query", headers={"traceparent": f"00-{t0:032x}-{0:016x}-01"})
        t_sent = time.time_ns()
        resp = conn.getresponse()
        resp.read()
    except TimeoutError:
        out = "timeout"
    finally:
        conn.close()
    return {"start": t0, "sent": t_sent, "end": time.time_ns(), "outcome": out}


def run_db(port: int, normal_ms: list[float], out: Path, tag: str) -> tuple[subprocess.Popen, Path]:
    log = out / f"db-{tag}.json"
    cfg = out / f"db-{tag}.cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "seed": 1,
                "seconds": 60,
                "slow_every_s": 1e9,  # no slow windows: the delay is normal_ms only
                "slow_len_s": [0, 0],
                "slow_ms": [0, 0],
                "normal_ms": normal_ms,
                "log": str(log),
            }
        )
    )
    p = subprocess.Popen(
        [sys.executable, AUX, "db", str(port), str(cfg)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p, log


def scenario(
    name: str, port: int, normal_ms: list[float], gc_at_ms: float | None, reps: int, out: Path
) -> list[dict]:
    db, log = run_db(port, normal_ms, out, name)
    rows = []
    for _ in range(reps):
        time.sleep(0.3)
        PAUSES.clear()
        go = threading.Event()

        def collector(go: threading.Event = go) -> None:
            go.wait()
            if gc_at_ms is not None:
                if gc_at_ms > 0:
                    time.sleep(gc_at_ms / 1000)
                gc.collect(2)

        th = threading.Thread(target=collector)
        th.start()
        go.set()
        r = call(port)
        th.join()
        r["pauses"] = list(PAUSES)
        rows.append(r)
    db.terminate()
    db.wait(10)
    dblog = {row[0]: row for row in json.loads(log.read_text())["requests"]}
    for r in rows:
        d = dblog.get(f"{r['start']:032x}")
        r["db_arrived"], r["db_answered"] = (d[2], d[3]) if d else (None, None)

        def ms(t: int | None, r: dict = r) -> float | None:
            return None if not t else round((t - r["start"]) / 1e6, 1)

        print(
            f"{name:34s} {r['outcome']:7s} dur {ms(r['end']):7.1f} ms  sent {ms(r['sent'])}  "
            f"db in/out {ms(r['db_arrived'])}/{ms(r['db_answered'])}  "
            f"pause {[(ms(a), ms(b)) for a, b in r['pauses']]}",
            flush=True,
        )
    return rows


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    gc.callbacks.append(_cb)
    t = time.time_ns()
    gc.collect(2)
    print(f"one full collection of this heap: {(time.time_ns() - t) / 1e6:.0f} ms", flush=True)
    port = 18900 + os.getpid() % 500
    results = {
        # 1. prompt db (2-5 ms), the caller collects 1 ms after the call starts: the collection
        #    covers the whole 80 ms budget and the db's answer
        "A prompt db, caller pause during wait": scenario(
            "A prompt db, caller pause during wait", port, [2, 5], 1, 8, out
        ),
        # 2. prompt db, collection starts with the call (before the request is sent)
        "B prompt db, caller pause at start": scenario(
            "B prompt db, caller pause at start", port + 1, [2, 5], 0, 8, out
        ),
        # 3. slow db (120 ms > budget), no pause: the negative control
        "C slow db 120 ms, no pause": scenario(
            "C slow db 120 ms, no pause", port + 2, [120, 120], None, 8, out
        ),
        # 4. db answers at 60 ms (inside the budget), caller collects during the wait
        "D db 60 ms, caller pause during wait": scenario(
            "D db 60 ms, caller pause during wait", port + 3, [60, 60], 10, 8, out
        ),
        # 5. slow db (120 ms) and a caller pause during the wait
        "E slow db 120 ms, caller pause during wait": scenario(
            "E slow db 120 ms, caller pause during wait", port + 4, [120, 120], 10, 8, out
        ),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
