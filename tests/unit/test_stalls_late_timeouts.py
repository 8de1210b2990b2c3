"""Timeouts noticed late, and paused callers told from idle ones, on hand-built traces.

A small discrete model, written for these cases alone: ``front`` (host-a) receives requests at
fixed times and calls ``mid`` (host-b) with a 400 ms timeout; ``mid`` calls an uninstrumented
database (``db.system`` only, no SERVER span) with a 50 ms timeout, which it enforces with a
timer: a call times out at 50 ms, or — when ``mid`` is paused as the timer falls due — when
``mid`` resumes. Time inside a paused process stands still (anything it would do then happens
when the pause ends). Host clocks are offset by 15 ms. GIVEN/WHEN/THEN in each test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import polars as pl
from handbuilt import MS, OFFSETS, T0, ms_span, span_frame

from tailscope.analysis._stall_common import client_calls, narrow
from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import LATE_NS, detect_stalls
from tailscope.ingest.rows import SpanRow
from tailscope.schema import SpanKind

DB_TIMEOUT_MS = 50.0
MID_TIMEOUT_MS = 400.0


@dataclass
class Model:
    """``mid_pause`` freezes mid-1 (ms from start); ``db_slow`` is a window in
    which the database takes 200 ms (ms from start)."""

    mid_pause: tuple[float, float] | None = None
    db_slow: tuple[float, float] | None = None
    rows: list[SpanRow] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _id(self) -> bytes:
        return next(self.ids).to_bytes(8, "big")

    def _resume(self, t: float) -> float:
        p = self.mid_pause
        return p[1] if p is not None and p[0] <= t < p[1] else t

    def _span(
        self,
        trace: bytes,
        span_id: bytes,
        parent: bytes | None,
        service: str,
        host: str,
        name: str,
        kind: int,
        start: float,
        end: float,
        *,
        timeout: bool = False,
        db: bool = False,
    ) -> None:
        self.rows.append(
            ms_span(
                trace,
                span_id,
                parent,
                service,
                host,
                name,
                kind,
                start,
                end,
                timeout=timeout,
                db=db,
            )
        )

    def request(self, n: int, t: float) -> None:
        """One request arriving at front at ``t`` ms."""
        trace = (n + 1).to_bytes(16, "big")
        root, call, server, query = self._id(), self._id(), self._id(), self._id()
        arrive = self._resume(t + 1.3)  # queued in front of a paused mid
        sent = self._resume(arrive + 0.5)
        slow = self.db_slow is not None and self.db_slow[0] <= sent < self.db_slow[1]
        answer = sent + (200.0 if slow else 2.0)
        due = sent + DB_TIMEOUT_MS
        timed_out = answer > due
        noticed = self._resume(due) if timed_out else self._resume(answer)
        mid_end = self._resume(noticed + 0.5)
        self._span(
            trace, server, call, "mid", "host-b", "GET /mid", SpanKind.SERVER, arrive, mid_end
        )
        self._span(
            trace,
            query,
            server,
            "mid",
            "host-b",
            "SELECT",
            SpanKind.CLIENT,
            sent,
            noticed,
            timeout=timed_out,
            db=True,
        )
        reply = mid_end + 0.3
        self._span(
            trace, call, root, "front", "host-a", "GET /mid", SpanKind.CLIENT, t + 1.0, reply
        )
        self._span(trace, root, None, "front", "host-a", "GET /", SpanKind.SERVER, t, reply + 0.5)

    def spans(self, requests: int, every_ms: float) -> pl.DataFrame:
        for n in range(requests):
            self.request(n, 100.0 + n * every_ms)
        return span_frame(self.rows)


def test_the_timeout_budget_is_the_shortest_timed_out_duration_of_the_edge() -> None:
    # GIVEN a slow database window in which every query times out, and no pause
    spans = Model(db_slow=(1000.0, 1400.0)).spans(200, 10.0)
    # WHEN the calls are paired with their children
    calls = client_calls(narrow(spans))
    # THEN the database edge's budget is its timeout, and no other edge has one
    db = calls.filter(pl.col("name") == "SELECT")
    assert db["budget"].drop_nulls().unique().to_list() == [int(DB_TIMEOUT_MS * MS)]
    assert calls.filter(pl.col("name") == "GET /mid")["budget"].null_count() == 200


def test_timeouts_noticed_late_point_at_the_callers_pause_and_are_no_cascade() -> None:
    # GIVEN mid pausing 120 ms inside a slow database window: queries whose timer fell due in
    # the pause time out only when mid resumes
    model = Model(mid_pause=(1200.0, 1320.0), db_slow=(1000.0, 1400.0))
    spans = model.spans(200, 10.0)
    late = (
        client_calls(narrow(spans))
        .filter(pl.col("timeout") & (pl.col("dur") >= pl.col("budget") + LATE_NS))
        .height
    )
    assert late >= 2
    # WHEN stalls and cascades are detected
    stalls = detect_stalls(spans)
    cascades, unexplained = find_cascades(spans, stalls)
    # THEN the pause is found on mid, with the late timeouts among its evidence, and front (an
    # idle caller waiting on mid) is not reported
    assert [st.instance for st in stalls] == ["mid-1"], stalls
    (stall,) = stalls
    pause_ns = (T0 + 1200 * MS + OFFSETS["host-b"], T0 + 1320 * MS + OFFSETS["host-b"])
    assert stall.start_unix_nano <= pause_ns[1] and stall.end_unix_nano >= pause_ns[0]
    assert any("timeouts noticed late" in reason for reason in stall.evidence), stall.evidence
    # AND the database timeouts are the slow database's (a resumed mid found no answer
    # waiting): none is counted in a cascade, all are unexplained
    linked = {t for c in cascades for t in c.trace_ids}
    db_timeouts = spans.filter(pl.col("error_type") == "timeout")
    assert db_timeouts.height >= 10
    assert not linked & {t.hex() for t in db_timeouts["trace_id"].to_list()}
    assert sum(u.timed_out_spans for u in unexplained) == db_timeouts.height


def test_an_idle_caller_does_not_hide_its_callees_pause() -> None:
    # GIVEN mid pausing 150 ms with no slow database: front's requests queue in front of mid,
    # and front, waiting on them, takes no timestamps of its own for long stretches
    spans = Model(mid_pause=(1000.0, 1150.0)).spans(120, 30.0)
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the pause is found on mid, with queued requests, and none on front
    assert [st.instance for st in stalls] == ["mid-1"], stalls
    assert stalls[0].queued_requests >= 3
