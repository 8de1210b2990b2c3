"""Hop attribution: hand-computed shares, shares summing to 1, bootstrap intervals, and the
inconclusive rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray

from tailscope.analysis import hops as hops_module
from tailscope.analysis.hops import HopOptions, hop_attribution
from tailscope.analysis.pipeline import AnalysisOptions, analyze
from tailscope.ingest.model import IngestResult, IngestStats
from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.schema import SpanKind

MS = 1_000_000


def segments_and_roots(
    hop_times_ms: dict[str, NDArray[np.float64]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Synthetic critical paths: request i spends hop_times_ms[h][i] ms in hop h, in turn."""
    names = list(hop_times_ms)
    n = len(hop_times_ms[names[0]])
    seg_rows = []
    root_rows = []
    for i in range(n):
        tid = (i + 1).to_bytes(16, "big")
        rid = (1).to_bytes(8, "big")
        t = 0
        for h in names:
            d = int(hop_times_ms[h][i] * MS)
            if d:
                seg_rows.append((tid, rid, t, t + d, h, "op", "self", "api", "GET /", rid))
            t += d
        root_rows.append((tid, rid, "api", "GET /", t))
    path = pl.DataFrame(
        seg_rows,
        schema=[
            "trace_id",
            "span_id",
            "seg_start",
            "seg_end",
            "hop_service",
            "hop_operation",
            "component",
            "root_service",
            "root_operation",
            "root_span_id",
        ],
        orient="row",
    )
    roots = pl.DataFrame(
        root_rows,
        schema=["trace_id", "root_span_id", "root_service", "root_operation", "duration_ns"],
        orient="row",
    )
    return path, roots


def test_shares_match_hand_computation_and_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    steady = np.round(rng.normal(10, 1, n).clip(1), 3)
    spiky = np.round(
        np.where(rng.random(n) < 0.03, rng.normal(200, 20, n), rng.normal(5, 1, n)).clip(1), 3
    )
    other = np.round(rng.normal(20, 3, n).clip(1), 3)
    path, roots = segments_and_roots({"steady": steady, "spiky": spiky, "other": other})
    summaries, hops = hop_attribution(path, roots, HopOptions(min_tail_requests=20, resamples=100))
    (root,) = summaries
    assert root.requests == n and not root.inconclusive
    total = steady + spiky + other
    thr = np.quantile(total, 0.99, method="inverted_cdf")
    tail = total > thr
    assert root.tail_requests == int(tail.sum())
    by_name = {h.hop_service: h for h in hops}
    for name, x in (("steady", steady), ("spiky", spiky), ("other", other)):
        expected_var = np.cov(x, total, bias=True)[0, 1] / total.var()
        expected_tail = (x[tail].mean() - x.mean()) / (total[tail].mean() - total.mean())
        assert by_name[name].variance_share == pytest.approx(expected_var, abs=1e-9)
        assert by_name[name].tail_share == pytest.approx(expected_tail, abs=1e-9)
        assert by_name[name].mean_ms == pytest.approx(x.mean(), rel=1e-9)
        lo, hi = by_name[name].tail_share_ci
        assert lo <= by_name[name].tail_share <= hi
    assert sum(h.variance_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    assert sum(h.tail_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    assert hops[0].hop_service == "spiky"
    assert hops[0].tail_share > 0.9
    assert by_name["spiky"].on_critical_path == 1.0


def test_too_few_tail_requests_is_inconclusive() -> None:
    rng = np.random.default_rng(5)
    path, roots = segments_and_roots({"a": rng.uniform(1, 2, 300), "b": rng.uniform(1, 9, 300)})
    summaries, hops = hop_attribution(path, roots, HopOptions(min_tail_requests=100, resamples=50))
    assert summaries[0].tail_requests == 3
    assert summaries[0].inconclusive
    assert all(h.inconclusive for h in hops)
    # still ranked by variance share, still summing to one
    assert hops[0].hop_service == "b"
    assert sum(h.variance_share for h in hops) == pytest.approx(1.0, abs=1e-9)


def test_pipeline_shares_sum_to_one_per_root_with_network_and_dependency() -> None:
    """Hand-built traces with a client→server edge and a database: three kinds of hop."""
    rng = np.random.default_rng(11)
    rows: list[SpanRow] = []
    for i in range(400):
        tid = (i + 1).to_bytes(16, "big")
        db = int(rng.uniform(1, 3) * MS) if i % 50 else 80 * MS
        net = int(rng.uniform(0.2, 0.6) * MS)
        srv = 2 * MS + db

        def sp(
            sid: int,
            parent: int | None,
            kind: int,
            start: int,
            end: int,
            svc: str,
            tid: bytes = tid,
        ) -> SpanRow:
            return SpanRow(
                tid,
                sid.to_bytes(8, "big"),
                None if parent is None else parent.to_bytes(8, "big"),
                f"{svc}-{sid}",
                kind,
                start,
                end,
                svc,
                f"{svc}-1",
                host_name=svc,
            )

        t0 = 1_000_000_000 + i * 200 * MS
        rows += [
            sp(1, None, SpanKind.SERVER, t0, t0 + MS + srv + 2 * net + MS, "edge"),
            sp(2, 1, SpanKind.CLIENT, t0 + MS, t0 + MS + srv + 2 * net, "edge"),
            sp(3, 2, SpanKind.SERVER, t0 + MS + net, t0 + MS + net + srv, "orders"),
            sp(4, 3, SpanKind.CLIENT, t0 + MS + net + MS, t0 + MS + net + MS + db, "orders"),
        ]
    result = analyze(
        IngestResult(table_from_rows(rows), IngestStats()),
        AnalysisOptions(min_tail_requests=4, bootstrap_resamples=50),
    )
    hops = result.report.hops
    assert {h.component for h in hops} == {"self", "network", "dependency"}
    assert sum(h.variance_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    assert sum(h.tail_share for h in hops) == pytest.approx(1.0, abs=1e-9)
    top = hops[0]
    assert (top.hop_service, top.component) == ("orders", "dependency")
    assert top.tail_share > 0.95
    network = next(h for h in hops if h.component == "network")
    assert network.hop_service == "edge"
    assert 0.4 <= network.mean_ms <= 1.2


def test_ranking_is_conclusive_when_the_top_interval_clears_the_next() -> None:
    # GIVEN one hop that owns the tail (3 % of requests spike by 200 ms) and two steady hops
    rng = np.random.default_rng(21)
    n = 3000
    spiky = np.where(rng.random(n) < 0.03, 200.0, 5.0) + rng.normal(0, 0.5, n).clip(-1, 1)
    path, roots = segments_and_roots(
        {
            "spiky": spiky,
            "steady": rng.normal(10, 1, n).clip(1),
            "other": rng.normal(8, 1, n).clip(1),
        }
    )
    summaries, hops = hop_attribution(path, roots, HopOptions(resamples=100))
    verdict = summaries[0].verdict
    assert verdict is not None and verdict.status == "conclusive"
    assert verdict.top is not None and verdict.top.hop_service == "spiky"
    assert verdict.top.tail_share_ci[0] > hops[1].tail_share_ci[1]
    assert verdict.indistinct == ()
    assert "The tail is owned by spiky op (self: own work)" in verdict.text
    assert "None of the tail is spent behind a detected stop-the-world pause." in verdict.text


def test_ranking_is_ambiguous_when_intervals_overlap_and_names_the_hops() -> None:
    # GIVEN two hops with the same spiky distribution: they cannot be told apart
    rng = np.random.default_rng(22)
    n = 3000
    a = np.where(rng.random(n) < 0.02, rng.normal(150, 20, n), rng.normal(5, 1, n)).clip(1)
    b = np.where(rng.random(n) < 0.02, rng.normal(150, 20, n), rng.normal(5, 1, n)).clip(1)
    path, roots = segments_and_roots({"a": a, "b": b, "c": np.full(n, 3.0)})
    summaries, _ = hop_attribution(path, roots, HopOptions(resamples=100))
    verdict = summaries[0].verdict
    assert verdict is not None and verdict.status == "ambiguous"
    assert verdict.top is not None
    assert {verdict.top.hop_service, *(h.hop_service for h in verdict.indistinct)} == {"a", "b"}
    # the overlap is real: the top's lower bound is below the other's upper bound
    other = verdict.indistinct[0]
    assert verdict.top.tail_share_ci[0] <= other.tail_share_ci[1]
    assert "cannot be told apart" in verdict.text
    assert "a op (self: own work)" in verdict.text and "b op (self: own work)" in verdict.text


def test_below_the_floor_nothing_is_ranked() -> None:
    rng = np.random.default_rng(5)
    path, roots = segments_and_roots({"a": rng.uniform(1, 2, 300), "b": rng.uniform(1, 9, 300)})
    summaries, _ = hop_attribution(path, roots, HopOptions(resamples=50))
    verdict = summaries[0].verdict
    assert summaries[0].tail_requests == 3 and summaries[0].inconclusive
    assert verdict is not None and verdict.status == "too_few_tail_requests"
    assert verdict.top is None
    assert "Too few requests above p99 to rank hops (fewer than 10)" in verdict.text


def reference_shares(
    hop_ms: NDArray[np.float64], total_ms: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Variance and tail shares under each row of ``weights``, written out plainly: every
    request in every sum, the p99 from a full cumulative sum (the same products, summed in the
    same order, as numpy's einsum without BLAS)."""
    hops = hop_ms.shape[1]
    moments = np.hstack(
        [hop_ms, total_ms[:, None], (total_ms * total_ms)[:, None], hop_ms * total_ms[:, None]]
    )
    n = weights.sum(axis=1)
    m = np.einsum("rn,nc->rc", weights, moments, optimize=False) / n[:, None]
    mean_x, mean_t = m[:, :hops], m[:, hops]
    var_t = m[:, hops + 1] - mean_t * mean_t
    cov = m[:, hops + 2 :] - mean_x * mean_t[:, None]
    order = np.argsort(total_ms, kind="stable")
    cumulative = np.cumsum(weights[:, order], axis=1)
    position = np.argmax(cumulative >= (0.99 * n)[:, None] - 1e-9, axis=1)
    in_tail = total_ms[None, :] > total_ms[order][position][:, None]
    tail_weights = weights * in_tail
    tail_n = tail_weights.sum(axis=1)
    tail_m = np.einsum("rn,nc->rc", tail_weights, moments[:, : hops + 1], optimize=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(var_t[:, None] > 0, cov / var_t[:, None], np.nan)
        excess = tail_m[:, hops] / tail_n - mean_t
        tail = np.where(
            (tail_n[:, None] > 0) & (excess[:, None] > 0),
            (tail_m[:, :hops] / tail_n[:, None] - mean_x) / excess[:, None],
            np.nan,
        )
    return variance, tail


@pytest.mark.parametrize("requests", [1, 2, 40, 64, 65, 1000, 4099, 20_000])
def test_bootstrap_equals_the_plain_computation_bit_for_bit(requests: int) -> None:
    # GIVEN requests with ties in T (times rounded to 0.1 ms) and hops often off the path
    rng = np.random.default_rng(requests)
    hop_ms = np.round(rng.exponential(2.0, (requests, 6)) * (rng.random((requests, 6)) < 0.7), 1)
    total_ms = hop_ms.sum(axis=1)
    sample = hops_module._Sample.of(hop_ms, total_ms)
    # WHEN the bootstrap draws 60 resamples (3 chunks) with a fixed seed
    boot = hops_module._bootstrap(sample, 60, np.random.default_rng(7))
    # THEN every share equals the plain computation on the same draws, to the last bit
    draws = np.random.default_rng(7)
    rows = []
    for chunk in (25, 25, 10):
        picks = draws.integers(0, requests, size=(chunk, requests))
        rows += [np.bincount(p, minlength=requests).astype(np.float64) for p in picks]
    variance, tail = reference_shares(hop_ms, total_ms, np.array(rows))
    np.testing.assert_array_equal(boot.variance, variance)
    np.testing.assert_array_equal(boot.tail, tail)
    point = hops_module._shares(sample, np.ones((1, requests)))
    np.testing.assert_array_equal(
        point.tail, reference_shares(hop_ms, total_ms, np.ones((1, requests)))[1]
    )


def test_tail_position_below_the_top_slice_falls_back_to_the_full_sum() -> None:
    # GIVEN weights with nothing on the slowest 10% of requests (the p99 is below the top 1/16)
    rng = np.random.default_rng(3)
    total_ms = rng.exponential(1.0, 2000)
    order = np.argsort(total_ms, kind="stable")
    weights = rng.integers(0, 3, (4, 2000)).astype(np.float64)
    weights[:2, order[-200:]] = 0.0
    n = weights.sum(axis=1)
    # WHEN the tail positions are looked up
    found = hops_module._tail_positions(order, weights, n)
    # THEN they are those of a full cumulative sum, in every row
    full = np.argmax(np.cumsum(weights[:, order], axis=1) >= (0.99 * n)[:, None] - 1e-9, axis=1)
    np.testing.assert_array_equal(found, full)
