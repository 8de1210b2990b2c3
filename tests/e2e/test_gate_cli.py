"""``tailscope baseline`` and ``tailscope gate`` end to end, in a subprocess, with exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
from repo_paths import GATE_SCENARIO as _GATE_SCENARIO

from tailscope.gate import build_baseline, encode_baseline
from tailscope.ingest.arrow_io import write_table
from tailscope.simulate import load_scenario, simulate

SCENARIO = _GATE_SCENARIO
ROOT = "web/GET /search"


def _tailscope(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Parquet span tables: two runs of the same system, one with the bottleneck 20 % slower,
    and one too small for a p99 interval."""
    folder = tmp_path_factory.mktemp("gate")
    scenario = load_scenario(SCENARIO)
    plans = {
        "base": (scenario, 61, 5000),
        "same": (scenario, 62, 2000),
        "slow": (scenario.with_work_scaled("search", "Search", 1.2), 63, 5000),
        "small": (scenario, 64, 200),
    }
    out = {}
    for name, (sc, seed, requests) in plans.items():
        out[name] = folder / f"{name}.parquet"
        write_table(simulate(sc, seed=seed, requests=requests).table, out[name])
    baseline = folder / "baseline.json"
    made = _tailscope("baseline", out["base"], "-o", baseline, "--label", "abc123", "-q")
    assert made.returncode == 0, made.stderr
    out["baseline"] = baseline
    return out


def test_same_system_passes_exit_0(runs: dict[str, Path]) -> None:
    done = _tailscope("gate", runs["same"], "--baseline", runs["baseline"], "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tailscope gate: PASS")
    assert ROOT in done.stdout and "abc123" in done.stdout


def test_regression_exit_1_names_root_in_every_format(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    junit = tmp_path / "gate.xml"
    done = _tailscope(
        "gate", runs["slow"], "-b", runs["baseline"], "--max-increase-pct", "5",
        "--format", "junit", "-o", junit, "-q",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    # THEN exit 1, one error line naming the regressed root operation
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and ROOT in done.stderr
    assert "Traceback" not in done.stderr
    # the text table still goes to stdout
    assert "FAIL" in done.stdout and ROOT in done.stdout
    # JUnit parses: one test case per gated operation, the failure on the root operation
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [ROOT]
    assert cases[0].find("failure") is not None
    assert suite.get("failures") == "1" and suite.get("tests") == "1"
    # Markdown appended to $GITHUB_STEP_SUMMARY after what was there
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "### ❌ tailscope gate: FAIL" in text and f"`{ROOT}`" in text


def test_json_output_and_inconclusive(runs: dict[str, Path]) -> None:
    done = _tailscope("gate", runs["small"], "-b", runs["baseline"], "--format", "json", "-q")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["format"] == "tailscope-gate" and doc["verdict"] == "inconclusive"
    [row] = doc["rows"]
    assert row["name"] == ROOT and row["verdict"] == "inconclusive"
    assert row["current_count"] == 200 and row["interval_ms"] is None
    strict = _tailscope("gate", runs["small"], "-b", runs["baseline"], "--strict", "-q")
    assert strict.returncode == 1


def test_corrupted_or_mismatched_baseline_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    good = orjson.loads(runs["baseline"].read_bytes())
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(runs["baseline"].read_bytes()[:500])
    other = tmp_path / "other.json"
    for entry in good["roots"]:
        entry["service"] = "elsewhere"
    other.write_bytes(orjson.dumps(good))
    cases = [
        (corrupt, "not a tailscope baseline (invalid JSON"),
        (other, "baseline does not match the input"),
        (tmp_path / "missing.json", "baseline file not found"),
    ]
    for path, expected in cases:
        done = _tailscope("gate", runs["same"], "-b", path, "-q")
        assert done.returncode == 2, (path, done.stderr)
        assert done.stderr.startswith("tailscope: error: ") and expected in done.stderr
        assert done.stderr.count("\n") == 1


def test_merge_adds_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    second = tmp_path / "second.json"
    merged = tmp_path / "merged.json"
    assert _tailscope("baseline", runs["same"], "-o", second, "-q").returncode == 0
    done = _tailscope("baseline", "merge", runs["baseline"], second, "-o", merged, "--label", "m")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(merged.read_bytes())
    assert doc["label"] == "m" and [m["label"] for m in doc["merged_from"]] == ["abc123", None]
    assert [(r["service"], r["operation"], r["count"]) for r in doc["roots"]] == [
        ("web", "GET /search", 7_000)
    ]
    # a usage error: merge of nothing
    assert _tailscope("baseline", "merge").returncode == 2


def test_fail_on_stalls_and_cascades_use_the_stall_detector(tmp_path: Path) -> None:
    from tailscope.analysis.pipeline import analyze
    from tailscope.ingest.model import IngestResult, IngestStats
    from tailscope.simulate import builtin_scenario

    # GIVEN a JVM service whose full GCs cascade into timeouts, and a baseline of the same run
    table = simulate(builtin_scenario("gc-cascade"), seed=5, requests=600).table
    traces = tmp_path / "gc.parquet"
    write_table(table, traces)
    baseline = tmp_path / "gc.json"
    summary = build_baseline(table, label=None, created="t", tailscope_version="test")
    baseline.write_bytes(encode_baseline(summary))
    # the reference: what 'tailscope analyze' reports for the same spans
    report = analyze(IngestResult(table, IngestStats())).report
    stalls, cascades = report.stalls, report.cascades
    assert stalls and cascades  # the scenario's pauses are there to be found
    # WHEN gated with no stall allowed THEN the latency rows pass but the gate fails on stalls
    done = _tailscope(
        "gate", traces, "-b", baseline, "--fail-on-stalls", "0",
        "--fail-on-cascades", str(len(cascades)), "--format", "json", "-q",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = orjson.loads(done.stdout)
    assert {r["verdict"] for r in doc["rows"]} == {"pass"}
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["stalls"]["observed"] == len(stalls) and checks["stalls"]["verdict"] == "fail"
    assert checks["cascades"]["observed"] == len(cascades)
    assert checks["cascades"]["verdict"] == "pass"
    assert "stalls" in done.stderr
    # AND with a limit at the observed count it passes
    relaxed = _tailscope("gate", traces, "-b", baseline, "--fail-on-stalls", str(len(stalls)), "-q")
    assert relaxed.returncode == 0, relaxed.stderr
