"""Real-SDK harness: real HTTP services in CPython and Node.js, instrumented with the official
OpenTelemetry SDKs, under bounded load on 127.0.0.1, with collector pauses recorded by the
runtimes' own hooks. Writes traces plus truth for ``benchmarks/accuracy.py --real``.

    .venv/bin/python benchmarks/real/run.py --out RUNS/r1 --seconds 70 --seed 1 [--profile mixed]

Topology (one instance each; load generator uninstrumented)::

    loadgen -> gateway (Node, OTLP/JSON) -> orders (CPython, protobuf) -> inventory (Node)
                      \\-> audit (CPython, low rate)     \\-> payments (CPython) -> db

``db`` is plain HTTP without instrumentation (payments' CLIENT span carries ``db.system``); it has
slow windows (the negative control). Every client call has a timeout and retries once after a
timeout. Not part of the test suite; see docs/detection.md, "Real-SDK harness".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
VPY = VENV / "bin" / "python"
NODE_DIR = HERE / "node"

# (service, runtime, encoding, port offset)
SERVICES = [
    ("gateway", "node", "json", 1),
    ("orders", "python", "proto", 2),
    ("inventory", "node", "proto", 3),
    ("payments", "python", "proto", 4),
    ("audit", "python", "proto", 5),
]
DB_OFFSET = 6
# downstream calls: caller -> [(callee, path, timeout ms, probability)]
CALLS: dict[str, list[tuple[str, str, int, float]]] = {
    "gateway": [("orders", "/order", 400, 1.0), ("audit", "/audit", 120, 0.6)],
    "orders": [("inventory", "/reserve", 150, 1.0), ("payments", "/charge", 150, 1.0)],
    "payments": [("db", "/query", 80, 1.0)],
}
WORK_MS = {
    "gateway": [0.3, 1],
    "orders": [0.5, 1.5],
    "inventory": [0.5, 2],
    "payments": [0.5, 1],
    "audit": [0.2, 0.6],
}

# induced GC per profile: service -> (mean interval s, heap objects, garbage range, double prob)
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "mixed": {
        "gateway": {
            "mean_interval_s": 4.0,
            "heap": 400_000,
            "garbage": [20_000, 200_000],
            "double_prob": 0.2,
        },
        "orders": {
            "mean_interval_s": 3.0,
            "heap": 100_000,
            "garbage": [10_000, 120_000],
            "double_prob": 0.2,
        },
        "inventory": {
            "mean_interval_s": 3.0,
            "heap": 400_000,
            "garbage": [20_000, 200_000],
            "double_prob": 0.2,
        },
        "payments": {
            "mean_interval_s": 4.0,
            "heap": 100_000,
            "garbage": [10_000, 120_000],
            "double_prob": 0.2,
        },
        "audit": {
            "mean_interval_s": 3.0,
            "heap": 100_000,
            "garbage": [10_000, 120_000],
            "double_prob": 0.1,
        },
    },
    "python-heavy": {
        "gateway": {"mean_interval_s": 0, "heap": 100_000, "garbage": [0, 0], "double_prob": 0},
        "orders": {
            "mean_interval_s": 2.0,
            "heap": 150_000,
            "garbage": [10_000, 150_000],
            "double_prob": 0.3,
        },
        "inventory": {"mean_interval_s": 0, "heap": 100_000, "garbage": [0, 0], "double_prob": 0},
        "payments": {
            "mean_interval_s": 2.0,
            "heap": 150_000,
            "garbage": [10_000, 150_000],
            "double_prob": 0.3,
        },
        "audit": {
            "mean_interval_s": 2.0,
            "heap": 150_000,
            "garbage": [10_000, 150_000],
            "double_prob": 0.2,
        },
    },
    "node-heavy": {
        "gateway": {
            "mean_interval_s": 2.0,
            "heap": 600_000,
            "garbage": [20_000, 300_000],
            "double_prob": 0.3,
        },
        "orders": {"mean_interval_s": 0, "heap": 100_000, "garbage": [0, 0], "double_prob": 0},
        "inventory": {
            "mean_interval_s": 2.0,
            "heap": 600_000,
            "garbage": [20_000, 300_000],
            "double_prob": 0.3,
        },
        "payments": {"mean_interval_s": 0, "heap": 100_000, "garbage": [0, 0], "double_prob": 0},
        "audit": {"mean_interval_s": 0, "heap": 100_000, "garbage": [0, 0], "double_prob": 0},
    },
}
RATE = 40.0  # root requests per second
MIN_PAUSE_MS = 1.0  # shorter collections are counted in truth["short_pauses"], not listed
PAUSE_CAUSE_SHARE = 0.2  # a timeout is pause-caused when pauses ate >= this share of its budget
STARVED_WAIT_MS = 250.0  # a second is starved when the services waited at least this long
STARVED_WAIT_RATIO = 2.0  # for a CPU (summed over their threads) and over twice as long as they ran
STARVED_MAX_SHARE = 0.25  # a run is discarded when more than this share of seconds starved


def ensure_envs() -> None:
    """Check what the run needs and create the services' environments when missing; exit with
    a message saying what to do instead of failing half-way through a run."""
    try:
        import polars  # noqa: F401

        import tailscope  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"run.py computes the truth with tailscope ({exc}): run it with the project's "
            "venv, e.g. .venv/bin/python benchmarks/real/run.py ... (setup: python3 -m venv "
            ".venv && .venv/bin/pip install -e '.[test,bench]')"
        ) from exc
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"run.py needs {tool} (Node.js 18+) on PATH for the Node services")
    if not VPY.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run(
                [
                    str(VPY),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "opentelemetry-sdk>=1.30",
                    "opentelemetry-exporter-otlp-proto-http>=1.30",
                ],
                check=True,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(VENV, ignore_errors=True)  # no half-made venv next time
            raise SystemExit(
                f"could not create {VENV} with the OpenTelemetry SDK ({exc}); create it by hand: "
                f"python3 -m venv {VENV} && {VPY} -m pip install opentelemetry-sdk "
                "opentelemetry-exporter-otlp-proto-http"
            ) from exc
    if not (NODE_DIR / "node_modules").exists():
        try:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(
                f"npm ci failed in {NODE_DIR} ({exc}); run it there by hand (needs the npm "
                "registry)"
            ) from exc


def free_base() -> int:
    for base in range(23100, 24000, 10):
        ok = True
        for off in range(8):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + off))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("no free port range on 127.0.0.1")


class Procs:
    """Every process the harness starts, stopped by its pid."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.autogroup_nice: dict[str, int | None] = {}

    def start(
        self, name: str, argv: list[str], log: Path, nice: int | None = None
    ) -> subprocess.Popen[bytes]:
        cmd = (["nice", "-n", str(nice)] if nice is not None else []) + argv
        p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115 - the child keeps it
            start_new_session=True,
        )
        self.procs.append((name, p))
        if nice is not None:
            # each process is its own session, so with sched_autogroup_enabled=1 it is its own
            # autogroup: CPU is shared between autogroups by the *group's* nice, and the
            # process's own nice only orders it within the group. Raise the group as well.
            try:
                Path(f"/proc/{p.pid}/autogroup").write_text(str(nice))
                self.autogroup_nice[name] = nice
            except OSError:
                self.autogroup_nice[name] = None
        assert p.stdout is not None
        line = p.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"{name} did not start, see {log}")
        return p

    def stop(self, name: str, timeout: float = 15.0) -> None:
        for n, p in self.procs:
            if n == name and p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()

    def stop_all(self) -> None:
        for n, _ in reversed(self.procs):
            self.stop(n, 5.0)


def _threads_schedstat(pid: int) -> dict[str, tuple[int, int]]:
    """CPU time and run-queue wait (ns) of each live thread of ``pid``."""
    out: dict[str, tuple[int, int]] = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                a, b, _ = Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()
                out[t] = (int(a), int(b))
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return out


def _delta(cur: dict[str, tuple[int, int]], prev: dict[str, tuple[int, int]], i: int) -> int:
    """Sum over threads alive in both snapshots (request threads that came and went within
    the second are missed)."""
    return sum(v[i] - prev[t][i] for t, v in cur.items() if t in prev)


def sample_load(pids: dict[str, int], stop: threading.Event, out: list[dict[str, Any]]) -> None:
    """Once a second: /proc/stat CPU ticks and runnable count, PSI cpu, loadavg, and each
    service's CPU and run-queue wait (sum of its threads' /proc/<pid>/task/*/schedstat)."""

    def snap() -> dict[str, Any]:
        stat = Path("/proc/stat").read_text().splitlines()
        cpu = [int(x) for x in stat[0].split()[1:]]
        running = next(int(ln.split()[1]) for ln in stat if ln.startswith("procs_running"))
        try:
            psi = int(Path("/proc/pressure/cpu").read_text().splitlines()[0].split("total=")[1])
        except (OSError, IndexError):
            psi = 0
        return {
            "t": time.time(),
            "cpu": cpu,
            "running": running,
            "psi": psi,
            "loadavg": Path("/proc/loadavg").read_text().split()[:4],
            "svc": {n: _threads_schedstat(p) for n, p in pids.items()},
        }

    prev = snap()
    while not stop.wait(1.0):
        cur = snap()
        dt = cur["t"] - prev["t"]
        d = [a - b for a, b in zip(cur["cpu"], prev["cpu"], strict=False)]
        total = sum(d) or 1
        svc = {
            n: {
                "cpu_ms": _delta(cur["svc"][n], prev["svc"][n], 0) / 1e6 / dt,
                "wait_ms": _delta(cur["svc"][n], prev["svc"][n], 1) / 1e6 / dt,
            }
            for n in pids
        }
        out.append(
            {
                "unix_s": round(cur["t"], 3),
                "busy_share": round(1 - (d[3] + d[4]) / total, 3),
                "steal_share": round(d[7] / total, 3) if len(d) > 7 else 0.0,
                "procs_running": cur["running"],
                "psi_some_share": round((cur["psi"] - prev["psi"]) / 1e6 / dt, 3),
                "loadavg": cur["loadavg"],
                "services": {n: {k: round(v, 1) for k, v in x.items()} for n, x in svc.items()},
            }
        )
        prev = cur


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seconds", type=float, default=70.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="mixed")
    ap.add_argument("--rate", type=float, default=RATE)
    ap.add_argument("--nice", type=int, default=-5)
    args = ap.parse_args()
    if not 5 <= args.seconds <= 120:
        raise SystemExit("--seconds must be within 5..120 (bounded runs)")
    ensure_envs()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    rng = random.Random(args.seed)
    base = free_base()
    endpoint = f"http://127.0.0.1:{base}/v1/traces"
    port = {name: base + off for name, _, _, off in SERVICES} | {"db": base + DB_OFFSET}
    profile = PROFILES[args.profile]
    procs = Procs()
    samples: list[dict[str, Any]] = []
    stop_sampling = threading.Event()
    started = time.time()
    try:
        procs.start(
            "receiver",
            [sys.executable, str(HERE / "aux.py"), "receiver", str(base), str(out)],
            work / "receiver.log",
        )
        db_cfg = {
            "seed": rng.randrange(1 << 30),
            "seconds": args.seconds,
            "slow_every_s": 9.0,
            "slow_len_s": [0.8, 2.0],
            "slow_ms": [120, 300],
            "normal_ms": [1, 5],
            "log": str(work / "db.json"),
        }
        (work / "db.cfg.json").write_text(json.dumps(db_cfg))
        procs.start(
            "db",
            [
                sys.executable,
                str(HERE / "aux.py"),
                "db",
                str(port["db"]),
                str(work / "db.cfg.json"),
            ],
            work / "db.log",
            nice=args.nice,
        )
        pids: dict[str, int] = {}
        for name, runtime, encoding, _ in reversed(SERVICES):  # callees first
            g = profile[name]
            cfg = {
                "service": name,
                "instance": f"{name}-1",
                "port": port[name],
                "endpoint": endpoint,
                "encoding": encoding,
                "seed": rng.randrange(1 << 30),
                "work_ms": WORK_MS[name],
                "heap_objects": g["heap"],
                "gc_log": str(work / f"gc.{name}.json"),
                "gc": {
                    "mean_interval_s": g["mean_interval_s"],
                    "garbage_min": g["garbage"][0],
                    "garbage_max": g["garbage"][1],
                    "double_prob": g["double_prob"],
                    "full_share": 0.7,
                },
                "calls": [
                    {
                        "service": c,
                        "port": port[c],
                        "path": p,
                        "timeout_ms": t,
                        "prob": pr,
                        **({"db_system": "other_sql"} if c == "db" else {}),
                    }
                    for c, p, t, pr in CALLS.get(name, [])
                ],
            }
            path = work / f"{name}.cfg.json"
            path.write_text(json.dumps(cfg))
            if runtime == "python":
                argv = [str(VPY), str(HERE / "pysvc.py"), str(path)]
            else:
                argv = ["node", "--expose-gc", str(NODE_DIR / "svc.js"), str(path)]
            pids[name] = procs.start(name, argv, work / f"{name}.log", nice=args.nice).pid
        sampler = threading.Thread(
            target=sample_load, args=(pids, stop_sampling, samples), daemon=True
        )
        sampler.start()
        lg_cfg = {
            "seed": rng.randrange(1 << 30),
            "port": port["gateway"],
            "path": "/checkout",
            "rate": args.rate,
            "seconds": args.seconds,
            "timeout_s": 3.0,
            "log": str(work / "loadgen.json"),
        }
        (work / "loadgen.cfg.json").write_text(json.dumps(lg_cfg))
        lg = subprocess.Popen(
            [sys.executable, str(HERE / "aux.py"), "loadgen", str(work / "loadgen.cfg.json")],
            start_new_session=True,
        )
        procs.procs.append(("loadgen", lg))
        lg.wait(args.seconds + 30)
        stop_sampling.set()
        for name, *_ in SERVICES:  # callers first so their spans flush while callees still run
            procs.stop(name)
        procs.stop("db")
        procs.stop("receiver")
    finally:
        stop_sampling.set()
        procs.stop_all()
    load = judge_load(samples)
    load["services"] = {n: pids.get(n) for n, *_ in SERVICES}
    load["nice"] = args.nice
    load["autogroup_nice"] = procs.autogroup_nice
    (out / "load.json").write_text(json.dumps(load, indent=1))
    from truth import build_truth  # the project's venv: tailscope + polars read the traces

    truth = build_truth(out, work, port, CALLS, MIN_PAUSE_MS, PAUSE_CAUSE_SHARE)
    truth.update(
        {"scenario": f"real-{args.profile}", "seed": args.seed, "discarded": load["discarded"]}
    )
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    (out / "README").write_text(
        f"real-SDK run: profile={args.profile} seed={args.seed} seconds={args.seconds} "
        f"rate={args.rate}/s "
        f"nice={args.nice} started={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(started))} "
        f"spans={truth['spans']} pauses>={MIN_PAUSE_MS}ms={len(truth['pauses'])} "
        f"timeouts={len(truth['timeouts'])} starved_s={load['starved_seconds']}/{load['seconds']} "
        f"{'DISCARDED' if load['discarded'] else 'kept'}\n"
    )
    print((out / "README").read_text(), end="")


def judge_load(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A second is *starved* when the services' threads together waited at least
    STARVED_WAIT_MS in the run queue (runnable, no CPU) and more than STARVED_WAIT_RATIO times
    as long as they ran; the run is discarded when more than STARVED_MAX_SHARE of its seconds
    were starved."""

    def starved_second(s: dict[str, Any]) -> bool:
        wait = sum(v["wait_ms"] for v in s["services"].values())
        ran = sum(v["cpu_ms"] for v in s["services"].values())
        return wait >= STARVED_WAIT_MS and wait > STARVED_WAIT_RATIO * ran

    starved = [s["unix_s"] for s in samples if starved_second(s)]
    n = len(samples)
    return {
        "rule": f"starved second: services' summed run-queue wait >= {STARVED_WAIT_MS} ms and "
        f"> {STARVED_WAIT_RATIO}x their summed CPU time; "
        f"discard when starved seconds > {STARVED_MAX_SHARE:.0%} of the run",
        "seconds": n,
        "starved_seconds": len(starved),
        "discarded": n == 0 or len(starved) > STARVED_MAX_SHARE * n,
        "mean_busy_share": round(sum(s["busy_share"] for s in samples) / max(n, 1), 3),
        "mean_psi_some_share": round(sum(s["psi_some_share"] for s in samples) / max(n, 1), 3),
        "samples": samples,
    }


if __name__ == "__main__":
    main()
