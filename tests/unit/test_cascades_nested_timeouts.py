"""Nested timeouts on a chain: which one a pause started, on hand-built traces.

A small discrete model, written for these cases alone, with the timers of the real-SDK
harness's CPython client (``http.client`` with a socket timeout): a call's timer runs from the
send, and a caller frozen when it falls due notices the timeout when it resumes, while an answer
that arrived before it fell due is read on resuming (docs/detection.md, "Real-SDK runs: what a
socket timeout measures"). ``front`` (host-a) calls ``mid`` (host-b) with a 150 ms timeout;
``mid`` works 20 ms, then queries an uninstrumented database (``db.system`` only) with an 80 ms
timeout and one retry. Time inside a paused ``mid`` stands still. Host clocks are offset by
15 ms. GIVEN/WHEN/THEN in each test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import polars as pl
from handbuilt import ms_span, span_frame

from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import detect_stalls
from tailscope.ingest.rows import SpanRow
from tailscope.schema import SpanKind

MID_TIMEOUT_MS = 150.0
DB_TIMEOUT_MS = 80.0
MID_WORK_MS = 20.0


@dataclass
class Chain:
    """``mid_pause`` freezes mid-1; the database takes 200 ms for queries sent inside
    ``db_slow`` and 2 ms otherwise (ms from start)."""

    mid_pause: tuple[float, float]
    db_slow: tuple[float, float]
    rows: list[SpanRow] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    arrived: dict[bytes, float] = field(default_factory=dict)

    def _id(self) -> bytes:
        return next(self.ids).to_bytes(8, "big")

    def _resume(self, t: float) -> float:
        a, b = self.mid_pause
        return b if a <= t < b else t

    def _after(self, t: float, work: float) -> float:
        """When ``work`` ms of mid's own work started at ``t`` is done (a pause stops it)."""
        t = self._resume(t)
        a, b = self.mid_pause
        return t + work + (b - a) if t < a < t + work else t + work

    def _query(self, trace: bytes, parent: bytes, sent: float, retry: bool) -> float:
        """One database attempt sent at ``sent``; returns when mid is done with it."""
        slow = self.db_slow[0] <= sent < self.db_slow[1]
        answer = sent + (200.0 if slow else 2.0)
        due = sent + DB_TIMEOUT_MS
        timed_out = answer > due
        noticed = self._resume(due if timed_out else answer)
        self.rows.append(
            ms_span(
                trace,
                self._id(),
                parent,
                "mid",
                "host-b",
                "SELECT",
                SpanKind.CLIENT,
                sent,
                noticed,
                timeout=timed_out,
                db=True,
            )
        )
        if timed_out and not retry:
            return self._query(trace, parent, self._resume(noticed + 0.2), True)
        return noticed

    def request(self, n: int, t: float) -> None:
        """One request arriving at front at ``t`` ms."""
        trace = (n + 1).to_bytes(16, "big")
        root, call, server = self._id(), self._id(), self._id()
        arrive = self._resume(t + 1.3)  # queued in front of a paused mid
        done = self._query(trace, server, self._after(arrive, MID_WORK_MS), False)
        mid_end = self._resume(done + 0.5)
        self.rows.append(
            ms_span(
                trace, server, call, "mid", "host-b", "GET /mid", SpanKind.SERVER, arrive, mid_end
            )
        )
        reply = mid_end + 0.3
        timed_out = reply > t + 1.0 + MID_TIMEOUT_MS  # front is never paused: on time
        end = t + 1.0 + MID_TIMEOUT_MS if timed_out else reply
        self.rows.append(
            ms_span(
                trace,
                call,
                root,
                "front",
                "host-a",
                "GET /mid",
                SpanKind.CLIENT,
                t + 1.0,
                end,
                timeout=timed_out,
            )
        )
        self.rows.append(
            ms_span(trace, root, None, "front", "host-a", "GET /", SpanKind.SERVER, t, end + 0.5)
        )
        self.arrived[trace] = arrive

    def spans(self, requests: int, every_ms: float) -> pl.DataFrame:
        for n in range(requests):
            self.request(n, 100.0 + n * every_ms)
        return span_frame(self.rows)


def _front_timeouts(spans: pl.DataFrame) -> pl.DataFrame:
    return spans.filter(
        (pl.col("service_name") == "front")
        & (pl.col("kind") == SpanKind.CLIENT)
        & (pl.col("error_type") == "timeout")
    )


def test_a_slow_query_sent_after_the_callers_timer_fell_due_does_not_take_its_timeout() -> None:
    # GIVEN mid freezing 200 ms while working on requests it has not yet queried the database
    # for, and the database turning slow just as mid resumes: front's timer for those requests
    # falls due inside the pause, and mid's queries for them, sent afterwards, time out too
    model = Chain(mid_pause=(1000.0, 1200.0), db_slow=(1200.0, 1500.0))
    spans = model.spans(400, 5.0)
    frozen_before_query = {
        tid for tid, arrive in model.arrived.items() if 1000.0 - MID_WORK_MS < arrive < 1000.0
    }
    assert len(frozen_before_query) >= 3
    timed_out = {t for t in _front_timeouts(spans)["trace_id"].to_list()}
    assert frozen_before_query <= timed_out
    # WHEN stalls and cascades are detected
    stalls = detect_stalls(spans)
    cascades, _ = find_cascades(spans, stalls)
    # THEN the pause is found on mid, and front's timeouts of the requests frozen before their
    # query are its cascade: the slow queries came after front had given up
    assert [st.instance for st in stalls] == ["mid-1"], stalls
    linked = {bytes.fromhex(t) for c in cascades for t in c.trace_ids}
    assert frozen_before_query <= linked, len(frozen_before_query - linked)


def test_a_slow_query_sent_before_the_callers_timer_fell_due_keeps_its_timeout() -> None:
    # GIVEN the same pause and slow database: requests that arrived after the pause, whose
    # queries (and retries) time out while front is still waiting
    model = Chain(mid_pause=(1000.0, 1200.0), db_slow=(1200.0, 1500.0))
    spans = model.spans(400, 5.0)
    after_pause = {tid for tid, arrive in model.arrived.items() if 1210.0 < arrive < 1380.0}
    timed_out = {t for t in _front_timeouts(spans)["trace_id"].to_list()}
    assert len(after_pause & timed_out) >= 5
    # WHEN stalls and cascades are detected
    cascades, unexplained = find_cascades(spans, detect_stalls(spans))
    # THEN none of their timeouts is in a cascade: front's are the slow database's, unexplained
    linked = {bytes.fromhex(t) for c in cascades for t in c.trace_ids}
    assert not linked & after_pause
    front = {
        bytes.fromhex(t) for u in unexplained if u.caller_service == "front" for t in u.trace_ids
    }
    assert after_pause & timed_out <= front
