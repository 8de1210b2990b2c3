"""Uninstrumented helpers of the real-SDK harness, stdlib only (run by ``run.py``).

    python aux.py receiver PORT OUT_DIR      # POST /v1/traces -> traces.jsonl / traces.pb
    python aux.py db PORT CONFIG.json         # the "database": plain HTTP, sometimes slow
    python aux.py loadgen CONFIG.json         # open-loop Poisson load on the gateway

The receiver writes what the collector's file exporter writes: OTLP/JSON bodies as JSON Lines
(one ExportTraceServiceRequest per line) and protobuf bodies each prefixed by its length as a
4-byte big-endian integer (``format: proto``). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import signal
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def receiver(port: int, out: str) -> None:
    lock = threading.Lock()
    jl = open(f"{out}/traces.jsonl", "wb")  # noqa: SIM115 - open for the server's lifetime
    pb = open(f"{out}/traces.pb", "wb")  # noqa: SIM115
    counts = {"json": 0, "proto": 0, "gzip": 0, "bytes": 0}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                body = b"".join(parts)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not body:
                counts["empty"] = counts.get("empty", 0) + 1
            if self.headers.get("Content-Encoding", "") == "gzip":
                body = gzip.decompress(body)
                counts["gzip"] += 1
            ctype = self.headers.get("Content-Type", "")
            with lock:
                counts["bytes"] += len(body)
                if "json" in ctype:
                    jl.write(json.dumps(json.loads(body), separators=(",", ":")).encode() + b"\n")
                    counts["json"] += 1
                    reply, rtype = b"{}", "application/json"
                else:
                    pb.write(struct.pack(">I", len(body)) + body)
                    counts["proto"] += 1
                    reply, rtype = b"", "application/x-protobuf"
            self.send_response(200)
            self.send_header("Content-Type", rtype)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("ready", flush=True)
    srv.serve_forever(poll_interval=0.05)
    jl.close()
    pb.close()
    with open(f"{out}/receiver.json", "w") as f:
        json.dump(counts, f)


def db(port: int, cfg_path: str) -> None:
    cfg = json.loads(Path(cfg_path).read_text())
    rng = random.Random(cfg["seed"])
    # slow windows decided up front: (start offset s, length s, extra delay ms)
    windows = []
    t = rng.expovariate(1 / cfg["slow_every_s"])
    while t < cfg["seconds"] + 10:
        windows.append((t, rng.uniform(*cfg["slow_len_s"]), rng.uniform(*cfg["slow_ms"])))
        t += windows[-1][1] + rng.expovariate(1 / cfg["slow_every_s"])
    log: list[list[object]] = []
    t0 = [0.0]
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            arrived = time.time_ns()
            el = time.time() - t0[0]
            extra = next((ms for s, ln, ms in windows if s <= el < s + ln), 0.0)
            delay = random.uniform(*cfg["normal_ms"]) + extra
            time.sleep(delay / 1000)
            tp = self.headers.get("traceparent", "--")
            parts = tp.split("-")
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass
            with lock:
                log.append(
                    [
                        parts[1] if len(parts) > 2 else "",
                        parts[2] if len(parts) > 2 else "",
                        arrived,
                        time.time_ns(),
                        bool(extra),
                    ]
                )

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    srv.request_queue_size = 128
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    t0[0] = time.time()
    print("ready", flush=True)
    srv.serve_forever(poll_interval=0.05)
    with open(cfg["log"], "w") as f:
        json.dump(
            {
                "t0_unix_nano": int(t0[0] * 1e9),
                "slow_windows": [
                    {"start_s": s, "len_s": ln, "extra_ms": ms} for s, ln, ms in windows
                ],
                "requests": log,
            },
            f,
        )


def loadgen(cfg_path: str) -> None:
    cfg = json.loads(Path(cfg_path).read_text())
    rng = random.Random(cfg["seed"])
    log: list[list[object]] = []
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def one(i: int) -> None:
        sent = time.time_ns()
        status = 0
        try:
            c = http.client.HTTPConnection("127.0.0.1", cfg["port"], timeout=cfg["timeout_s"])
            c.request("GET", cfg["path"], headers={"x-loadgen-id": str(i), "Host": "gateway"})
            r = c.getresponse()
            r.read()
            status = r.status
            c.close()
        except OSError:
            status = -1
        with lock:
            log.append([i, sent, time.time_ns(), status])

    pool = ThreadPoolExecutor(max_workers=cfg.get("workers", 64))
    end = time.monotonic() + cfg["seconds"]
    nxt = time.monotonic()
    i = 0
    while not stop.is_set():
        nxt += rng.expovariate(cfg["rate"])
        if nxt >= end:
            break
        d = nxt - time.monotonic()
        if d > 0:
            stop.wait(d)
        pool.submit(one, i)
        i += 1
    pool.shutdown(wait=True)
    with open(cfg["log"], "w") as f:
        json.dump({"requests": log}, f)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "receiver":
        receiver(int(sys.argv[2]), sys.argv[3])
    elif mode == "db":
        db(int(sys.argv[2]), sys.argv[3])
    else:
        loadgen(sys.argv[2])
