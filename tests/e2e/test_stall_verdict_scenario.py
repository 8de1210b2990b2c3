"""Stall-aware attribution on a simulated 8-service system with JVM full GCs (inventory,
payments), checked against the simulator's ground truth: the decomposition with the *true*
pause windows (from ``truth.json``, moved into each host's exported clock) must give the same
top component and, within its interval, the same share as the detected windows."""

from __future__ import annotations

import pytest
from repo_paths import DATA

from tailscope.analysis.critical_path import segments_frame
from tailscope.analysis.hops import HopOptions, hop_attribution
from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans, root_durations
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.report.model import Stall
from tailscope.simulate import load_scenario, simulate

SCENARIO = DATA / "scenarios" / "gc-eight-services.yaml"


@pytest.fixture(scope="module")
def simulated() -> tuple[IngestResult, dict[str, object]]:
    sim = simulate(load_scenario(SCENARIO), seed=3, duration_s=60)  # a one-minute load test
    return IngestResult(table=sim.table, stats=IngestStats()), sim.truth


def test_top_component_is_the_paused_services_stall_and_matches_truth(
    simulated: tuple[IngestResult, dict[str, object]],
) -> None:
    ingest, truth = simulated
    analysis = analyze(ingest, AnalysisOptions(bootstrap_resamples=100))
    report = analysis.report
    place = next(r for r in report.roots if r.operation == "POST /orders")
    assert place.verdict is not None and place.verdict.status == "conclusive"
    top = place.verdict.top
    assert top is not None and (top.hop_service, top.component) == ("inventory", "stall")
    hops = [h for h in report.hops if h.root_operation == "POST /orders"]
    assert max(h.tail_share for h in hops if h.component == "network") < 0.05
    assert {p.service for p in place.verdict.paused_services} >= {"inventory", "payments"}
    assert "waiting behind stop-the-world pauses in inventory (java" in place.verdict.text

    # reference: the same decomposition with the simulator's true pauses (>= 5 ms)
    offsets = truth["host_offsets_ns"]
    assert isinstance(offsets, dict) and isinstance(truth["pauses"], list)
    true_windows = tuple(
        Stall(
            p["service"],
            p["instance"],
            p["host"],
            p["start_unix_nano"] + offsets[p["host"]],
            p["end_unix_nano"] + offsets[p["host"]],
            p["duration_ms"],
            0,
            0,
            1.0,
            "process",
        )
        for p in truth["pauses"]
        if p["duration_ms"] >= 5
    )
    prepared = prepare_spans(ingest)
    path = segments_frame(analysis.spans, prepared.tree, prepared.follows_from, stalls=true_windows)
    _, true_hops = hop_attribution(path, root_durations(analysis.spans), HopOptions(resamples=100))
    true_place = [h for h in true_hops if h.root_operation == "POST /orders"]
    assert (true_place[0].hop_service, true_place[0].component) == ("inventory", "stall")
    lo, hi = top.tail_share_ci
    assert lo <= true_place[0].tail_share <= hi
    true_stall = sum(h.tail_share for h in true_place if h.component == "stall")
    assert place.verdict.stall_tail_share == pytest.approx(true_stall, abs=0.05)
