"""Grade stall and cascade findings against a simulator's ground truth (``truth.json``).

Used by ``tests/e2e/test_stalls_accuracy.py`` and ``benchmarks/accuracy.py``; kept in the package so
both grade the same way. Pure: findings and the truth object in, numbers out.

* A detected stall is **correct** when it overlaps, on the same instance, a true pause of any
  length (its times are first mapped from the host's skewed clock to the true clock with
  ``host_offsets_ns``).
* Stall **recall** counts the true pauses of at least :data:`RECALL_MIN_MS` that touched at
  least :data:`RECALL_MIN_REQUESTS` requests.
* Real runs (``benchmarks/real``) also list ``freezes``: windows in which a process's heartbeat
  stopped for a reason other than its recorded collections (CPU starvation on a shared machine).
  The process really froze there, so a stall found on one is neither right nor wrong about GC:
  it is counted in ``stalls_on_freezes`` and left out of ``stalls_found``
  (``stall_precision_strict`` counts it as wrong). The simulator's truth has no freezes.
* GC-cascade traces are graded by trace id against ``trace_outcomes[...].gc_caused`` (the trace
  timed out and would not have without the pauses).
* ``non_gc_labelled`` is the share of the truth's timeouts whose cause was not a pause whose
  trace was nevertheless reported in a cascade. Timeouts in traces that also hold a pause-caused
  timeout are left out (reporting that trace is right; cascades name traces, not spans). The
  simulator rarely mixes both in one trace; real runs (``benchmarks/real``) often do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tailscope.report.model import Cascade, Stall

RECALL_MIN_MS: Final = 25.0
RECALL_MIN_REQUESTS: Final = 3


@dataclass(frozen=True, slots=True)
class Grade:
    """Accuracy of one run. Ratios are None when undefined (nothing found / nothing to find)."""

    stalls_found: int
    stalls_correct: int
    pauses_to_find: int
    pauses_found: int
    cascade_traces_found: int
    cascade_traces_correct: int
    gc_caused_traces: int
    non_gc_timeouts: int
    non_gc_labelled: int
    stalls_on_freezes: int = 0

    @property
    def stall_precision(self) -> float | None:
        return _ratio(self.stalls_correct, self.stalls_found)

    @property
    def stall_precision_strict(self) -> float | None:
        """Precision with stalls on non-GC freezes counted as wrong."""
        return _ratio(self.stalls_correct, self.stalls_found + self.stalls_on_freezes)

    @property
    def stall_recall(self) -> float | None:
        return _ratio(self.pauses_found, self.pauses_to_find)

    @property
    def cascade_precision(self) -> float | None:
        return _ratio(self.cascade_traces_correct, self.cascade_traces_found)

    @property
    def cascade_recall(self) -> float | None:
        return _ratio(self.cascade_traces_correct, self.gc_caused_traces)

    @property
    def non_gc_labelled_share(self) -> float | None:
        return _ratio(self.non_gc_labelled, self.non_gc_timeouts)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def grade(stalls: tuple[Stall, ...], cascades: tuple[Cascade, ...], truth: dict[str, Any]) -> Grade:
    """Compare findings on one simulated table with that simulation's truth."""
    offsets: dict[str, int] = truth.get("host_offsets_ns", {})
    pauses: list[dict[str, Any]] = truth["pauses"]
    by_instance: dict[str, list[tuple[int, int]]] = {}
    for pause in pauses:
        by_instance.setdefault(pause["instance"], []).append(
            (int(pause["start_unix_nano"]), int(pause["end_unix_nano"]))
        )

    def true_window(stall: Stall) -> tuple[int, int]:
        offset = offsets.get(stall.host or "", 0)
        return stall.start_unix_nano - offset, stall.end_unix_nano - offset

    freezes: dict[str, list[tuple[int, int]]] = {}
    for freeze in truth.get("freezes", ()):
        freezes.setdefault(freeze["instance"], []).append(
            (int(freeze["start_unix_nano"]), int(freeze["end_unix_nano"]))
        )

    def overlaps(table: dict[str, list[tuple[int, int]]], inst: str, a: int, b: int) -> bool:
        return any(ps <= b and pe >= a for ps, pe in table.get(inst, ()))

    windows = [(st.instance, *true_window(st)) for st in stalls]
    correct = sum(overlaps(by_instance, inst, a, b) for inst, a, b in windows)
    on_freezes = sum(
        not overlaps(by_instance, inst, a, b) and overlaps(freezes, inst, a, b)
        for inst, a, b in windows
    )
    to_find = [
        p
        for p in pauses
        if p["duration_ms"] >= RECALL_MIN_MS and p["requests_touched"] >= RECALL_MIN_REQUESTS
    ]
    found = sum(
        any(
            inst == p["instance"]
            and int(p["start_unix_nano"]) <= b
            and int(p["end_unix_nano"]) >= a
            for inst, a, b in windows
        )
        for p in to_find
    )
    reported = {t for c in cascades for t in c.trace_ids}
    outcomes: dict[str, dict[str, Any]] = truth["trace_outcomes"]
    gc_caused = {t for t, o in outcomes.items() if o.get("gc_caused")}
    non_gc = [
        t for t in truth["timeouts"] if t["cause"] != "pause" and t["trace_id"] not in gc_caused
    ]
    return Grade(
        stalls_found=len(stalls) - int(on_freezes),
        stalls_correct=int(correct),
        pauses_to_find=len(to_find),
        pauses_found=int(found),
        cascade_traces_found=len(reported),
        cascade_traces_correct=len(reported & gc_caused),
        gc_caused_traces=len(gc_caused),
        non_gc_timeouts=len(non_gc),
        non_gc_labelled=sum(t["trace_id"] in reported for t in non_gc),
        stalls_on_freezes=int(on_freezes),
    )
