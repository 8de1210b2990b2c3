"""A pause that held exactly one request, told from a caller that held it, on hand-built traces.

The model of ``test_stalls_release.py``: ``front`` (host-a) serves a local request every 5 ms
and, every 20 ms, one that calls ``back`` (host-b); host clocks 15 ms apart. Around the case,
no other call reaches ``back`` for a while, so exactly one request waits ~45 ms longer than
usual and ``back`` starts it the moment its silence ends:

* **a pause of back**: the request waited at ``back``; ``front`` kept serving meanwhile;
* **a pause of front** between its CLIENT span's start and the send: ``front`` took no
  timestamp for the whole call, and ``back``, idle, served the request when it came.

The evidence at ``back`` is the same single long wait; only the caller's own clock tells them
apart. GIVEN/WHEN/THEN in each test.
"""

from __future__ import annotations

from dataclasses import dataclass

from handbuilt import MS
from test_stalls_release import Model

from tailscope.analysis.stalls import LONE_AWAKE_NS, LONE_WAIT_NS, detect_stalls


@dataclass
class FrontPausing(Model):
    """``front_pause`` freezes front-1 (ms from start): its local requests then are not served."""

    front_pause: tuple[float, float] | None = None

    def local(self, t: float) -> None:
        p = self.front_pause
        if p is not None and p[0] <= t < p[1]:
            return
        super().local(t)


def test_a_pause_that_held_one_request_from_a_running_caller_is_a_stall() -> None:
    # GIVEN back paused for 45 ms while exactly one call arrives (no other call for 80 ms),
    # and front serving its local requests all along
    spans = Model(back_pause=(1221.0, 1266.0)).spans(idle=(1225.0, 1300.0))
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN the pause is reported on back with its one queued request: a wait of 44.5 ms, at
    # least half the silence and released first, from a caller seen running meanwhile
    assert [st.instance for st in stalls] == ["back-1"]
    assert stalls[0].queued_requests == 1
    assert 44 * MS >= LONE_WAIT_NS


def test_one_request_held_by_its_paused_caller_is_no_stall_of_the_callee() -> None:
    # GIVEN back idle, and front frozen for 45 ms right after it started its CLIENT span (it
    # sends the request when it resumes; no other call for 80 ms)
    spans = FrontPausing(front_pause=(1221.0, 1266.0)).spans(
        idle=(1205.0, 1300.0), calls=((1220.0, 45.0),)
    )
    # WHEN stalls are detected
    stalls = detect_stalls(spans)
    # THEN nothing is reported on back: the request's long wait is front's own pause, and
    # front took no timestamp while the call was open (none LONE_AWAKE_NS inside it)
    assert "back-1" not in [st.instance for st in stalls]
    assert LONE_AWAKE_NS == 5 * MS
