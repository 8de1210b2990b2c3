"""Attribution on simulated traffic with a known culprit (tests/data/analysis-heavy-tail.toml):
the one hop whose own work has a heavy tail must come out on top of tail share, with a
confidence interval that excludes every other hop."""

from __future__ import annotations

import pytest
from repo_paths import DATA as _DATA

from tailscope.analysis.pipeline import AnalysisOptions, analyze
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.simulate import load_scenario, simulate

DATA = _DATA


def test_heavy_tailed_hop_owns_the_tail() -> None:
    sim = simulate(load_scenario(DATA / "analysis-heavy-tail.toml"), seed=3, requests=3000)
    result = analyze(
        IngestResult(sim.table, IngestStats()),
        AnalysisOptions(min_tail_requests=20, bootstrap_resamples=100),
    )
    (root,) = result.report.roots
    assert (root.service, root.operation) == ("api", "GET /search")
    assert root.requests == 3000 and not root.inconclusive
    hops = result.report.hops
    top = hops[0]
    assert (top.hop_service, top.hop_operation, top.component) == ("search", "GET /query", "self")
    assert top.tail_share > 0.9
    assert top.variance_share > 0.9
    assert all(top.tail_share_ci[0] > h.tail_share_ci[1] for h in hops[1:])
    assert sum(h.tail_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    assert sum(h.variance_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    # every cross-host edge of this scenario is skewed by a few ms and gets corrected
    assert result.report.input.skew_adjustments > 0
    network = [h for h in hops if h.component == "network"]
    assert network and all(0.0 < h.mean_ms < 5.0 for h in network)
