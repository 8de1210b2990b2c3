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
from handbuilt import MS, OFFSETS, T0, ms_span, span_frame

from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import detect_stalls
from tailscope.ingest.rows import SpanRow
from tailscope.report.model import Stall
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


def _mid_stall(start_ms: float, end_ms: float) -> Stall:
    """A stall of mid-1 from ``start_ms`` to ``end_ms`` on host-b's clock."""
    return Stall(
        service="mid",
        instance="mid-1",
        host="host-b",
        start_unix_nano=T0 + int(start_ms * MS) + OFFSETS["host-b"],
        end_unix_nano=T0 + int(end_ms * MS) + OFFSETS["host-b"],
        duration_ms=end_ms - start_ms,
        spans_affected=5,
        queued_requests=5,
        confidence=0.9,
        kind="process",
    )


def _abandoned_call(n: int, start_ms: float) -> list[SpanRow]:
    """front's call to mid that timed out after 150 ms while mid never started the request
    (no SERVER span, as the harness's CPython services leave for requests abandoned while
    they were frozen), aimed at mid by ``server.address``, and its root span."""
    trace, root = (n + 1).to_bytes(16, "big"), (2 * n + 1).to_bytes(8, "big")
    call = (2 * n + 2).to_bytes(8, "big")
    end = start_ms + MID_TIMEOUT_MS
    row = ms_span(
        trace,
        call,
        root,
        "front",
        "host-a",
        "GET /mid",
        SpanKind.CLIENT,
        start_ms,
        end,
        timeout=True,
    )
    row.server_address = "mid"
    return [
        row,
        ms_span(
            trace, root, None, "front", "host-a", "GET /", SpanKind.SERVER, start_ms - 1, end + 1
        ),
    ]


def _answered_call(n: int, start_ms: float) -> list[SpanRow]:
    """front's call to mid answered in 3 ms: mid's SERVER span, the call and its root span."""
    trace, root = (n + 1).to_bytes(16, "big"), (2 * n + 1).to_bytes(8, "big")
    call, server = (2 * n + 2).to_bytes(8, "big"), (100 + n).to_bytes(8, "big")
    row = ms_span(
        trace, call, root, "front", "host-a", "GET /mid", SpanKind.CLIENT, start_ms, start_ms + 4
    )
    row.server_address = "mid"
    return [
        row,
        ms_span(
            trace,
            root,
            None,
            "front",
            "host-a",
            "GET /",
            SpanKind.SERVER,
            start_ms - 1,
            start_ms + 5,
        ),
        ms_span(
            trace,
            server,
            call,
            "mid",
            "host-b",
            "GET /mid",
            SpanKind.SERVER,
            start_ms + 0.5,
            start_ms + 3.5,
        ),
    ]


def test_a_timeout_another_pause_explains_is_no_sign_of_a_slow_dependency() -> None:
    # GIVEN mid stalled twice, 100 ms apart, and front's calls to mid abandoned in each: the
    # call met by the second stall started within one budget of one met only by the first;
    # and, for control, a call that timed out with no stall near it, within one budget of a
    # call met by a third stall (a dependency timing out anyway)
    stalls = (_mid_stall(1000, 1200), _mid_stall(1300, 1500), _mid_stall(2200, 2400))
    rows = [
        *_abandoned_call(0, 1115.0),  # met the first stall only
        *_abandoned_call(1, 1260.0),  # met the second stall only
        *_abandoned_call(2, 2000.0),  # met no stall
        *_abandoned_call(3, 2140.0),  # met the third stall
        *_answered_call(4, 500.0),
        *_answered_call(5, 3000.0),
    ]
    # WHEN cascades are found for these stalls
    cascades, unexplained = find_cascades(span_frame(rows), stalls)
    # THEN each of the first two calls belongs to the stall that met it: neither is taken as
    # a sign that mid was timing out anyway
    by_stall = {c.stall: set(c.trace_ids) for c in cascades}
    assert by_stall.get(0) == {(1).to_bytes(16, "big").hex()}, by_stall
    assert by_stall.get(1) == {(2).to_bytes(16, "big").hex()}, by_stall
    # AND the call next to one no stall met stays unexplained, like that one
    assert 2 not in by_stall
    assert sum(u.timed_out_spans for u in unexplained) == 2


def test_the_silences_an_abandoned_call_waited_through_add_up() -> None:
    # GIVEN mid frozen twice for 40 ms while front's call to it waited out its 150 ms budget
    # (abandoned: mid never started the request), and, for control, another call that waited
    # through one such silence only
    stalls = (_mid_stall(1010, 1050), _mid_stall(1090, 1130), _mid_stall(2010, 2050))
    rows = [
        *_abandoned_call(0, 1000.0),  # waited through the first two stalls
        *_abandoned_call(1, 2000.0),  # waited through the third only
        *_answered_call(2, 500.0),
        *_answered_call(3, 3000.0),
    ]
    # WHEN cascades are found for these stalls
    cascades, unexplained = find_cascades(span_frame(rows), stalls)
    # THEN the call held up by both silences (80 ms of its 150 ms) is a cascade of the first
    # stall, though neither silence alone reached half its budget
    by_stall = {c.stall: set(c.trace_ids) for c in cascades}
    assert by_stall == {0: {(1).to_bytes(16, "big").hex()}}, by_stall
    # AND the call held up by one 40 ms silence stays unexplained
    assert [u.trace_ids for u in unexplained] == [((2).to_bytes(16, "big").hex(),)]
