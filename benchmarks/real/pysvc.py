"""One instrumented CPython HTTP service of the real-SDK harness (run by ``run.py``).

Runs in ``benchmarks/real/.venv`` (the official ``opentelemetry-sdk`` and
``opentelemetry-exporter-otlp-proto-http`` from PyPI). Manual SERVER/CLIENT spans with W3C
``traceparent`` propagation; client calls with a timeout and one retry; collector pauses recorded
with ``gc.callbacks`` (``time.time_ns()`` at start and stop) and written to a JSON file at exit.

    python pysvc.py CONFIG.json
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

CFG = json.loads(Path(sys.argv[1]).read_text())
RNG = random.Random(CFG["seed"])
PAUSES: list[tuple[int, int, int, str]] = []  # (start ns, end ns, generation, origin)
_gc_start = [0, 0]
_induced = threading.local()
_inducing = [False]


def _gc_callback(phase: str, info: dict) -> None:
    now = time.time_ns()
    if phase == "start":
        _gc_start[0] = now
        _gc_start[1] = info.get("generation", -1)
    else:
        PAUSES.append((_gc_start[0], now, _gc_start[1], "induced" if _inducing[0] else "natural"))


gc.callbacks.append(_gc_callback)

resource = Resource.create(
    {
        "service.name": CFG["service"],
        "service.instance.id": CFG["instance"],
        "host.name": socket.gethostname(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
        "process.pid": os.getpid(),
    }
)
provider = TracerProvider(resource=resource)
provider.add_span_processor(
    BatchSpanProcessor(
        OTLPSpanExporter(endpoint=CFG["endpoint"]),
        schedule_delay_millis=500,
        max_queue_size=65536,
        max_export_batch_size=512,
    )
)
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("tailscope-real-harness")

# live heap that every full collection traverses: its size sets the length of a gen-2 pause
HEAP = [[i, {"k": i}] for i in range(int(CFG.get("heap_objects", 0)))]


def busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    junk = []
    n = 0
    while time.perf_counter() < end:
        n += 1
        if n % 16 == 0:
            a: list = []
            b = [a]
            a.append(b)  # cyclic garbage: feeds the natural young collections
            junk.append(a)
            if len(junk) > 50:
                junk.clear()


def call(target: dict, attempt: int) -> tuple[bool, int]:
    """One CLIENT attempt; (ok, status)."""
    attrs = {
        "http.request.method": "GET",
        "server.address": target["service"],
        "server.port": target["port"],
        "url.full": f"http://{target['service']}:{target['port']}{target['path']}",
    }
    if target.get("db_system"):
        attrs["db.system"] = target["db_system"]
    if attempt:
        attrs["http.request.resend_count"] = attempt
    with tracer.start_as_current_span(
        f"GET {target['path']}" if not target.get("db_system") else f"SELECT {target['path'][1:]}",
        kind=SpanKind.CLIENT,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        headers: dict[str, str] = {"Host": f"{target['service']}:{target['port']}"}
        propagate.inject(headers)
        conn = http.client.HTTPConnection(
            "127.0.0.1", target["port"], timeout=target["timeout_ms"] / 1000
        )
        try:
            conn.request("GET", target["path"], headers=headers)
            resp = conn.getresponse()
            resp.read()
            span.set_attribute("http.response.status_code", resp.status)
            if resp.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(resp.status))
                return False, resp.status
            return True, resp.status
        except TimeoutError:
            span.set_status(Status(StatusCode.ERROR, "timeout"))
            span.set_attribute("error.type", "timeout")
            return False, 504
        except OSError as exc:
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute("error.type", type(exc).__name__)
            return False, 502
        finally:
            conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        ctx = propagate.extract(dict(self.headers.items()))
        path = self.path.split("?")[0]
        attrs = {
            "http.request.method": "GET",
            "http.route": path,
            "url.path": path,
            "server.port": CFG["port"],
        }
        lg = self.headers.get("x-loadgen-id")
        if lg:
            attrs["loadgen.request_id"] = int(lg)
        with tracer.start_as_current_span(
            f"GET {path}", context=ctx, kind=SpanKind.SERVER, attributes=attrs
        ) as span:
            lo, hi = CFG.get("work_ms", [1, 3])
            busy(random.uniform(lo, hi))
            status = 200
            for target in CFG.get("calls", []):
                if random.random() >= target.get("prob", 1.0):
                    continue
                ok, st = call(target, 0)
                if not ok and st == 504:
                    ok, st = call(target, 1)
                if not ok:
                    status = 502
                    break
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            body = b"ok" if status == 200 else b"upstream failed"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                span.set_attribute("error.type", "client_disconnected")


STOP = threading.Event()
FREEZES: list[tuple[int, int]] = []  # heartbeat gaps: (last tick ns, next tick ns)
HEARTBEAT_S = 0.002
FREEZE_NS = 10_000_000


def heartbeat() -> None:
    """Tick every 2 ms; a tick later than 10 ms means the process made no progress for that long
    (a collection, CPU starvation or a thread holding the GIL). run.py subtracts the
    collections."""
    last = time.time_ns()
    while not STOP.is_set():
        time.sleep(HEARTBEAT_S)
        now = time.time_ns()
        if now - last > FREEZE_NS + HEARTBEAT_S * 1e9:
            FREEZES.append((last, now))
        last = now


def induce() -> None:
    """Induced collections at random times: cyclic garbage, then gc.collect(); sometimes two
    back to back a few milliseconds apart."""
    g = CFG.get("gc", {})
    mean = g.get("mean_interval_s")
    if not mean:
        return
    while not STOP.wait(RNG.expovariate(1 / mean)):
        # extra live containers the collection must traverse (its length varies the pause) and
        # self-referencing garbage for it to free; built by comprehensions, so the GIL is
        # switched as usual and the build stays short
        n = RNG.randint(g.get("garbage_min", 10000), g.get("garbage_max", 200000))
        extra = [[i] for i in range(n)]
        garbage = [[] for _ in range(n // 4)]
        for x in garbage:
            x.append(x)
        del garbage
        _inducing[0] = True
        gc.collect(2 if RNG.random() < g.get("full_share", 0.7) else 1)
        del extra
        if RNG.random() < g.get("double_prob", 0.0):
            _inducing[0] = False
            time.sleep(RNG.uniform(0.002, 0.008))
            _inducing[0] = True
            gc.collect(2)
        _inducing[0] = False


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", CFG["port"]), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128

    def stop(*_: object) -> None:
        STOP.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=induce, daemon=True).start()
    threading.Thread(target=heartbeat, daemon=True).start()
    print("ready", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        provider.shutdown()
        with open(CFG["gc_log"], "w") as f:
            json.dump(
                {
                    "instance": CFG["instance"],
                    "runtime": "cpython",
                    "pauses": [
                        {"start_unix_nano": s, "end_unix_nano": e, "generation": gen, "origin": o}
                        for s, e, gen, o in PAUSES
                    ],
                    "freezes": [{"start_unix_nano": a, "end_unix_nano": b} for a, b in FREEZES],
                },
                f,
            )


if __name__ == "__main__":
    main()
