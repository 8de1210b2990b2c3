"""Baseline files: built from simulated traces, checked against numpy, portable, mergeable, and
every kind of damaged file gives one clear BaselineError."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pytest
from hdrh.histogram import HdrHistogram
from repo_paths import GATE_SCENARIO as _GATE_SCENARIO

from tailscope.errors import BaselineError
from tailscope.gate import (
    Baseline,
    build_baseline,
    decode_baseline,
    encode_baseline,
    merge_baselines,
)
from tailscope.histogram import relative_resolution
from tailscope.simulate import load_scenario, simulate

SCENARIO = _GATE_SCENARIO


@pytest.fixture(scope="module")
def tables() -> tuple[pa.Table, pa.Table]:
    scenario = load_scenario(SCENARIO)
    return (
        simulate(scenario, seed=11, requests=800).table,
        simulate(scenario, seed=12, requests=600).table,
    )


def _build(table: pa.Table, label: str = "run") -> Baseline:
    return build_baseline(
        table, label=label, created="2026-11-29T00:00:00Z", tailscope_version="test"
    )


def test_roots_and_operations_match_numpy(tables: tuple[pa.Table, pa.Table]) -> None:
    table = tables[0]
    baseline = _build(table)
    spans = pl.from_arrow(table)
    assert isinstance(spans, pl.DataFrame)
    # GIVEN 800 requests of web -> search -> index-db THEN one root operation with 800 samples
    assert [(r.name, r.count) for r in baseline.roots] == [("web/GET /search", 800)]
    roots = spans.filter(pl.col("parent_span_id").is_null())
    durations = roots.get_column("duration_ns").to_numpy()
    root = baseline.roots[0]
    for q in (0.5, 0.9, 0.99):
        reference = float(np.sort(durations)[int(q * durations.size + 0.5) - 1])
        assert root.histogram.quantile_ns(q) == pytest.approx(reference, rel=relative_resolution())
    assert root.start_unix_nano == int(roots.get_column("start_unix_nano").min())  # type: ignore[arg-type]
    assert root.end_unix_nano == int(roots.get_column("end_unix_nano").max())  # type: ignore[arg-type]
    # every (service, operation, kind) is there with its span count
    counts = (
        spans.group_by(pl.col("service_name").cast(pl.String), pl.col("name").cast(pl.String))
        .len()
        .sort("service_name", "name")
    )
    ours = sorted((o.service, o.operation, o.count) for o in baseline.operations)
    assert ours == sorted(counts.iter_rows())
    assert baseline.spans == table.num_rows
    assert baseline.traces == 800


def test_encoding_round_trips_through_hdrh_decoder(tables: tuple[pa.Table, pa.Table]) -> None:
    baseline = _build(tables[0], label="abc123")
    doc = orjson.loads(encode_baseline(baseline))
    assert doc["format"] == "tailscope-baseline" and doc["format_version"] == 1
    assert doc["label"] == "abc123"
    for entry, ours in zip(
        doc["roots"] + doc["operations"], baseline.roots + baseline.operations, strict=True
    ):
        # another HdrHistogram implementation's decoder reads our encoding
        theirs = HdrHistogram.decode(entry["histogram"].encode("ascii"))
        assert theirs.get_total_count() == entry["count"] == ours.count
        for pct in (50.0, 90.0, 99.0):
            # hdrh answers in its recorded unit (µs); ours is ns
            assert theirs.get_value_at_percentile(pct) * 1_000 == pytest.approx(
                ours.histogram.quantile_ns(pct / 100), rel=relative_resolution()
            )
    # and our decoder reads the file back to the same numbers
    again = decode_baseline(encode_baseline(baseline))
    assert again.label == "abc123"
    assert [(r.key, r.count, r.histogram.quantile_ns(0.99)) for r in again.operations] == [
        (r.key, r.count, r.histogram.quantile_ns(0.99)) for r in baseline.operations
    ]


def test_merge_equals_baseline_of_both_runs(tables: tuple[pa.Table, pa.Table]) -> None:
    first, second = _build(tables[0], "a"), _build(tables[1], "b")
    merged = merge_baselines([first, second], label="ab", created="now", tailscope_version="t")
    together = _build(pa.concat_tables(list(tables)))
    assert [(r.key, r.count) for r in merged.roots] == [(r.key, r.count) for r in together.roots]
    for m, t in zip(merged.operations, together.operations, strict=True):
        assert m.key == t.key and m.count == t.count
        assert m.histogram.quantiles_ns([0.5, 0.99]) == t.histogram.quantiles_ns([0.5, 0.99])
        assert m.start_unix_nano == t.start_unix_nano and m.end_unix_nano == t.end_unix_nano
    assert merged.spans == tables[0].num_rows + tables[1].num_rows
    assert [m["label"] for m in merged.merged_from] == ["a", "b"]
    # inputs were not modified by merging
    assert first.roots[0].count == 800 and first.roots[0].histogram.count == 800


def _damaged(doc: dict[str, object], **changes: object) -> bytes:
    return orjson.dumps({**doc, **changes})


def test_damaged_files_give_one_clear_error(tables: tuple[pa.Table, pa.Table]) -> None:
    good = orjson.loads(encode_baseline(_build(tables[1])))
    root = good["roots"][0]
    raw = base64.b64decode(root["histogram"])
    truncated = base64.b64encode(raw[: len(raw) // 2]).decode()
    cases: list[tuple[bytes, str]] = [
        (b'{"format": "tailscope-baseline", "roots": [', "invalid JSON"),
        (b'{"resourceSpans": []}', "not a tailscope baseline"),
        (_damaged(good, format_version=99), "format version 99 is newer"),
        (_damaged(good, roots=[{**root, "histogram": "not base64 !!"}]), "does not decode"),
        (_damaged(good, roots=[{**root, "histogram": truncated}]), "does not decode"),
        (_damaged(good, roots=[{**root, "count": root["count"] + 1}]), "but 'count' says"),
        (_damaged(good, roots=[{"service": "web"}]), "lacks 'service' or 'operation'"),
        (_damaged(good, operations="x"), "'operations' must be a list"),
    ]
    for data, expected in cases:
        with pytest.raises(BaselineError, match=expected) as info:
            decode_baseline(data, "b.json")
        message = str(info.value)
        assert message.startswith("b.json: ") and "\n" not in message
