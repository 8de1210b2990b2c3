"""Stop-the-world pause schedules of one process, and time arithmetic that skips them.

A paused process does nothing: its on-CPU work stops, it takes no timestamps, and a request
that arrives during a pause is handled when the pause ends. The schedule is generated lazily
(in time order, from its own addressable random stream, so extending it never changes what is
already there) and answers two questions in O(log pauses):

* :meth:`PauseSchedule.resume` — when can the process next act at or after ``t``?
* :meth:`PauseSchedule.advance` — when does ``work_ns`` of on-CPU work started at ``t`` finish?

Both work on the process's *work clock* ``W(t) = t - (pause time before t)``, which only runs
while the process runs. Times are integer nanoseconds since the simulation origin.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

from tailscope.simulate.randomness import child_key, exponential, standard_normal, uniform
from tailscope.simulate.scenario import PauseKind

PAUSE_GAP_NS = 50_000
"""Minimum running time between two pauses (two collections cannot overlap)."""

_NS_PER_MS = 1_000_000


class PauseSchedule:
    """The pauses of one process: sorted, non-overlapping ``[start, end)`` intervals (ns)."""

    __slots__ = (
        "_draws",
        "_kinds",
        "_next_count",
        "_next_start",
        "cumulative",
        "ends",
        "kinds",
        "known_until",
        "starts",
        "work_starts",
    )

    def __init__(self, kinds: tuple[PauseKind, ...], key: int) -> None:
        self._kinds = kinds
        self._draws = [child_key(key, i) for i in range(len(kinds))]
        self._next_count = [0] * len(kinds)
        self._next_start = [
            exponential(self._draws[i], 0, kind.every_ms * _NS_PER_MS)
            for i, kind in enumerate(kinds)
        ]
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.kinds: list[str] = []
        self.work_starts: list[int] = []
        """Work-clock time at which each pause starts."""
        self.cumulative: list[int] = [0]
        """``cumulative[i]``: total pause time of the first ``i`` pauses (len = pauses + 1)."""
        self.known_until: float = min(self._next_start, default=math.inf)
        """Every pause starting before this time has been generated."""

    def _emit(self) -> None:
        i = min(range(len(self._kinds)), key=self._next_start.__getitem__)
        kind = self._kinds[i]
        draws = self._draws[i]
        n = self._next_count[i]
        dist = kind.duration
        base = 4 * n + 1
        z = standard_normal(draws, base)
        median, sigma = dist.median_ms, dist.sigma
        if dist.tail_probability and uniform(draws, base + 2) < dist.tail_probability:
            median, sigma = dist.tail_median_ms, dist.tail_sigma
        duration = max(1_000, int(median * math.exp(sigma * z) * _NS_PER_MS))
        nominal = int(self._next_start[i])
        start = nominal if not self.ends else max(nominal, self.ends[-1] + PAUSE_GAP_NS)
        self.starts.append(start)
        self.ends.append(start + duration)
        self.kinds.append(kind.name)
        self.work_starts.append(start - self.cumulative[-1])
        self.cumulative.append(self.cumulative[-1] + duration)
        self._next_count[i] = n + 1
        if kind.back_to_back_probability:
            self._back_to_back(kind, draws, n)
        gap = exponential(draws, base + 3, kind.every_ms * _NS_PER_MS)
        self._next_start[i] = self._next_start[i] + gap
        self.known_until = max(min(self._next_start), self.ends[-1])

    def _back_to_back(self, kind: PauseKind, draws: int, n: int) -> None:
        """Maybe a second pause of ``kind`` right after the one just emitted (a collection that
        freed too little, run again after the queue was briefly released). Its draws come
        from a stream of their own, so scenarios without back-to-back pauses are unchanged."""
        pair = child_key(draws, 0xB2B)
        if uniform(pair, 4 * n) >= kind.back_to_back_probability:
            return
        dist = kind.duration
        gap = int(kind.back_to_back_gap_ms * (0.5 + uniform(pair, 4 * n + 1)) * _NS_PER_MS)
        z = standard_normal(pair, 4 * n + 2)
        duration = max(1_000, int(dist.median_ms * math.exp(dist.sigma * z) * _NS_PER_MS))
        start = self.ends[-1] + max(gap, PAUSE_GAP_NS)
        self.starts.append(start)
        self.ends.append(start + duration)
        self.kinds.append(kind.name)
        self.work_starts.append(start - self.cumulative[-1])
        self.cumulative.append(self.cumulative[-1] + duration)

    def ensure(self, t: int) -> None:
        """Generate every pause that starts at or before ``t``."""
        while self.known_until <= t:
            self._emit()

    def resume(self, t: int) -> int:
        """``t`` if the process is running at ``t``, else the end of the pause covering it."""
        if self.known_until <= t:
            self.ensure(t)
        i = bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.ends[i]:
            return self.ends[i]
        return t

    def advance(self, t: int, work_ns: int) -> int:
        """When ``work_ns`` of work started at ``t`` (a running instant) finishes."""
        if work_ns <= 0:
            return t
        if self.known_until <= t + work_ns:
            self.ensure(t + work_ns)
        k0 = bisect_left(self.starts, t)
        target = t - self.cumulative[k0] + work_ns
        while True:
            k = bisect_left(self.work_starts, target)
            finish = target + self.cumulative[k]
            if finish < self.known_until:
                return finish
            self._emit()

    def pauses_within(self, start: int, end: int) -> range:
        """Indices of the pauses lying entirely inside ``[start, end]``."""
        self.ensure(end)
        first = bisect_left(self.starts, start)
        last = bisect_right(self.ends, end)
        return range(first, max(first, last))

    def pause_ending_at(self, t: int) -> int | None:
        """Index of the pause that ends exactly at ``t``, if any."""
        i = bisect_left(self.ends, t)
        if i < len(self.ends) and self.ends[i] == t:
            return i
        return None

    def overlapping(self, start: int, end: int) -> range:
        """Indices of the pauses that overlap ``[start, end)``."""
        self.ensure(end)
        first = bisect_right(self.ends, start)
        last = bisect_left(self.starts, end)
        return range(first, max(first, last))
