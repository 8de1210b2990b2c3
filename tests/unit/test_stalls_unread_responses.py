"""Responses a frozen caller read late, told from requests a frozen callee held, on hand-built
traces.

The model of ``test_stalls_release.py`` (``front`` on host-a serves a local request every 5 ms
and, every 20 ms, one that calls ``back`` on host-b; host clocks 15 ms apart), with a second
callee, ``side`` (host-b), and a freeze of ``front``. Around the case no call reaches the
callees for a while, so each is idle, and the requests of the case start right after a silence
of their callee. Then ``front`` sends its requests and freezes before the answers come back:
the callees serve the requests at once, and ``front`` reads the answers only when it resumes.

The durations of the calls are those of requests a frozen callee held (a CLIENT span ~40 ms
longer than its SERVER child, the child starting right after the callee's silence); only the
clocks of the two sides tell which of them was frozen:

* ``front`` took no timestamp from the moment the answers could have arrived until it read
  them (its own clock): the wait may have been ``front``'s; with nothing of the callee in
  flight when it fell silent, nothing shows the callee was frozen;
* answers of two callees, each idle and each serving at once, were all read right after the
  same silence of ``front``: the callees do not release their queues at the moment ``front``
  resumes; what they share is ``front``.

GIVEN/WHEN/THEN in each test.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from handbuilt import span_frame
from test_stalls_release import NETWORK_MS, Model

from tailscope.analysis.stalls import detect_stalls
from tailscope.schema import SpanKind

FREEZE = (1222.0, 1262.0)
"""When front is frozen (ms from start): after it sent the requests of the case."""


@dataclass
class FrontFreezing(Model):
    """``front_pause`` freezes front-1: its local requests then are not served, and it reads
    the answers of its calls only when it resumes."""

    front_pause: tuple[float, float] | None = None

    def local(self, t: float) -> None:
        p = self.front_pause
        if p is not None and p[0] <= t < p[1]:
            return
        super().local(t)

    def fan_out(self, t: float, callees: tuple[tuple[str, str], ...]) -> None:
        """A request arriving at front at ``t`` ms that calls each (service, host) of
        ``callees`` at once; each callee serves it in 2 ms the moment it arrives (back: when
        it resumes, if ``back_pause`` holds it)."""
        trace, root = self._trace(), self._id()
        last = t
        for service, host in callees:
            client, server = self._id(), self._id()
            begin = t + 1.0 + NETWORK_MS
            held = self.back_pause if service == "back" else None
            if held is not None and held[0] <= begin < held[1]:
                begin = held[1]
            reply = begin + 2.0 + NETWORK_MS
            p = self.front_pause
            read = p[1] if p is not None and p[0] <= reply < p[1] else reply
            self._span(trace, server, client, service, host, SpanKind.SERVER, begin, begin + 2.0)
            self._span(trace, client, root, "front", "host-a", SpanKind.CLIENT, t + 1.0, read)
            last = max(last, read)
        self._span(trace, root, None, "front", "host-a", SpanKind.SERVER, t, last + 0.5)

    def with_fan_outs(
        self, times: tuple[float, ...], callees: tuple[tuple[str, str], ...]
    ) -> pl.DataFrame:
        """The model's two seconds of traffic, no regular call from 1140 to 1340 ms, and a
        fan-out to ``callees`` at each of ``times`` (ms); ``side`` gets a call every 40 ms
        outside that stretch, so it has a rate of its own."""
        self.spans(idle=(1140.0, 1340.0))
        for n in range(50):
            t = 110.0 + n * 40.0
            if not 1140.0 < t <= 1340.0:
                self.fan_out(t, (("side", "host-b"),))
        for t in times:
            self.fan_out(t, callees)
        return span_frame(self.rows)


def test_answers_read_late_by_a_frozen_caller_are_no_stall_of_the_idle_callee() -> None:
    # GIVEN back idle for ~80 ms, then two calls from front that back serves at once, and
    # front frozen from just after it sent them until 40 ms later (it reads both answers then)
    spans = FrontFreezing(front_pause=FREEZE).with_fan_outs((1220.0, 1220.5), (("back", "host-b"),))
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN nothing is reported on back: front took no timestamp from the moment the answers
    # could have arrived until it read them, and back had nothing in flight
    assert "back-1" not in [st.instance for st in stalls]


def test_a_paused_callee_queueing_a_running_callers_requests_is_still_a_stall() -> None:
    # GIVEN back idle, then paused for 40 ms while two calls arrive, and front running all along
    spans = FrontFreezing(back_pause=(1221.0, 1261.0)).with_fan_outs(
        (1220.0, 1220.5), (("back", "host-b"),)
    )
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the pause is reported on back: front took timestamps while the requests waited
    assert [st.instance for st in stalls] == ["back-1"]
    assert stalls[0].queued_requests == 2


def test_answers_of_two_idle_callees_read_after_one_silence_point_at_the_caller() -> None:
    # GIVEN front sends two requests, each to both back and side (idle, serving at once), and
    # freezes for 40 ms before the four answers come back
    spans = FrontFreezing(front_pause=FREEZE).with_fan_outs(
        (1220.0, 1220.5), (("back", "host-b"), ("side", "host-b"))
    )
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the freeze is reported on front, its four answers stranded, and none on the callees
    assert [st.instance for st in stalls] == ["front-1"]
    assert any("4 responses stranded" in reason for reason in stalls[0].evidence)
