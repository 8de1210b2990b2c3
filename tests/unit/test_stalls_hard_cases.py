"""Stall detection on the failure classes real-SDK traces showed (issue 14), simulated small.

Each case is a two-service system (``front`` calls ``back``) built with the simulator's
scenario options, so the truth (every pause, the requests it touched) is known by construction
and findings are graded with the same grader as ``benchmarks/accuracy.py``:

* a **paused caller**: front pauses between starting its CLIENT span and sending the request;
  back never pauses, so no stall may be reported on back;
* **back-to-back pauses**: every collection of back is followed ~14 ms later by another; both
  must be found;
* a **low-rate instance**: back gets one span per request at 30 requests/s (recent intervals of
  tens of ms) and pauses for ~200 ms; the pauses must be found;
* a **busy instance with a whole-millisecond clock** and only sub-millisecond collections: no
  stall at all.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tailscope.analysis._stall_grading import RECALL_MIN_MS, RECALL_MIN_REQUESTS, grade
from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import detect_stalls
from tailscope.report.model import Stall
from tailscope.simulate import Simulation, simulate
from tailscope.simulate.scenario import scenario_from_mapping


def _system(
    *,
    rate: float,
    front: dict[str, Any],
    back: dict[str, Any],
    timeout_ms: float = 250.0,
    retries: int = 0,
    share: float = 1.0,
) -> dict[str, Any]:
    """``front`` receives ``rate`` requests/s; ``share`` of them call ``back``."""
    entries = [{"service": "front", "operation": "GET /a", "weight": share}]
    if share < 1.0:
        entries.append({"service": "front", "operation": "GET /local", "weight": 1.0 - share})
    return {
        "name": "hard-case",
        "arrival": {"rate_per_s": rate, "duration_s": 30.0},
        "network": {"median_ms": 0.4, "sigma": 0.4},
        "entries": entries,
        "services": {
            "front": {
                **front,
                "operations": {
                    "GET /a": {
                        "work": {"median_ms": 1.0, "sigma": 0.4},
                        "steps": [
                            {
                                "call": {
                                    "service": "back",
                                    "operation": "GET /b",
                                    "timeout_ms": timeout_ms,
                                    "retries": retries,
                                    "backoff_ms": 20,
                                }
                            }
                        ],
                    },
                    "GET /local": {"work": {"median_ms": 1.0, "sigma": 0.4}},
                },
            },
            "back": {**back, "operations": {"GET /b": {"work": {"median_ms": 3.0, "sigma": 0.5}}}},
        },
    }


def _run(mapping: dict[str, Any], seed: int, requests: int) -> tuple[Simulation, tuple[Stall, ...]]:
    sim = simulate(scenario_from_mapping(mapping), seed=seed, requests=requests)
    spans = pl.from_arrow(sim.table)
    assert isinstance(spans, pl.DataFrame)
    return sim, detect_stalls(spans)


def _to_find(sim: Simulation, instance_prefix: str) -> list[dict[str, Any]]:
    return [
        p
        for p in sim.truth["pauses"]
        if p["instance"].startswith(instance_prefix)
        and p["duration_ms"] >= RECALL_MIN_MS
        and p["requests_touched"] >= RECALL_MIN_REQUESTS
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_paused_caller_is_not_the_callees_stall(seed: int) -> None:
    # a busy Node.js front with a millisecond clock spends ~2 ms between starting a CLIENT span
    # and sending it, and pauses for ~80 ms every second: many requests leave late
    front = {
        "runtime": "nodejs",
        "clock_resolution_ms": 1.0,
        "send_work": {"median_ms": 2.0, "sigma": 0.3},
        "pauses": {
            "gc-scavenge": {"every_ms": 0},
            "gc-mark-compact": {"every_ms": 1000, "duration": {"median_ms": 80.0, "sigma": 0.3}},
        },
    }
    back = {"runtime": "python", "pauses": "off"}
    sim, stalls = _run(_system(rate=150.0, front=front, back=back), seed, 3000)
    assert not [st for st in stalls if st.service == "back"], stalls
    g = grade(stalls, (), sim.truth)
    assert g.pauses_to_find >= 8
    assert g.stall_precision == 1.0
    assert g.stall_recall is not None and g.stall_recall >= 0.9


@pytest.mark.parametrize("seed", [1, 2])
def test_back_to_back_pauses_are_both_found(seed: int) -> None:
    front = {"runtime": "rust"}
    back = {
        "runtime": "python",
        "instances": 2,
        "pauses": {
            "gc-gen0": {"every_ms": 0},
            "gc-gen2": {
                "every_ms": 1500,
                "duration": {"median_ms": 150.0, "sigma": 0.3},
                "back_to_back": {"probability": 1.0, "gap_ms": 14.0},
            },
        },
    }
    sim, stalls = _run(_system(rate=150.0, front=front, back=back, retries=1), seed, 3000)
    pauses = _to_find(sim, "back")
    assert len(pauses) >= 20
    g = grade(stalls, find_cascades(pl.from_arrow(sim.table), stalls)[0], sim.truth)  # type: ignore[arg-type]
    assert g.stall_precision is not None and g.stall_precision >= 0.95
    assert g.stall_recall is not None and g.stall_recall >= 0.9
    assert g.cascade_recall is not None and g.cascade_recall >= 0.9


@pytest.mark.parametrize("seed", [1, 2])
def test_a_low_rate_instances_pauses_are_found(seed: int) -> None:
    # a busy front sends a fifth of its 150 requests/s to back: one span per request at
    # 30 requests/s, recent intervals of tens of ms
    front = {"runtime": "rust"}
    back = {
        "runtime": "python",
        "pauses": {
            "gc-gen0": {"every_ms": 0},
            "gc-gen2": {"every_ms": 2000, "duration": {"median_ms": 200.0, "sigma": 0.2}},
        },
    }
    system = _system(rate=150.0, front=front, back=back, timeout_ms=200.0, share=0.2)
    sim, stalls = _run(system, seed, 4500)
    pauses = _to_find(sim, "back")
    assert len(pauses) >= 8
    g = grade(stalls, (), sim.truth)
    assert g.stall_precision is not None and g.stall_precision >= 0.95
    assert g.stall_recall is not None and g.stall_recall >= 0.9


@pytest.mark.parametrize("seed", [1, 2])
def test_a_busy_millisecond_clock_instance_gives_no_false_stall(seed: int) -> None:
    front = {
        "runtime": "nodejs",
        "clock_resolution_ms": 1.0,
        "send_work": {"median_ms": 0.3, "sigma": 0.5},
        "pauses": {"gc-mark-compact": {"every_ms": 0}},  # scavenges of ~1 ms only
    }
    back = {"runtime": "python", "instances": 2, "pauses": {"gc-gen2": {"every_ms": 0}}}
    sim, stalls = _run(_system(rate=400.0, front=front, back=back), seed, 6000)
    assert max(p["duration_ms"] for p in sim.truth["pauses"]) < 10.0
    assert stalls == ()
