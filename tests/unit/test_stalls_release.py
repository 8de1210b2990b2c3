"""An idle callee and a congested caller told from a paused callee, on hand-built traces.

A small discrete model, written for these cases alone: ``front`` (host-a) serves a local
request every 5 ms (so it is never silent) and, every 20 ms, one that calls ``back`` (host-b),
which answers in 2 ms. The network takes 0.5 ms each way. Host clocks are offset by 15 ms.
Two ways for ``back`` to fall silent and then start two requests whose callers waited ~10 ms
longer than usual:

* **caller congestion**: ``back`` is idle (no call for 25 ms), then ``front`` starts two CLIENT
  spans 1 ms apart but sends both 11 ms late (its threads wait for the interpreter lock; it
  keeps serving its local requests meanwhile). ``back`` serves them the moment they arrive;
* **a pause of back**: requests that arrive while ``back`` is frozen wait until it resumes.

GIVEN/WHEN/THEN in each test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import polars as pl
from handbuilt import MS, ms_span, span_frame

from tailscope.analysis.stalls import QUEUE_WITNESS_NS, detect_stalls
from tailscope.ingest.rows import SpanRow
from tailscope.schema import SpanKind

NETWORK_MS = 0.5
CONGESTION_MS = 11.0


@dataclass
class Model:
    """``back_pause`` freezes back-1 (ms from start)."""

    back_pause: tuple[float, float] | None = None
    rows: list[SpanRow] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _id(self) -> bytes:
        return next(self.ids).to_bytes(8, "big")

    def _trace(self) -> bytes:
        return next(self.ids).to_bytes(16, "big")

    def _span(
        self,
        trace: bytes,
        span_id: bytes,
        parent: bytes | None,
        service: str,
        host: str,
        kind: int,
        start: float,
        end: float,
    ) -> None:
        self.rows.append(
            ms_span(trace, span_id, parent, service, host, f"GET /{service}", kind, start, end)
        )

    def local(self, t: float) -> None:
        """A request front serves alone, at ``t`` ms."""
        self._span(self._trace(), self._id(), None, "front", "host-a", SpanKind.SERVER, t, t + 1)

    def call(self, t: float, delay: float = 0.0) -> None:
        """A request arriving at front at ``t`` ms whose call to back leaves ``delay`` ms after
        its CLIENT span started."""
        trace, root, client, server = self._trace(), self._id(), self._id(), self._id()
        arrive = t + 1.0 + delay + NETWORK_MS
        p = self.back_pause
        begin = p[1] if p is not None and p[0] <= arrive < p[1] else arrive
        finish = begin + 2.0
        reply = finish + NETWORK_MS
        self._span(trace, server, client, "back", "host-b", SpanKind.SERVER, begin, finish)
        self._span(trace, client, root, "front", "host-a", SpanKind.CLIENT, t + 1.0, reply)
        self._span(trace, root, None, "front", "host-a", SpanKind.SERVER, t, reply + 0.5)

    def spans(
        self,
        *,
        congested_at: float | None = None,
        idle: tuple[float, float] | None = None,
        calls: tuple[tuple[float, float], ...] = (),
    ) -> pl.DataFrame:
        """Two seconds of traffic; ``congested_at``: the two congested calls (ms), after 25 ms
        without any call; ``idle``: no regular call then (ms); ``calls``: extra calls, each
        (arrival at front, delay before the call leaves) in ms."""
        for n in range(400):
            self.local(100.0 + n * 5.0 + 2.5)
        for n in range(100):
            t = 100.0 + n * 20.0
            if congested_at is not None and congested_at - 20.0 < t <= congested_at + 20.0:
                continue
            if idle is not None and idle[0] < t <= idle[1]:
                continue
            self.call(t)
        for t, delay in calls:
            self.call(t, delay)
        if congested_at is not None:
            self.call(congested_at, CONGESTION_MS)
            self.call(congested_at + 1.0, CONGESTION_MS - 1.0)
        return span_frame(self.rows)


def test_an_idle_callee_behind_a_congested_caller_is_no_stall() -> None:
    # GIVEN back idle for ~35 ms, then two calls front sent ~10 ms late (front busy meanwhile)
    spans = Model().spans(congested_at=1205.0)
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN none is reported: the longest extra wait (11 ms) is below what a queue behind a
    # pause long enough to matter shows
    assert [st.instance for st in stalls] == []
    assert CONGESTION_MS * MS < QUEUE_WITNESS_NS


def test_a_paused_callee_with_two_queued_requests_is_a_stall() -> None:
    # GIVEN back paused for 45 ms while two calls arrive (the first at the pause's start)
    spans = Model(back_pause=(1221.0, 1266.0)).spans()
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the pause is reported on back, with both requests queued
    assert [st.instance for st in stalls] == ["back-1"]
    assert stalls[0].queued_requests == 2


def test_a_pause_after_idle_time_is_judged_by_its_queue_not_by_the_whole_silence() -> None:
    # GIVEN back idle for ~115 ms, then paused for 30 ms while three calls arrive 10 ms apart:
    # they wait 29.5, 19.5 and 9.5 ms beyond the usual, in a silence of ~145 ms
    spans = Model(back_pause=(1300.0, 1330.0)).spans(
        idle=(1180.0, 1340.0), calls=((1299.0, 0.0), (1309.0, 0.0), (1319.0, 0.0))
    )
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the pause is found with all three requests queued: the extra waits are measured
    # against the pause part of the silence (the longest wait, 29.5 ms), not against all of it
    assert [st.instance for st in stalls] == ["back-1"]
    assert stalls[0].duration_ms > 140
    assert stalls[0].queued_requests == 3


def test_a_request_that_arrived_after_an_idle_silence_ended_is_not_queued() -> None:
    # GIVEN back idle for ~40 ms, then one call sent 20 ms late by a congested front and,
    # 6 ms after back served it, another sent 5 ms late
    spans = Model().spans(idle=(1180.0, 1240.0), calls=((1205.0, 20.0), (1226.0, 5.0)))
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN none is reported: the second request's extra wait, measured against the first's,
    # is no queueing: it arrived after back had resumed serving
    assert [st.instance for st in stalls] == []


def test_requests_an_idle_callee_started_after_it_resumed_did_not_wait_in_its_silence() -> None:
    # GIVEN back idle for ~73 ms (nothing in flight), then a call front sent 30 ms late and,
    # 25 ms after back served it, one front sent 20 ms late (front busy meanwhile): both wait
    # over a fifth of back's silence beyond the usual, both start in the release burst
    spans = Model().spans(idle=(1180.0, 1340.0), calls=((1225.0, 30.0), (1260.0, 20.0)))
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN none is reported: the second started 25 ms after back's silence with 20 ms of extra
    # wait, so it reached back after back resumed; one request waiting is no stall
    assert [st.instance for st in stalls] == []
