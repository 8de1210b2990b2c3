"""The simulator's invariants, checked on its output (span table + truth), not its internals.

GIVEN a built-in scenario simulated with a fixed seed, THEN: servers lie within their clients
unless the client timed out; no timestamp of an instance falls inside one of its pauses; the
counterfactual run is the same request with pauses switched off (same random draws); the truth
agrees with the spans; the scenarios produce (or, for the negative controls, do not produce)
GC-caused timeouts.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailscope.simulate import BUILTIN_SCENARIOS, Simulation, builtin_scenario, simulate
from tailscope.simulate.pauses import PauseSchedule
from tailscope.simulate.scenario import Distribution, PauseKind, Scenario, scenario_from_mapping

REQUESTS = 800


def _no_pauses(scenario: Scenario) -> Scenario:
    return dataclasses.replace(
        scenario, services=tuple(dataclasses.replace(s, pauses=()) for s in scenario.services)
    )


@pytest.fixture(scope="module")
def cascade() -> Simulation:
    return simulate(builtin_scenario("gc-cascade"), seed=7, requests=REQUESTS, clock_skew_ms=0.0)


@pytest.fixture(scope="module")
def runs() -> dict[str, Simulation]:
    return {
        name: simulate(builtin_scenario(name), seed=3, requests=REQUESTS)
        for name in BUILTIN_SCENARIOS
    }


def _frame(sim: Simulation) -> pl.DataFrame:
    df = pl.from_arrow(sim.table)
    assert isinstance(df, pl.DataFrame)
    offsets = sim.truth["host_offsets_ns"]
    # back to the true clock: exported time minus the host's offset
    offset = pl.col("host_name").cast(pl.String).replace_strict(offsets, return_dtype=pl.Int64)
    # services with a coarse clock report starts floored to their resolution (durations exact)
    name = sim.truth["scenario"]
    services = builtin_scenario(name).services if name in BUILTIN_SCENARIOS else ()
    resolution = {svc.name: int(svc.clock_resolution_ms * 1_000_000) for svc in services}
    return df.with_columns(
        pl.col("service_name")
        .cast(pl.String)
        .replace_strict(resolution, default=0, return_dtype=pl.Int64)
        .alias("resolution"),
        (pl.col("start_unix_nano") - offset).alias("true_start"),
        (pl.col("end_unix_nano") - offset).alias("true_end"),
        offset.alias("offset"),
        pl.col("span_id").bin.encode("hex").alias("span_hex"),
        pl.col("parent_span_id").bin.encode("hex").alias("parent_hex"),
        pl.col("service_instance").cast(pl.String).alias("instance"),
    )


def _timed_out_ids(sim: Simulation) -> set[str]:
    return {t["span_id"] for t in sim.truth["timeouts"]}


@pytest.mark.parametrize("name", BUILTIN_SCENARIOS)
def test_server_span_lies_within_its_client_unless_the_client_timed_out(
    runs: dict[str, Simulation], name: str
) -> None:
    sim = runs[name]
    df = _frame(sim)
    clients = df.filter(pl.col("kind") == 3).select(
        pl.col("span_hex").alias("client"),
        pl.col("true_start").alias("c_start"),
        pl.col("true_end").alias("c_end"),
        pl.col("resolution").alias("c_resolution"),
    )
    servers = df.filter(pl.col("kind") == 2, pl.col("parent_hex").is_not_null())
    pairs = servers.join(clients, left_on="parent_hex", right_on="client", how="inner")
    assert pairs.height == servers.height  # every non-root server has its client in the file
    timed_out = _timed_out_ids(sim)
    normal = pairs.filter(~pl.col("parent_hex").is_in(list(timed_out)))
    assert normal.height > 0
    # a floored start moves a span earlier by less than its clock's resolution
    assert (normal["true_start"] + normal["resolution"] > normal["c_start"]).all()
    assert (normal["true_end"] < normal["c_end"] + normal["c_resolution"]).all()
    outliving = pairs.filter(pl.col("true_end") > pl.col("c_end") + pl.col("c_resolution"))
    assert set(outliving["parent_hex"].to_list()) <= timed_out


def test_children_outlive_timed_out_parents_in_the_cascade(cascade: Simulation) -> None:
    df = _frame(cascade)
    clients = df.filter(pl.col("kind") == 3).select(
        pl.col("span_hex").alias("client"), pl.col("true_end").alias("c_end")
    )
    pairs = df.filter(pl.col("kind") == 2).join(clients, left_on="parent_hex", right_on="client")
    outliving = pairs.filter(pl.col("true_end") > pl.col("c_end")).height
    assert outliving > 10


@pytest.mark.parametrize("name", BUILTIN_SCENARIOS)
def test_no_timestamp_of_an_instance_falls_inside_its_pauses(
    runs: dict[str, Simulation], name: str
) -> None:
    sim = runs[name]
    df = _frame(sim)
    events = (
        df.select("instance", "offset", "events")
        .explode("events")
        .drop_nulls("events")
        .select(
            "instance",
            (pl.col("events").struct.field("time_unix_nano") - pl.col("offset")).alias("t"),
        )
    )
    exact = df.filter(pl.col("resolution") == 0)  # floored starts may land inside a pause
    stamps = pl.concat(
        [
            exact.select("instance", pl.col("true_start").alias("t")),
            exact.select("instance", pl.col("true_end").alias("t")),
            events,
        ]
    )
    pauses = pl.DataFrame(sim.truth["pauses"])
    checked = 0
    for instance, group in pauses.group_by("instance"):
        starts = group["start_unix_nano"].sort().to_numpy()
        ends = group.sort("start_unix_nano")["end_unix_nano"].to_numpy()
        assert (starts[1:] >= ends[:-1]).all()  # pauses of one process never overlap
        t = stamps.filter(pl.col("instance") == instance[0])["t"].to_numpy()
        i = np.searchsorted(starts, t, side="right") - 1
        ok = i >= 0
        inside = np.zeros(len(t), dtype=bool)
        inside[ok] = (t[ok] > starts[i[ok]]) & (t[ok] < ends[i[ok]])
        assert not inside.any(), f"{instance[0]}: {int(inside.sum())} timestamps inside pauses"
        checked += len(t)
    assert checked > 0


def test_stretched_and_queued_spans_match_the_pauses(cascade: Simulation) -> None:
    df = _frame(cascade).select("span_hex", "instance", "true_start", "true_end", "trace_id")
    by_id = {row[0]: row for row in df.iter_rows()}
    long_pauses = 0
    for pause in cascade.truth["pauses"]:
        traces = set()
        for span_hex in pause["stretched_span_ids"]:
            _, instance, start, end, trace = by_id[span_hex]
            assert instance == pause["instance"]
            assert start <= pause["start_unix_nano"] and end >= pause["end_unix_nano"]
            traces.add(trace)
        for span_hex in pause["queued_span_ids"]:
            _, instance, start, _, trace = by_id[span_hex]
            assert instance == pause["instance"] and start == pause["end_unix_nano"]
            traces.add(trace)
        assert pause["requests_touched"] == len(traces)
        if pause["duration_ms"] >= 25 and pause["requests_touched"] >= 3:
            long_pauses += 1
    # the stall detector's recall needs plenty of long, multi-request pauses
    assert long_pauses >= 5


def test_counterfactual_is_the_same_requests_without_pauses(cascade: Simulation) -> None:
    scenario = builtin_scenario("gc-cascade")
    without = simulate(_no_pauses(scenario), seed=7, requests=REQUESTS, clock_skew_ms=0.0)
    real = cascade.truth["trace_outcomes"]
    off = without.truth["trace_outcomes"]
    assert real.keys() == off.keys()
    untouched = 0
    for trace_id, outcome in real.items():
        assert outcome["root_duration_without_pauses_ms"] == off[trace_id]["root_duration_ms"]
        assert outcome["timed_out_without_pauses"] == off[trace_id]["timed_out"]
        assert outcome["gc_caused"] == (outcome["timed_out"] and not off[trace_id]["timed_out"])
        if not outcome["touched_pauses"]:
            untouched += 1
            assert outcome["root_duration_ms"] == outcome["root_duration_without_pauses_ms"]
    assert 0 < untouched < len(real)
    assert without.truth["pauses"] == []
    assert sum(o["gc_caused"] for o in real.values()) >= 10


def test_tiny_pauses_barely_change_any_trace() -> None:
    """Pauses of 1 µs (the shortest the model allows) shift times by at most a few µs."""
    scenario = builtin_scenario("checkout")
    tiny = dataclasses.replace(
        scenario,
        services=tuple(
            dataclasses.replace(s, pauses=(PauseKind("gc-tiny", 20.0, Distribution(0.001, 0.0)),))
            for s in scenario.services
        ),
    )
    sim = simulate(tiny, seed=5, requests=300)
    for outcome in sim.truth["trace_outcomes"].values():
        difference = outcome["root_duration_ms"] - outcome["root_duration_without_pauses_ms"]
        assert 0.0 <= difference <= 0.05
        assert outcome["timed_out"] == outcome["timed_out_without_pauses"]


def test_gc_cascade_timeouts_are_caused_by_pauses_and_retried(cascade: Simulation) -> None:
    truth = cascade.truth
    df = _frame(cascade)
    spans = {row["span_hex"]: row for row in df.iter_rows(named=True)}
    causes = [t["cause"] for t in truth["timeouts"]]
    assert causes.count("pause") >= 0.9 * len(causes) > 0
    by_pause: dict[str, int] = {}
    for timeout in truth["timeouts"]:
        span = spans[timeout["span_id"]]
        assert span["status_code"] == 2 and span["error_type"] is not None
        assert span["rpc_grpc_status_code"] == 4 or span["http_status_code"] == 504
        assert [e["name"] for e in span["events"]] == ["exception"]
        if timeout["cause"] == "pause":
            pause = truth["pauses"][timeout["pause_index"]]
            by_pause[pause["service"]] = by_pause.get(pause["service"], 0) + 1
            # the pause happened while the call was outstanding
            assert pause["start_unix_nano"] < span["true_end"]
            assert pause["end_unix_nano"] > span["true_start"]
    # the JVM service out of heap is the one whose pauses cause the timeouts
    assert by_pause.get("inventory", 0) >= 0.9 * causes.count("pause")
    assert truth["retries"]
    for retry in truth["retries"]:
        span = spans[retry["span_id"]]
        assert span["http_resend_count"] == retry["attempt"] - 1
        previous = spans[retry["retry_of_span_id"]]
        assert previous["parent_hex"] == span["parent_hex"]
        assert previous["true_end"] <= span["true_start"]
        assert previous["span_hex"] in _timed_out_ids(cascade)


def test_negative_controls(runs: dict[str, Simulation]) -> None:
    steady = runs["steady"].truth
    assert max(p["duration_ms"] for p in steady["pauses"]) < 25
    assert len(steady["timeouts"]) <= 0.002 * REQUESTS
    assert not any(o["gc_caused"] for o in steady["trace_outcomes"].values())

    slow = runs["slow-dependency"].truth
    assert max(p["duration_ms"] for p in slow["pauses"]) < 25
    assert len(slow["timeouts"]) >= 20
    assert {t["cause"] for t in slow["timeouts"]} == {"slow_dependency"}
    assert not any(o["gc_caused"] for o in slow["trace_outcomes"].values())


def test_truth_counts_match_the_table(runs: dict[str, Simulation]) -> None:
    for name, sim in runs.items():
        truth = sim.truth
        assert truth["scenario"] == name and truth["tailscope_truth_version"] == 1
        assert truth["spans"] == sim.table.num_rows
        assert truth["traces"] == len(truth["trace_outcomes"]) == REQUESTS
        df = _frame(sim)
        assert df["trace_id"].n_unique() == REQUESTS
        roots = df.filter(pl.col("parent_span_id").is_null())
        assert roots.height == REQUESTS


def test_head_sampling_keeps_whole_traces() -> None:
    scenario = builtin_scenario("checkout")
    full = simulate(scenario, seed=11, requests=1000)
    half = simulate(scenario, seed=11, requests=1000, sampling=0.5)
    kept = half.truth["traces"]
    assert abs(kept - 500) <= 4 * (1000 * 0.25) ** 0.5  # binomial, 4 sigma

    def counts(sim: Simulation) -> dict[bytes, int]:
        df = pl.from_arrow(sim.table)
        assert isinstance(df, pl.DataFrame)
        return dict(df.group_by("trace_id").len().iter_rows())

    full_counts, half_counts = counts(full), counts(half)
    assert all(full_counts[t] == n for t, n in half_counts.items())


def test_clock_skew_shifts_each_host_by_its_offset() -> None:
    scenario = builtin_scenario("checkout")
    true = _frame(simulate(scenario, seed=2, requests=200, clock_skew_ms=0.0))
    skewed_sim = simulate(scenario, seed=2, requests=200, clock_skew_ms=50.0)
    offsets = skewed_sim.truth["host_offsets_ns"]
    assert all(abs(v) <= 50_000_000 for v in offsets.values())
    assert len(set(offsets.values())) == len(offsets) > 1
    skewed = _frame(skewed_sim)
    joined = true.join(skewed, on=["trace_id", "span_id"], suffix="_s")
    shift = joined["start_unix_nano_s"] - joined["start_unix_nano"]
    expected = joined["host_name"].cast(pl.String).replace_strict(offsets, return_dtype=pl.Int64)
    assert (shift == expected).all()
    assert (joined["true_start"] == joined["true_start_s"]).all()


def test_with_work_scaled_slows_exactly_that_operation() -> None:
    base = _no_pauses(builtin_scenario("steady"))
    slower = base.with_work_scaled("pricing", "POST /quote", 1.2)
    a = _frame(simulate(base, seed=4, requests=300))
    b = _frame(simulate(slower, seed=4, requests=300))
    joined = a.join(b, on=["trace_id", "span_id"], suffix="_b")
    quote = joined.filter(pl.col("name").cast(pl.String) == "POST /quote", pl.col("kind") == 2)
    ratio = quote["duration_ns_b"].cast(pl.Float64) / quote["duration_ns"].cast(pl.Float64)
    assert quote.height > 50
    assert np.allclose(ratio.to_numpy(), 1.2, rtol=1e-5)
    others = joined.filter(
        pl.col("service_name").cast(pl.String).is_in(["cart", "inventory", "payments"])
    )
    assert (others["duration_ns"] == others["duration_ns_b"]).all()


def _reference_advance(starts: list[int], ends: list[int], t: int, work: int) -> int:
    """Step through pauses one by one (the obvious, slow way)."""
    for s, e in zip(starts, ends, strict=True):
        if e <= t:
            continue
        if s >= t + work:
            break
        if s <= t:
            t = e
            continue
        work -= s - t
        t = e
    return t + work


def test_pause_schedule_matches_a_step_by_step_reference() -> None:
    kinds = (
        PauseKind("gc-young", 5.0, Distribution(1.0, 0.5)),
        PauseKind("gc-full", 40.0, Distribution(20.0, 0.5)),
    )
    schedule = PauseSchedule(kinds, key=12345)
    schedule.ensure(2_000_000_000)
    starts, ends = list(schedule.starts), list(schedule.ends)
    assert len(starts) > 100
    rng = random.Random(1)
    for _ in range(3000):
        t = rng.randrange(0, 1_500_000_000)
        resumed = schedule.resume(t)
        inside = [e for s, e in zip(starts, ends, strict=True) if s <= t < e]
        assert resumed == (inside[0] if inside else t)
        work = rng.randrange(0, 50_000_000)
        assert schedule.advance(resumed, work) == _reference_advance(starts, ends, resumed, work)
    # lazily extended schedules are prefixes of each other
    other = PauseSchedule(kinds, key=12345)
    other.ensure(500_000_000)
    assert other.starts == starts[: len(other.starts)]


def test_simulation_is_deterministic() -> None:
    scenario = builtin_scenario("gc-cascade")
    a = simulate(scenario, seed=9, requests=200)
    b = simulate(scenario, seed=9, requests=200)
    c = simulate(scenario, seed=10, requests=200)
    assert a.table.equals(b.table) and a.truth == b.truth
    assert not a.table.equals(c.table)


@st.composite
def _random_systems(draw: st.DrawFn) -> dict[str, object]:
    """Small random call graphs (a DAG: service i only calls services after it)."""
    count = draw(st.integers(2, 5))
    runtimes = ["go", "java", "dotnet", "nodejs", "python", "rust"]
    services: dict[str, object] = {}
    for i in range(count):
        steps: list[object] = []
        for _ in range(draw(st.integers(0, 3)) if i < count - 1 else 0):
            callee = f"s{draw(st.integers(i + 1, count - 1))}"
            call = {
                "service": callee,
                "operation": "GET /x",
                "timeout_ms": draw(st.sampled_from([None, 5.0, 40.0])),
                "retries": draw(st.integers(0, 2)),
                "backoff_ms": 2.0,
            }
            leaf = draw(
                st.sampled_from(
                    [
                        {"call": call},
                        {"dependency": {"name": "db", "timeout_ms": 3.0, "retries": 1}},
                        {"publish": {"topic": "t", "service": callee, "operation": "GET /x"}},
                    ]
                )
            )
            steps.append({"parallel": [leaf, {"call": call}]} if draw(st.booleans()) else leaf)
        services[f"s{i}"] = {
            "runtime": draw(st.sampled_from(runtimes)),
            "protocol": draw(st.sampled_from(["http", "grpc"])),
            "instances": draw(st.integers(1, 3)),
            "hosts": ["h1", "h2"],
            "pauses": {"gc-x": {"every_ms": 20.0, "duration": {"median_ms": 4.0, "sigma": 1.0}}},
            "operations": {"GET /x": {"work": {"median_ms": 1.0, "sigma": 0.8}, "steps": steps}},
        }
    return {
        "name": "random",
        "arrival": {"rate_per_s": 500.0},
        "clock_offsets_ms": {"h1": 5.0, "h2": -5.0},
        "entries": [{"service": "s0", "operation": "GET /x"}],
        "services": services,
        "dependencies": {"db": {"type": "db", "latency": {"median_ms": 1.0, "sigma": 1.0}}},
    }


@settings(max_examples=12, deadline=None)
@given(_random_systems(), st.integers(0, 1000))
def test_invariants_hold_for_random_systems(system: dict[str, object], seed: int) -> None:
    sim = simulate(scenario_from_mapping(system), seed=seed, requests=60)
    df = _frame(sim)
    # server within client unless the client timed out
    clients = df.filter(pl.col("kind") == 3).select(
        pl.col("span_hex").alias("client"),
        pl.col("true_start").alias("c_start"),
        pl.col("true_end").alias("c_end"),
    )
    pairs = df.filter(pl.col("kind") == 2, pl.col("parent_hex").is_not_null()).join(
        clients, left_on="parent_hex", right_on="client"
    )
    normal = pairs.filter(~pl.col("parent_hex").is_in(list(_timed_out_ids(sim))))
    assert (normal["true_start"] > normal["c_start"]).all()
    assert (normal["true_end"] < normal["c_end"]).all()
    # no timestamp inside a pause of its own instance
    for pause in sim.truth["pauses"]:
        mine = df.filter(pl.col("instance") == pause["instance"])
        for column in ("true_start", "true_end"):
            inside = (mine[column] > pause["start_unix_nano"]) & (
                mine[column] < pause["end_unix_nano"]
            )
            assert not inside.any()
    # counterfactual consistency
    for outcome in sim.truth["trace_outcomes"].values():
        if not outcome["touched_pauses"]:
            assert outcome["root_duration_ms"] == outcome["root_duration_without_pauses_ms"]
            assert outcome["timed_out"] == outcome["timed_out_without_pauses"]


def test_a_failed_call_fails_its_caller_without_looking_like_a_timeout() -> None:
    """a → b → c where c always takes 50 ms and b gives up after 5 ms: only b's call times
    out (cause slow_work); b answers 500, so a's call fails with 500, not with a timeout."""
    system = {
        "name": "chain",
        "entries": [{"service": "a", "operation": "GET /a"}],
        "services": {
            "a": {
                "runtime": "rust",
                "operations": {
                    "GET /a": {
                        "work": {"median_ms": 1.0},
                        "steps": [{"call": {"service": "b", "operation": "GET /b"}}],
                    }
                },
            },
            "b": {
                "runtime": "rust",
                "operations": {
                    "GET /b": {
                        "work": {"median_ms": 1.0},
                        "steps": [
                            {"call": {"service": "c", "operation": "GET /c", "timeout_ms": 5}},
                            {"call": {"service": "c", "operation": "GET /c"}},
                        ],
                    }
                },
            },
            "c": {"runtime": "rust", "operations": {"GET /c": {"work": {"median_ms": 50.0}}}},
        },
    }
    sim = simulate(scenario_from_mapping(system), seed=1, requests=5)
    df = _frame(sim)
    clients = df.filter(pl.col("kind") == 3).sort("true_start")
    servers = df.filter(pl.col("kind") == 2)
    by_service = {
        service: group for (service,), group in clients.group_by(pl.col("service_name").cast(str))
    }
    assert by_service["b"]["http_status_code"].to_list() == [504] * 5
    assert by_service["b"]["error_type"].cast(pl.String).to_list() == ["timeout"] * 5
    assert by_service["a"]["http_status_code"].to_list() == [500] * 5
    assert by_service["a"]["error_type"].cast(pl.String).to_list() == ["500"] * 5
    assert (servers.filter(pl.col("service_name") != "c")["status_code"] == 2).all()
    assert (servers.filter(pl.col("service_name") == "c")["status_code"] == 0).all()
    # the second call to c was never made: b failed fast
    assert servers.filter(pl.col("service_name") == "c").height == 5
    timeouts = sim.truth["timeouts"]
    assert len(timeouts) == 5 and {t["cause"] for t in timeouts} == {"slow_work"}
    assert {t["caller_service"] for t in timeouts} == {"b"}
    assert sim.truth["retries"] == []


def test_own_work_is_spent_in_full_around_the_steps() -> None:
    """Constant times, pauses off: a server span lasts its own work plus its calls, exactly."""
    call = {"call": {"service": "b", "operation": "GET /b"}}
    system = {
        "name": "sum",
        "network": {"median_ms": 0.25},
        "entries": [{"service": "a", "operation": "GET /a"}],
        "services": {
            "a": {
                "runtime": "rust",
                "operations": {
                    "GET /a": {
                        "work": {"median_ms": 4.0},
                        "steps": [call, {"dependency": {"name": "db"}}, {"parallel": [call, call]}],
                    }
                },
            },
            "b": {"runtime": "rust", "operations": {"GET /b": {"work": {"median_ms": 10.0}}}},
        },
        "dependencies": {"db": {"type": "db", "latency": {"median_ms": 3.0}}},
    }
    sim = simulate(scenario_from_mapping(system), seed=1, requests=20)
    df = _frame(sim)
    roots = df.filter(pl.col("parent_span_id").is_null())["duration_ns"].to_numpy()
    # 4 ms own work + (10 + 2 x 0.25) + (3 + 2 x 0.25) + (10 + 2 x 0.25) = 28.5 ms; ns rounding
    assert np.all(np.abs(roots - 28_500_000) <= 10)
    b_servers = df.filter(pl.col("service_name") == "b", pl.col("kind") == 2)["duration_ns"]
    assert (b_servers == 10_000_000).all() and b_servers.len() == 60
