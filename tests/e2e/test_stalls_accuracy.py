"""Stall and cascade detection graded against the simulator's ground truth (issue 5).

Small runs (1500 requests each) so the module stays quick; ``benchmarks/accuracy.py`` prints the
full table on bigger runs. Counts are pooled over two seeds before dividing. The thresholds are
the targets of the issue, minus the slack that runs this small need (a single missed pause moves
recall by several points); the benchmark's measured figures are in ``docs/detection.md``.
"""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest
from repo_paths import CORPUS as _CORPUS

from tailscope.analysis._stall_grading import Grade, grade
from tailscope.analysis.cascades import find_cascades
from tailscope.analysis.stalls import detect_stalls
from tailscope.ingest import read_spans
from tailscope.simulate import builtin_scenario, simulate

CORPUS = _CORPUS
REQUESTS = 1500
SEEDS = (1, 2)


@cache
def graded(scenario: str, seed: int, skew_ms: float | None, sampling: float | None) -> Grade:
    sim = simulate(
        builtin_scenario(scenario),
        seed=seed,
        requests=REQUESTS,
        clock_skew_ms=skew_ms,
        sampling=sampling,
    )
    spans = pl.from_arrow(sim.table)
    assert isinstance(spans, pl.DataFrame)
    stalls = detect_stalls(spans)
    cascades, _ = find_cascades(spans, stalls)
    return grade(stalls, cascades, sim.truth)


def pooled(grades: list[Grade]) -> Grade:
    return Grade(**{f: sum(getattr(g, f) for g in grades) for f in Grade.__slots__})


@pytest.mark.parametrize(
    ("skew_ms", "sampling", "min_stall_recall", "min_cascade_recall"),
    [
        (None, None, 0.9, 0.9),
        (20.0, None, 0.9, 0.9),
        # half the traces gone: fewer witnesses per pause, so the bar is lower (see docs)
        (20.0, 0.5, 0.85, 0.85),
    ],
)
def test_gc_cascade_stalls_and_cascade_traces_match_the_truth(
    skew_ms: float | None,
    sampling: float | None,
    min_stall_recall: float,
    min_cascade_recall: float,
) -> None:
    g = pooled([graded("gc-cascade", seed, skew_ms, sampling) for seed in SEEDS])
    assert g.pauses_to_find >= 10, "the scenario must give something to find"
    assert g.stall_precision is not None and g.stall_precision >= 0.95, g
    assert g.stall_recall is not None and g.stall_recall >= min_stall_recall, g
    assert g.cascade_precision is not None and g.cascade_precision >= 0.95, g
    assert g.cascade_recall is not None and g.cascade_recall >= min_cascade_recall, g


@pytest.mark.parametrize("scenario", ["steady", "slow-dependency"])
@pytest.mark.parametrize(("skew_ms", "sampling"), [(None, None), (20.0, 0.5)])
def test_negative_controls_yield_no_gc_cascades(
    scenario: str, skew_ms: float | None, sampling: float | None
) -> None:
    g = pooled([graded(scenario, seed, skew_ms, sampling) for seed in SEEDS])
    assert g.cascade_traces_found == 0, g
    # any stall reported must be a real (short) pause
    assert g.stalls_correct == g.stalls_found, g
    if scenario == "slow-dependency":
        assert g.non_gc_timeouts > 20, "the control must produce non-GC timeouts"
        assert g.non_gc_labelled_share is not None and g.non_gc_labelled_share < 0.05


def test_slow_dependency_timeouts_are_reported_unexplained_with_their_hop() -> None:
    sim = simulate(builtin_scenario("slow-dependency"), seed=3, requests=REQUESTS)
    spans = pl.from_arrow(sim.table)
    assert isinstance(spans, pl.DataFrame)
    cascades, unexplained = find_cascades(spans, detect_stalls(spans))
    assert cascades == ()
    truth_traces = {t["trace_id"] for t in sim.truth["timeouts"]}
    reported = {t for u in unexplained for t in u.trace_ids}
    assert truth_traces and reported == truth_traces
    hops = {u.likely_hop for u in unexplained}
    assert hops & {"dependency orders-db.internal", "dependency api.payments.example.com"}, hops


@pytest.mark.parametrize(
    "name",
    [
        "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",
        "nezha-trainticket-2023-01-29-08_50.jsonl.gz",
        "otel-demo-otel-tui.jsonl",
    ],
)
def test_real_traffic_does_not_light_up(name: str) -> None:
    """Real captures: bursty, idle gaps of seconds, and (Nezha) no span kinds, so waiting cannot
    be told from working. Silences alone must not be reported as stalls."""
    table = read_spans([str(CORPUS / "otlp" / name)])
    spans = pl.from_arrow(table.table)
    assert isinstance(spans, pl.DataFrame)
    stalls = detect_stalls(spans)
    assert stalls == ()
    cascades, _ = find_cascades(spans, stalls)
    assert cascades == ()


def test_gc_cascade_timeouts_and_retries_are_counted_like_the_truth() -> None:
    sim = simulate(builtin_scenario("gc-cascade"), seed=1, requests=REQUESTS)
    spans = pl.from_arrow(sim.table)
    assert isinstance(spans, pl.DataFrame)
    cascades, unexplained = find_cascades(spans, detect_stalls(spans))
    truth_timeouts = len(sim.truth["timeouts"])
    truth_retries = len(sim.truth["retries"])
    assert truth_timeouts > 20 and truth_retries > 20
    # every timeout in this scenario is pause-caused; allow 5 % for pauses too short to see
    assert sum(c.timed_out_spans for c in cascades) == pytest.approx(truth_timeouts, rel=0.05)
    assert sum(c.retries for c in cascades) == pytest.approx(truth_retries, rel=0.05)
    assert sum(u.timed_out_spans for u in unexplained) <= 0.05 * truth_timeouts
    for cascade in cascades:
        assert cascade.amplification >= 1.0
        assert cascade.root_operations == ("frontend POST /api/checkout",)
