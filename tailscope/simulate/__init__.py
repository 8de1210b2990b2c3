"""The trace simulator behind ``tailscope generate``: realistic traces with known causes.

Contract (shared with the stall detector, the gate and the analyses)::

    sc = builtin_scenario("gc-cascade")          # or load_scenario("my.toml")
    sim = simulate(sc, seed=1, requests=2000)    # or duration_s=...
    sim.table   # pa.Table of exactly SPAN_SCHEMA, timestamps as exported (skewed, sampled)
    sim.truth   # the truth.json object (pauses, timeouts, retries, trace outcomes)

The truth's times are Unix ns in the *true* clock; spans carry their host's skewed clock
(``truth["host_offsets_ns"]`` maps one to the other). See ``docs/scenarios.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailscope.errors import UsageError
from tailscope.simulate.builtin import BUILTIN_SCENARIOS, builtin_scenario
from tailscope.simulate.scenario import Scenario, scenario_from_mapping

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BUILTIN_SCENARIOS",
    "Scenario",
    "Simulation",
    "builtin_scenario",
    "load_scenario",
    "resolve_scenario",
    "simulate",
]


@dataclass(frozen=True, slots=True)
class Simulation:
    """An in-memory simulation: the exported span table and its ground truth."""

    table: pa.Table
    truth: dict[str, Any]


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (``.toml``, ``.yaml``/``.yml``; JSON is valid YAML).

    Raises:
        UsageError: unreadable file, bad syntax, or an invalid key (named by its path).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read scenario file {file}: {exc}") from None
    data: Any
    if file.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{file}: not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "syntax error"
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise UsageError(f"{file}: not valid YAML: {problem}{where}") from None
    try:
        return scenario_from_mapping(data, default_name=file.stem)
    except UsageError as exc:
        raise UsageError(f"{file}: {exc}") from None


def resolve_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario name, or the path of a scenario file."""
    if name_or_path in BUILTIN_SCENARIOS:
        return builtin_scenario(name_or_path)
    if Path(name_or_path).suffix.lower() in (".toml", ".yaml", ".yml", ".json"):
        return load_scenario(name_or_path)
    raise UsageError(
        f"unknown scenario {name_or_path!r}: give a scenario file (.toml/.yaml) or one of "
        f"{', '.join(BUILTIN_SCENARIOS)}"
    )


def simulate(
    scenario: Scenario,
    *,
    seed: int,
    requests: int | None = None,
    duration_s: float | None = None,
    spans: int | None = None,
    clock_skew_ms: float | None = None,
    sampling: float | None = None,
) -> Simulation:
    """Simulate ``scenario`` in memory.

    Args:
        scenario: what to simulate (:func:`builtin_scenario`, :func:`load_scenario`).
        seed: the whole output is a function of (scenario, seed, options).
        requests: how many requests arrive (sampled-out ones count).
        duration_s: simulate arrivals for this many seconds instead (or as well: first limit).
        spans: stop once this many spans were produced (the trace that crosses it is kept).
        clock_skew_ms: None keeps the scenario's per-host offsets; X draws each host's offset
            uniformly in ±X ms.
        sampling: None keeps the scenario's head-sampling rate; else keep this fraction of
            traces (whole traces).

    Raises:
        UsageError: no size given, or an option out of range.
    """
    import pyarrow as pa

    from tailscope.schema import empty_table
    from tailscope.simulate.engine import Engine
    from tailscope.simulate.export import table_from_traces
    from tailscope.simulate.run import RunSize, TruthRecorder, host_offsets_ns, iter_batches

    rate = scenario.sampling if sampling is None else sampling
    if requests is None and duration_s is None and spans is None:
        duration_s = scenario.duration_s
    engine = Engine(scenario, seed)
    offsets = host_offsets_ns(scenario, seed, clock_skew_ms)
    recorder = TruthRecorder(engine, seed, rate, offsets)
    tables = []
    for batch in iter_batches(engine, RunSize(requests, duration_s, spans), rate):
        recorder.add(batch)
        tables.append(table_from_traces(batch, offsets))
    if not tables:
        return Simulation(empty_table(), recorder.truth())
    table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
    return Simulation(table, recorder.truth())
