"""Stall, cascade and runtime analysis on hand-built traces with known pauses.

A tiny discrete model builds the traces: an edge (Rust, host-a) calls ``cart`` (JVM, two
instances on host-b and host-c) with a 50 ms timeout and one retry; cart does some work, calls
``stock`` (Go, host-b) and works again. Time inside a paused process stands still: anything it
would do during the pause happens when the pause ends. Host clocks are offset by up to 18 ms.
The truth (which traces timed out because of the pause, which because ``stock`` was slow) is
known by construction.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from tailscope.analysis._stall_common import narrow
from tailscope.analysis.cascades import _p99_impacts_ms, find_cascades, p99_ns
from tailscope.analysis.runtimes import compare_runtimes, server_self_time
from tailscope.analysis.stalls import detect_stalls
from tailscope.histogram import LatencyHistogram, relative_resolution
from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.schema import SpanKind, StatusCode

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
OFFSETS = {"host-a": 0, "host-b": 18 * MS, "host-c": -11 * MS}
RUNTIMES = {"edge": "rust", "cart": "java", "stock": "go"}
TIMEOUT_MS = 50.0


@dataclass
class World:
    """Hand-built traces plus what really happened."""

    rows: list[SpanRow] = field(default_factory=list)
    pause_caused: set[str] = field(default_factory=set)
    slow_caused: set[str] = field(default_factory=set)
    timed_out_spans: int = 0


def _advance(t: float, d: float, pause: tuple[float, float] | None) -> float:
    """Process time: ``d`` ms of work starting at ``t`` (ms), frozen during ``pause``."""
    if pause is None:
        return t + d
    ps, pe = pause
    if ps <= t < pe:
        return pe + d
    if t < ps < t + d:
        return t + d + (pe - ps)
    return t + d


def _resume(t: float, pause: tuple[float, float] | None) -> float:
    """When a process that is told something at ``t`` (ms) can notice it."""
    if pause is not None and pause[0] <= t < pause[1]:
        return pause[1]
    return t


def build(
    seed: int,
    requests: int = 600,
    pause: tuple[float, float] | None = (1500.0, 1700.0),
    slow_stock: float = 0.0,
    host_pause: bool = False,
) -> World:
    """``requests`` Poisson arrivals at 200/s; ``pause`` (ms from start) freezes cart-1 (and
    stock-1, the other process on host-b, with ``host_pause``); with probability ``slow_stock``
    a stock call takes 120 ms (a slow dependency)."""
    rng = random.Random(seed)
    world = World()
    t = 0.0
    ids = iter(range(1, 10**9))

    def sid() -> bytes:
        return next(ids).to_bytes(8, "big")

    def span(
        trace: bytes,
        span_id: bytes,
        parent: bytes | None,
        service: str,
        inst: str,
        host: str,
        name: str,
        kind: int,
        start: float,
        end: float,
        timeout: bool = False,
    ) -> None:
        off = OFFSETS[host]
        world.rows.append(
            SpanRow(
                trace_id=trace,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=kind,
                start_unix_nano=T0 + int(start * MS) + off,
                end_unix_nano=T0 + int(end * MS) + off,
                service_name=service,
                service_instance=inst,
                host_name=host,
                sdk_language=RUNTIMES[service],
                status_code=StatusCode.ERROR if timeout else StatusCode.UNSET,
                error_type="timeout" if timeout else None,
            )
        )

    for n in range(requests):
        t += rng.expovariate(0.2)  # 200 requests/s
        trace = rng.getrandbits(128).to_bytes(16, "big")
        root = sid()
        inst, host = ("cart-1", "host-b") if n % 2 == 0 else ("cart-2", "host-c")
        cart_pause = pause if inst == "cart-1" else None
        attempt_start = t + 0.3
        causes: set[str] = set()
        for _attempt in range(2):
            client = sid()
            arrive = attempt_start + rng.uniform(0.3, 0.8)
            s_start = _resume(arrive, cart_pause)
            w1 = _advance(s_start, rng.uniform(0.5, 2.0), cart_pause)
            slow = rng.random() < slow_stock
            stock_dur = 120.0 if slow else rng.uniform(1.0, 3.0)
            call = sid()
            stock_pause = pause if host_pause else None  # stock-1 shares host-b with cart-1
            stock_arrive = _resume(w1 + rng.uniform(0.2, 0.5), stock_pause)
            stock_end = _advance(stock_arrive, stock_dur, stock_pause)
            call_end = _resume(stock_end + rng.uniform(0.2, 0.5), cart_pause)
            s_end = _advance(call_end, rng.uniform(0.5, 2.0), cart_pause)
            reply = s_end + rng.uniform(0.3, 0.8)
            server = sid()
            span(
                trace,
                server,
                client,
                "cart",
                inst,
                host,
                "GET /cart",
                SpanKind.SERVER,
                s_start,
                s_end,
            )
            span(
                trace, call, server, "cart", inst, host, "GET /stock", SpanKind.CLIENT, w1, call_end
            )
            span(
                trace,
                sid(),
                call,
                "stock",
                "stock-1",
                "host-b",
                "GET /stock",
                SpanKind.SERVER,
                stock_arrive,
                stock_end,
            )
            if reply - attempt_start > TIMEOUT_MS:
                end = attempt_start + TIMEOUT_MS
                span(
                    trace,
                    client,
                    root,
                    "edge",
                    "edge-1",
                    "host-a",
                    "GET /cart",
                    SpanKind.CLIENT,
                    attempt_start,
                    end,
                    timeout=True,
                )
                world.timed_out_spans += 1
                paused = (
                    cart_pause is not None and arrive < cart_pause[1] and (s_end > cart_pause[0])
                )
                causes.add("pause" if paused and not slow else "slow")
                attempt_start = end + 5.0
                continue
            span(
                trace,
                client,
                root,
                "edge",
                "edge-1",
                "host-a",
                "GET /cart",
                SpanKind.CLIENT,
                attempt_start,
                reply,
            )
            attempt_start = reply
            break
        span(
            trace,
            root,
            None,
            "edge",
            "edge-1",
            "host-a",
            "GET /checkout",
            SpanKind.SERVER,
            t,
            attempt_start + 0.3,
        )
        if causes == {"pause"}:
            world.pause_caused.add(trace.hex())
        elif causes:
            world.slow_caused.add(trace.hex())
    return world


def frame(world: World) -> pl.DataFrame:
    df = pl.from_arrow(table_from_rows(world.rows))
    assert isinstance(df, pl.DataFrame)
    return df


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_pause_is_found_on_the_right_instance_despite_skew(seed: int) -> None:
    stalls = detect_stalls(frame(build(seed)))
    assert len(stalls) == 1, stalls
    stall = stalls[0]
    assert (stall.service, stall.instance, stall.host, stall.kind) == (
        "cart",
        "cart-1",
        "host-b",
        "process",
    )
    # the window is in host-b's clock; it must overlap the true pause (1500..1700 ms)
    start_ms = (stall.start_unix_nano - T0 - OFFSETS["host-b"]) / MS
    end_ms = (stall.end_unix_nano - T0 - OFFSETS["host-b"]) / MS
    assert start_ms < 1700 and end_ms > 1500
    assert 150 <= stall.duration_ms <= 230
    assert stall.queued_requests >= 5
    assert stall.spans_affected >= 1
    assert 0.5 <= stall.confidence <= 1.0


def test_every_process_of_a_host_frozen_is_a_host_stall() -> None:
    stalls = detect_stalls(frame(build(7, host_pause=True)))
    by_instance = {st.instance: st for st in stalls}
    assert set(by_instance) == {"cart-1", "stock-1"}
    assert {st.kind for st in stalls} == {"host"}
    # cart-2 on host-c kept working: not a telemetry gap, and the sibling was not silent
    assert all("sibling instances silent too" not in st.evidence for st in stalls)


def test_no_pause_no_stall() -> None:
    assert detect_stalls(frame(build(4, pause=None))) == ()


def test_cascade_traces_match_the_pause_caused_timeouts() -> None:
    world = build(5, slow_stock=0.02)
    spans = frame(world)
    stalls = detect_stalls(spans)
    cascades, unexplained = find_cascades(spans, stalls)
    assert len(cascades) == 1
    found = set(cascades[0].trace_ids)
    assert world.pause_caused, "the model must produce pause-caused timeouts"
    assert found == world.pause_caused
    cascade = cascades[0]
    assert cascade.root_operations == ("edge GET /checkout",)
    # every affected logical call made exactly two attempts (the model's one retry)
    assert cascade.retries == len(found)
    assert cascade.amplification == pytest.approx(2.0)
    assert cascade.p99_impact_ms > 0
    # the slow-stock timeouts are reported apart, with stock as the hop
    assert world.slow_caused
    leftovers = {t for u in unexplained for t in u.trace_ids}
    assert leftovers == world.slow_caused
    assert unexplained[0].likely_hop == "dependency stock"
    assert unexplained[0].inferred_timeout_ms == pytest.approx(TIMEOUT_MS, abs=1.0)


def test_self_time_subtracts_the_union_of_children() -> None:
    # parent 0..100 ms; children 10..40 and 30..60 overlap (union 50 ms) and 90..120 is clipped
    trace = b"\x01" * 16
    rows = [
        SpanRow(
            trace,
            b"\x00" * 7 + b"\x01",
            None,
            "p",
            SpanKind.SERVER,
            T0,
            T0 + 100 * MS,
            "svc",
            "svc-1",
            host_name="h",
            sdk_language="go",
        ),
    ]
    for i, (a, b) in enumerate([(10, 40), (30, 60), (90, 120)]):
        rows.append(
            SpanRow(
                trace,
                bytes([0] * 7 + [i + 2]),
                b"\x00" * 7 + b"\x01",
                "c",
                SpanKind.CLIENT,
                T0 + a * MS,
                T0 + b * MS,
                "svc",
                "svc-1",
                host_name="h",
                sdk_language="go",
            )
        )
    df = pl.from_arrow(table_from_rows(rows))
    assert isinstance(df, pl.DataFrame)
    selfs = server_self_time(narrow(df))
    assert selfs["self_ns"].to_list() == [(100 - 50 - 10) * MS]


def test_runtimes_report_self_time_percentiles_and_stall_rates() -> None:
    spans = frame(build(6))
    stalls = detect_stalls(spans)
    runtimes = {r.language: r for r in compare_runtimes(spans, stalls)}
    assert set(runtimes) == {"rust", "java", "go"}
    java = runtimes["java"]
    assert java.stalls == 1 and java.instances == 2 and java.services == 1
    assert java.stall_ms_per_minute_per_instance > 0
    assert runtimes["rust"].stalls == 0
    # reference: numpy percentile of java self times (HdrHistogram within 0.1 %, plus rank slack)
    selfs = server_self_time(narrow(spans)).filter(
        pl.col("instance").cast(pl.String).str.starts_with("cart")
    )
    ref = np.percentile(selfs["self_ns"].to_numpy() / MS, 50)
    assert java.p50_ms == pytest.approx(ref, rel=0.02)
    ref99 = np.percentile(selfs["self_ns"].to_numpy() / MS, 99)
    assert java.p99_ms == pytest.approx(ref99, rel=0.05)
    assert java.tail_ratio == pytest.approx(java.p99_ms / java.p50_ms, rel=1e-3)
    # stall rate: stalled ms / observed minutes of the java spans / 2 instances
    cart = spans.filter(pl.col("service_name").cast(pl.String) == "cart")
    ends = cart["end_unix_nano"].to_numpy()
    starts = cart["start_unix_nano"].to_numpy()
    minutes = float(ends.max() - starts.min()) / 60e9
    expected = stalls[0].duration_ms / minutes / 2
    assert java.stall_ms_per_minute_per_instance == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"error_type": "timeout"}, True),
        ({"error_type": "DEADLINE_EXCEEDED"}, True),
        ({"error_type": "504"}, True),
        ({"rpc_grpc_status_code": 4}, True),
        ({"rpc_response_status_code": "DEADLINE_EXCEEDED"}, True),
        ({"http_status_code": 504}, True),
        ({"http_status_code": 408}, True),
        ({"status_message": "context deadline exceeded"}, True),
        (
            {
                "events": [
                    (T0, "exception", [("exception.type", "java.net.SocketTimeoutException", 1)])
                ]
            },
            True,
        ),
        ({"events": [(T0, "exception", [("exception.message", "connection refused", 1)])]}, False),
        ({"http_status_code": 500, "error_type": "500"}, False),
        ({"rpc_grpc_status_code": 14}, False),
    ],
)
def test_timeout_signals(fields: dict[str, object], expected: bool) -> None:
    row = SpanRow(
        b"\x02" * 16,
        b"\x00" * 7 + b"\x01",
        None,
        "call",
        SpanKind.CLIENT,
        T0,
        T0 + MS,
        "svc",
        "svc-1",
        status_code=StatusCode.ERROR,
    )
    for key, value in fields.items():
        setattr(row, key, value)
    df = pl.from_arrow(table_from_rows([row]))
    assert isinstance(df, pl.DataFrame)
    assert narrow(df)["timeout"].to_list() == [expected]
    # without status ERROR it is never a timeout
    row.status_code = StatusCode.OK
    df = pl.from_arrow(table_from_rows([row]))
    assert isinstance(df, pl.DataFrame)
    assert narrow(df)["timeout"].to_list() == [False]


def test_empty_table_gives_empty_sections() -> None:
    df = pl.from_arrow(table_from_rows([]))
    assert isinstance(df, pl.DataFrame)
    assert detect_stalls(df) == ()
    assert find_cascades(df, ()) == ((), ())
    assert compare_runtimes(df, ()) == ()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cheap_p99_equals_the_histogram_p99(seed: int) -> None:
    rng = np.random.default_rng(seed)
    durations = (rng.lognormal(mean=16.0, sigma=1.2, size=5000)).astype(np.int64)
    full = LatencyHistogram.from_durations_ns(durations).quantile_ns(0.99)
    assert p99_ns(durations) == full
    # and within the histogram's resolution of numpy's nearest-rank percentile
    ref = float(np.percentile(durations, 99, method="nearest"))
    assert p99_ns(durations) == pytest.approx(ref, rel=relative_resolution() + 1e-3)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_p99_impact_by_rank_arithmetic_equals_the_histogram_without_the_traces(
    seed: int,
) -> None:
    # GIVEN root durations of three operations (ties included) and cascades of random traces
    rng = np.random.default_rng(seed)
    n = 3000
    roots = pl.DataFrame(
        {
            "tid": [i.to_bytes(16, "big") for i in range(n)],
            "op": rng.choice(["edge GET", "edge POST", "cart GET"], size=n).tolist(),
            "dur": (rng.lognormal(mean=16.0, sigma=1.0, size=n) // 1000 * 1000).astype(np.int64),
        }
    )
    picks = [rng.choice(n, size=int(rng.integers(1, 400)), replace=False) for _ in range(6)]
    affected = pl.DataFrame(
        {
            "stall": np.repeat(np.arange(len(picks)), [p.size for p in picks]),
            "tid": [i.to_bytes(16, "big") for p in picks for i in p.tolist()],
        }
    ).join(roots.select("tid", "op"), on="tid")
    # WHEN impacts are computed for all cascades at once
    impacts = _p99_impacts_ms(roots, affected)
    # THEN each equals the largest difference of full-histogram p99s with and without the traces
    for stall, chosen in enumerate(picks):
        gone = {i.to_bytes(16, "big") for i in chosen.tolist()}
        worst = 0.0
        for op in sorted(set(affected.filter(pl.col("stall") == stall)["op"].to_list())):
            of_op = roots.filter(pl.col("op") == op)
            rest = of_op.filter(~pl.col("tid").is_in(list(gone)))["dur"].to_numpy()
            with_all = LatencyHistogram.from_durations_ns(of_op["dur"].to_numpy()).quantile_ns(0.99)
            without = LatencyHistogram.from_durations_ns(rest).quantile_ns(0.99) if rest.size else 0
            worst = max(worst, (with_all - without) / MS)
        assert impacts[stall] == round(worst, 3)


def test_peer_silence_matches_a_per_instance_reference() -> None:
    """The vectorised peer check against a plain loop over each instance's timestamps."""
    from tailscope.analysis.stalls import PEER_SILENT_SHARE, _silent_peers

    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        times = np.sort(rng.integers(0, 1_000, n)).astype(np.int64)
        codes = rng.integers(0, 6, n).astype(np.int64)
        peers = np.sort(rng.choice(8, size=int(rng.integers(1, 8)), replace=False)).astype(np.int64)
        a, b = sorted(int(x) for x in rng.integers(0, 1_000, 2))
        margin = int(rng.choice([0, 30]))
        got = _silent_peers(times, codes, peers, a, b, margin)
        lo_t, hi_t = a + margin, b - margin
        for peer, silent in zip(peers.tolist(), got.tolist(), strict=True):
            if hi_t - lo_t <= 0:
                assert silent is False
                continue
            inside = [
                int(t) for t, c in zip(times, codes, strict=True) if c == peer and lo_t < t < hi_t
            ]
            edges = [lo_t, *inside, hi_t]
            longest = max(y - x for x, y in itertools.pairwise(edges))
            assert silent == (longest >= PEER_SILENT_SHARE * (hi_t - lo_t))
