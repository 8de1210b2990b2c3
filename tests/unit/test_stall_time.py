"""Stall-aware decomposition on hand-built traces with known pauses.

One trace: ``front`` (SERVER, front-1) calls ``inv`` (CLIENT ``Reserve``), served by ``inv``
(SERVER, inv-1), which calls a database (CLIENT ``UPDATE``, no instrumented child). Times in ms
from T0; each case puts a stall window on one instance and checks, segment by segment, which
time is ``stall`` (and whose) and that the segments still partition the root. Only a paused
callee or a paused caller makes ``stall``; a slow database stays ``dependency``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from repo_paths import FIXTURES

from tailscope.analysis.critical_path import segments_frame
from tailscope.analysis.pipeline import AnalysisOptions, analyze
from tailscope.analysis.span_tree import build_span_tree
from tailscope.analysis.stall_time import StallWindows, split_stalled
from tailscope.ingest import read_spans
from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.report.model import Stall
from tailscope.schema import SpanKind

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
TRACE = b"\x01" * 16


def _span(
    sid: int,
    parent: int | None,
    name: str,
    kind: int,
    start: float,
    end: float,
    service: str,
    instance: str,
) -> SpanRow:
    return SpanRow(
        trace_id=TRACE,
        span_id=sid.to_bytes(8, "big"),
        parent_span_id=None if parent is None else parent.to_bytes(8, "big"),
        name=name,
        kind=kind,
        start_unix_nano=T0 + int(start * MS),
        end_unix_nano=T0 + int(end * MS),
        service_name=service,
        service_instance=instance,
    )


def _trace(
    server_start: float, server_end: float, client_end: float, db: tuple[float, float]
) -> list[SpanRow]:
    return [
        _span(1, None, "GET /buy", SpanKind.SERVER, 0, client_end + 1, "front", "front-1"),
        _span(2, 1, "Reserve", SpanKind.CLIENT, 1, client_end, "front", "front-1"),
        _span(3, 2, "Reserve", SpanKind.SERVER, server_start, server_end, "inv", "inv-1"),
        _span(4, 3, "UPDATE", SpanKind.CLIENT, db[0], db[1], "inv", "inv-1"),
    ]


def _stall(service: str, instance: str, start: float, end: float) -> Stall:
    return Stall(
        service,
        instance,
        None,
        T0 + int(start * MS),
        T0 + int(end * MS),
        end - start,
        1,
        1,
        1.0,
        "process",
    )


def _segments(rows: list[SpanRow], stalls: tuple[Stall, ...]) -> pl.DataFrame:
    table = table_from_rows(rows)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return segments_frame(frame, build_span_tree(table), stalls=stalls).with_columns(
        ms=(pl.col("seg_end") - pl.col("seg_start")) / MS
    )


def _time(seg: pl.DataFrame, component: str, service: str | None = None) -> float:
    picked = seg.filter(pl.col("component") == component)
    if service is not None:
        picked = picked.filter(pl.col("hop_service").cast(pl.String) == service)
    return float(picked["ms"].sum())


def test_paused_callee_queueing_is_the_callees_stall() -> None:
    # GIVEN inv-1 paused 5..105 ms: the request sent at 2 ms waits, its SERVER starts at 105
    rows = _trace(server_start=105, server_end=110, client_end=111, db=(106, 108))
    seg = _segments(rows, (_stall("inv", "inv-1", 5, 105),))
    # THEN the 100 ms inside the window is inv's stall, named after inv's span, with its id
    assert _time(seg, "stall", "inv") == pytest.approx(100, abs=1e-6)
    assert _time(seg, "stall", "front") == 0
    assert _time(seg, "network") == pytest.approx(104 - 100 + 1, abs=1e-6)  # 1..5 and 110..111
    stalled = seg.filter(pl.col("component") == "stall")
    assert stalled["hop_operation"].cast(pl.String).to_list() == ["Reserve"]
    assert stalled["stall"].to_list() == [0]
    # AND the segments still partition the root (112 ms)
    assert float(seg["ms"].sum()) == pytest.approx(112, abs=1e-6)


def test_paused_caller_is_the_callers_stall_not_the_callees() -> None:
    # GIVEN the callee answered at 10 ms but front-1 was paused 11..90 and read it at 90
    rows = _trace(server_start=2, server_end=10, client_end=90, db=(3, 8))
    seg = _segments(rows, (_stall("front", "front-1", 11, 90),))
    assert _time(seg, "stall", "front") == pytest.approx(79, abs=1e-6)
    assert _time(seg, "stall", "inv") == 0
    assert float(seg["ms"].sum()) == pytest.approx(91, abs=1e-6)


def test_slow_database_is_dependency_never_stall() -> None:
    # GIVEN a 200 ms database call and a (spurious) window on inv-1 during it
    rows = _trace(server_start=2, server_end=205, client_end=206, db=(3, 203))
    seg = _segments(rows, (_stall("inv", "inv-1", 50, 150),))
    assert _time(seg, "stall") == 0
    assert _time(seg, "dependency") == pytest.approx(200, abs=1e-6)
    # AND without any window the same
    assert _time(_segments(rows, ()), "dependency") == pytest.approx(200, abs=1e-6)


def test_stretched_self_time_is_the_own_instances_stall() -> None:
    # GIVEN inv-1 paused 20..70 while working (its SERVER span stretched)
    rows = _trace(server_start=2, server_end=90, client_end=91, db=(80, 85))
    seg = _segments(rows, (_stall("inv", "inv-1", 20, 70),))
    assert _time(seg, "stall", "inv") == pytest.approx(50, abs=1e-6)
    assert float(seg["ms"].sum()) == pytest.approx(92, abs=1e-6)


def test_overlapping_windows_count_once_lowest_index_wins() -> None:
    rows = _trace(server_start=105, server_end=110, client_end=111, db=(106, 108))
    stalls = (_stall("inv", "inv-1", 40, 105), _stall("inv", "inv-1", 5, 60))
    seg = _segments(rows, stalls)
    assert _time(seg, "stall", "inv") == pytest.approx(100, abs=1e-6)
    by_id = seg.filter(pl.col("component") == "stall").group_by("stall").agg(pl.col("ms").sum())
    assert dict(by_id.iter_rows()) == pytest.approx({0: 65.0, 1: 35.0}, abs=1e-6)


def test_split_against_brute_force_on_random_windows() -> None:
    """Every ns of each segment is stall iff it lies in a window of the instance (reference: a
    per-ms grid), and the pieces sum to the segments."""
    rng = np.random.default_rng(7)
    n = 200
    start = np.sort(rng.integers(0, 10_000, n)).astype(np.int64)
    end = start + rng.integers(1, 300, n)
    owner = np.arange(n, dtype=np.int64)
    component = rng.choice(np.array([0, 1, 2], dtype=np.int8), n)
    instance = rng.integers(-1, 3, n).astype(np.int64)
    neighbor = np.full(n, -1, dtype=np.int64)
    wa = rng.integers(0, 10_000, 12).astype(np.int64)
    windows = StallWindows(
        instance=rng.integers(0, 3, 12).astype(np.int64),
        start=wa,
        end=wa + rng.integers(1, 500, 12),
        stall=np.arange(12, dtype=np.int64),
    )
    out = split_stalled(owner, start, end, component, neighbor, instance, windows)
    assert int((out.end - out.start).sum()) == int((end - start).sum())
    for i in range(n):
        grid = np.arange(start[i], end[i])
        expected = 0
        if component[i] != 2 and instance[i] >= 0:
            mine = windows.instance == instance[i]
            inside = (
                (grid[:, None] >= windows.start[mine]) & (grid[:, None] < windows.end[mine])
            ).any(axis=1)
            expected = int(inside.sum())
        got = (out.owner == i) & (out.component == 3)
        assert int((out.end[got] - out.start[got]).sum()) == expected


def test_demo_top_component_is_the_paused_services_stall() -> None:
    """The README demo: the checkout entry point's tail is inventory's stall, conclusively."""
    report = analyze(
        read_spans([FIXTURES / "gc-cascade.jsonl.gz"]), AnalysisOptions(keep_frames=False)
    ).report
    root = report.roots[0]
    assert root.verdict is not None and root.verdict.status == "conclusive"
    top = root.verdict.top
    assert top is not None and (top.hop_service, top.component) == ("inventory", "stall")
    assert top.tail_share_ci[0] > 0.5
    network = [h for h in report.hops if h.component == "network"]
    assert max(h.tail_share for h in network) < 0.05
    stall_hop = next(h for h in report.hops if h.component == "stall")
    assert stall_hop.stall_ids and all(
        report.stalls[i].service == "inventory" for i in stall_hop.stall_ids
    )
    assert root.verdict.paused_services[0].service == "inventory"
    assert root.verdict.paused_services[0].language == "java"
    text = root.verdict.text
    assert text.startswith("p99 414 ms (2,000 requests, 20 above p99).")
    assert "inventory inventory.v1.InventoryService/Reserve (stall" in text
    assert "of the tail is waiting behind stop-the-world pauses in inventory (java" in text
