"""Silence candidates found per (instance, hour) with boundary summaries and stitched
(tailscope.analysis.hourly_silences, the Spark engine's stage 3) equal the whole-input ones of
the detector, for any cut of time into "hours": 1, 3 and 7 per input and 100 ms ones (silences
straddling a boundary, instances whose first timestamps lie hours back). No Spark needed."""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest
from repo_paths import CORPUS, FIXTURES

from tailscope.analysis._stall_common import instance_timestamps, narrow
from tailscope.analysis.hourly_silences import (
    RECENT_TIMESTAMPS,
    hour_boundaries,
    hour_stamps,
    hour_summary,
    hourly_parts,
    hourly_silences,
)
from tailscope.analysis.pipeline import prepare_spans
from tailscope.analysis.stalls import COMPONENT_GAP_NS, MIN_HISTORY, _gaps, _silences
from tailscope.ingest import read_spans

INPUTS = [
    FIXTURES / "gc-cascade.jsonl.gz",
    CORPUS / "otlp" / "nezha-onlineboutique-2022-08-23-17_00.jsonl.gz",
]


@cache
def _stamps(path: str) -> pl.DataFrame:
    narrowed = narrow(prepare_spans(read_spans([path])).spans)
    return instance_timestamps(narrowed)


def _comparable(candidates: pl.DataFrame) -> pl.DataFrame:
    return candidates.with_columns(pl.col("instance").cast(pl.String)).sort("instance", "a")


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
@pytest.mark.parametrize("cuts", [1, 3, 7, "100ms"])
def test_hourly_candidates_equal_the_whole_input_ones(path: object, cuts: int | str) -> None:
    # GIVEN an input's timestamps and the detector's candidate windows over all of them
    stamps = _stamps(str(path))
    want = _silences(_gaps(stamps))
    first, last = int(stamps["t"].min()), int(stamps["t"].max())  # type: ignore[arg-type]
    hour_ns = 100_000_000 if cuts == "100ms" else (last - first) // int(cuts) + 1
    rows = stamps.with_columns(pl.col("instance").cast(pl.String))
    # WHEN time is cut into hours of hour_ns from the first timestamp on, each (instance, hour)
    # scanned alone with its boundary summary, and the parts stitched
    shifted = rows.with_columns(pl.col("t") - first)
    got = hourly_silences(shifted, hour_ns).with_columns(pl.col("a", "b") + first)
    got = got.with_columns(pl.col("first_resume", "core_a", "core_b") + first)
    # THEN the candidates are the whole input's, window for window, numbered the same
    assert want.height > 10
    assert _comparable(got).equals(_comparable(want))
    assert got["cid"].to_list() == want["cid"].to_list()
    if cuts == "100ms":
        hour = (want["a"] - first) // hour_ns
        assert ((want["b"] - first) // hour_ns != hour).any()  # silences straddling a boundary


def test_boundary_summary_reaches_back_over_sparse_hours() -> None:
    # GIVEN an instance with 3 timestamps an hour for 20 hours, and one busy hour after them
    hour_ns = 1_000
    times = [h * hour_ns + k * 100 for h in range(20) for k in range(3)]
    times += [20 * hour_ns + k for k in range(50)]
    rows = pl.DataFrame(
        {"instance": "i", "t": times, "starts": [1] * len(times)},
        schema={"instance": pl.String, "t": pl.Int64, "starts": pl.Int32},
    )
    groups = [
        hour_summary(hour_stamps(g.drop("hour")), int(h))
        for (_, h), g in rows.with_columns(hour=pl.col("t") // hour_ns).group_by("instance", "hour")
    ]
    # WHEN the boundaries are derived from the hour summaries
    boundaries = hour_boundaries(pl.concat(groups)).sort("hour")
    # THEN the busy hour sees the last RECENT_TIMESTAMPS timestamps, from 11 hours back, the
    # requests started before it, the whole range, and the hours before MIN_HISTORY too
    busy = boundaries.row(20, named=True)
    assert busy["previous"] == times[60 - RECENT_TIMESTAMPS : 60]
    assert busy["before_starts"] == 60 and busy["next"] is None
    assert (busy["first"], busy["last"], busy["n"]) == (0, times[-1], len(times))
    assert boundaries.row(1, named=True)["previous"] == times[:3]
    assert boundaries.row(1, named=True)["next"] == 2 * hour_ns
    assert MIN_HISTORY < RECENT_TIMESTAMPS


@pytest.mark.parametrize("cuts", [3, "100ms"])
def test_hourly_parts_are_the_whole_input_gaps(cuts: int | str) -> None:
    # GIVEN the detector's gaps of at least 5 ms over the whole input
    stamps = _stamps(str(INPUTS[0]))
    want = _gaps(stamps).filter(pl.col("gap") >= COMPONENT_GAP_NS)
    first, last = int(stamps["t"].min()), int(stamps["t"].max())  # type: ignore[arg-type]
    hour_ns = 100_000_000 if cuts == "100ms" else (last - first) // int(cuts) + 1
    rows = stamps.with_columns(pl.col("instance").cast(pl.String), pl.col("t") - first)
    # WHEN each (instance, hour) gives its own with its boundary summary
    got, _ = hourly_parts(rows, hour_ns)
    got = got.with_columns(pl.col("t", "b") + first)
    # THEN they are the same gaps, mean intervals, surprises and request counts
    columns = list(got.columns)
    key = ["instance", "t"]
    assert _sorted(got, key).equals(_sorted(want.select(columns).cast(got.schema), key))


def _sorted(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    return frame.with_columns(pl.col("instance").cast(pl.String)).sort(key)
