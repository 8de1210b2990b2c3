"""Per-operation percentiles against numpy's nearest-rank quantiles, on a real export and on
hand-made distributions, with the histogram's stated resolution as tolerance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from repo_paths import CORPUS as _CORPUS
from repo_paths import REPO as _REPO

from tailscope import schema as s
from tailscope.analysis.percentiles import kind_name, operation_stats
from tailscope.histogram import relative_resolution
from tailscope.ingest import read_spans
from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.schema import SpanKind, StatusCode

REPO = _REPO
CORPUS = _CORPUS
NEZHA = CORPUS / "otlp" / "nezha-trainticket-2023-01-29-08_50.jsonl.gz"
QUANTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p99_ms": 0.99, "p999_ms": 0.999}


def nearest_rank(values: np.ndarray, q: float) -> float:
    """HdrHistogram's rank rule, computed independently: the sorted value at rank
    ``max(1, floor(q * n + 0.5))``. (numpy's ``inverted_cdf`` uses ``ceil(q * n)``; the two
    differ when ``q * n`` has a fractional part below one half, e.g. p99 of 60 values.)"""
    ordered = np.sort(values)
    rank = max(int(q * ordered.size + 0.5), 1)
    return float(ordered[rank - 1])


def tolerance_ms(exact_ms: float) -> float:
    """HdrHistogram with 3 significant digits: relative resolution plus one 1 µs unit."""
    return exact_ms * relative_resolution() + 0.001


def check_against_numpy(spans: pl.DataFrame) -> int:
    """Every operation's percentiles equal numpy's inverted_cdf within tolerance."""
    stats = operation_stats(spans)
    checked = 0
    for op in stats:
        durations = (
            spans.filter(
                (pl.col(s.SERVICE).cast(pl.String) == op.service)
                & (pl.col(s.NAME).cast(pl.String) == op.operation)
                & (pl.col(s.KIND).map_elements(kind_name, return_dtype=pl.String) == op.kind)
            )[s.DURATION].to_numpy()
            / 1e6
        )
        assert op.count == durations.size
        assert op.max_ms == pytest.approx(durations.max(), abs=1e-9)
        for field, q in QUANTILES.items():
            exact = nearest_rank(durations, q)
            if int(q * durations.size + 0.5) == int(np.ceil(q * durations.size)):
                assert exact == float(np.quantile(durations, q, method="inverted_cdf"))
            got = getattr(op, field)
            assert abs(got - exact) <= tolerance_ms(exact), (op.operation, field, got, exact)
        checked += 1
    return checked


def test_corpus_percentiles_match_numpy() -> None:
    frame = pl.from_arrow(read_spans([str(NEZHA)]).table)
    assert isinstance(frame, pl.DataFrame)
    assert check_against_numpy(frame) >= 10


def _rows(durations_ns: np.ndarray, name: str, errors_every: int = 0) -> list[SpanRow]:
    rows = []
    for i, d in enumerate(durations_ns.tolist()):
        rows.append(
            SpanRow(
                trace_id=(i + 1).to_bytes(16, "big"),
                span_id=(i + 1).to_bytes(8, "big"),
                parent_span_id=None,
                name=name,
                kind=SpanKind.SERVER,
                start_unix_nano=1_000_000_000,
                end_unix_nano=1_000_000_000 + int(d),
                service_name="svc",
                service_instance="svc-1",
                status_code=StatusCode.ERROR if errors_every and i % errors_every == 0 else 0,
            )
        )
    return rows


def test_heavy_tailed_distribution_and_error_rate_and_exemplars() -> None:
    rng = np.random.default_rng(7)
    body = rng.lognormal(np.log(5e6), 0.4, 2000)
    tail = rng.lognormal(np.log(400e6), 0.2, 30)
    durations = np.concatenate([body, tail]).astype(np.int64)
    frame = pl.from_arrow(table_from_rows(_rows(durations, "GET /x", errors_every=10)))
    assert isinstance(frame, pl.DataFrame)
    assert check_against_numpy(frame) == 1
    (op,) = operation_stats(frame, exemplars=3)
    assert op.error_rate == pytest.approx(203 / 2030)
    slowest = np.argsort(-durations, kind="stable")[:3]
    assert op.exemplar_trace_ids == tuple((int(i) + 1).to_bytes(16, "big").hex() for i in slowest)
    assert op.kind == "server"


def test_sub_microsecond_and_identical_durations() -> None:
    durations = np.array([300] * 50 + [2_000_000] * 50, dtype=np.int64)
    frame = pl.from_arrow(table_from_rows(_rows(durations, "tiny")))
    assert isinstance(frame, pl.DataFrame)
    (op,) = operation_stats(frame)
    assert op.p50_ms == pytest.approx(0.0, abs=0.001)
    assert op.p99_ms == pytest.approx(2.0, rel=relative_resolution())
    assert op.max_ms == 2.0
