"""Gate renderers: every format shows every row with its verdict; JUnit is valid XML with one test
case per operation; JSON round-trips; an unknown format lists the valid ones."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import orjson
import pytest

from tailscope.errors import UsageError
from tailscope.gate import (
    Baseline,
    GatePolicy,
    GateVerdict,
    OperationHistogram,
    evaluate,
    threshold_check,
)
from tailscope.histogram import LatencyHistogram
from tailscope.render.gate import GATE_RENDERERS, render_gate


def _series(operation: str, median_ms: float, n: int, seed: int) -> OperationHistogram:
    rng = np.random.default_rng(seed)
    durations = (rng.lognormal(np.log(median_ms * 1e6), 0.4, n)).astype(np.int64)
    return OperationHistogram(
        service="shop",
        operation=operation,
        kind=None,
        count=n,
        start_unix_nano=0,
        end_unix_nano=1,
        histogram=LatencyHistogram.from_durations_ns(durations),
    )


def _baseline(*roots: OperationHistogram) -> Baseline:
    return Baseline(
        label="abc123",
        created="2026-11-29T00:00:00Z",
        tailscope_version="test",
        spans=sum(r.count for r in roots),
        traces=sum(r.count for r in roots),
        roots=roots,
        operations=(),
    )


@pytest.fixture(scope="module")
def verdict() -> GateVerdict:
    # GIVEN three root operations: unchanged, 50 % slower, and one with too few samples now
    baseline = _baseline(
        _series("GET /a", 10, 5000, 1),
        _series("GET /b|pipe", 10, 5000, 2),
        _series("GET /c", 10, 5000, 3),
    )
    current = _baseline(
        _series("GET /a", 10, 5000, 4),
        _series("GET /b|pipe", 15, 5000, 5),
        _series("GET /c", 10, 100, 6),
    )
    policy = GatePolicy(quantiles=(0.5, 0.99), max_increase_pct=10.0)
    return evaluate(current, baseline, policy, (threshold_check("stalls", 2, 0, "longest 310 ms"),))


def test_decisions_behind_the_renderings(verdict: GateVerdict) -> None:
    by_name = {(r.name, r.quantile_label): r.verdict for r in verdict.rows}
    assert by_name == {
        ("shop/GET /a", "p50"): "pass",
        ("shop/GET /a", "p99"): "pass",
        ("shop/GET /b|pipe", "p50"): "fail",
        ("shop/GET /b|pipe", "p99"): "fail",
        ("shop/GET /c", "p50"): "pass",  # 100 samples are plenty for a median
        ("shop/GET /c", "p99"): "inconclusive",
    }
    assert verdict.verdict == "fail"


def test_text_and_markdown_show_every_row(verdict: GateVerdict) -> None:
    text = render_gate(verdict, "text")
    assert text.startswith("tailscope gate: FAIL")
    assert text.count("shop/GET /b|pipe") >= 3  # two rows and the reason lines
    assert "stalls: 2 (limit 0) FAIL — longest 310 ms" in text
    markdown = render_gate(verdict, "markdown")
    table = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(table) == 6
    # a pipe inside an operation name is escaped so the table keeps its columns
    assert all(line.count(" | ") == 8 for line in table)
    assert "### ❌ tailscope gate: FAIL" in markdown


def test_junit_one_case_per_operation(verdict: GateVerdict) -> None:
    root = ET.fromstring(render_gate(verdict, "junit"))
    suite = root.find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["shop/GET /a", "shop/GET /b|pipe", "shop/GET /c", "stalls"]
    assert cases["shop/GET /a"].find("failure") is None
    failure = cases["shop/GET /b|pipe"].find("failure")
    assert failure is not None and "p50 fail" in failure.get("message", "")
    assert cases["shop/GET /c"].find("skipped") is not None
    assert cases["stalls"].find("failure") is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")


def test_junit_strict_turns_inconclusive_into_failure(verdict: GateVerdict) -> None:
    from dataclasses import replace

    strict = replace(verdict, policy=replace(verdict.policy, strict=True))
    suite = ET.fromstring(render_gate(strict, "junit")).find("testsuite")
    assert suite is not None
    case = next(c for c in suite.findall("testcase") if c.get("name") == "shop/GET /c")
    assert case.find("failure") is not None and case.find("skipped") is None


def test_json_carries_the_numbers(verdict: GateVerdict) -> None:
    doc = orjson.loads(render_gate(verdict, "json"))
    assert doc["format"] == "tailscope-gate" and doc["verdict"] == "fail"
    assert len(doc["rows"]) == 6
    slow = next(r for r in doc["rows"] if r["name"] == "shop/GET /b|pipe" and r["quantile"] == 0.5)
    # lognormal medians 10 ms -> 15 ms: +50 % within the histogram's resolution and sampling noise
    assert slow["change_pct"] == pytest.approx(50.0, abs=3.0)
    assert slow["interval_pct"][0] > 10.0
    assert slow["interval_pct"][0] <= slow["change_pct"] <= slow["interval_pct"][1]
    assert doc["checks"][0]["name"] == "stalls"


def test_unknown_format_lists_valid_names(verdict: GateVerdict) -> None:
    with pytest.raises(UsageError) as info:
        render_gate(verdict, "html")
    for name in GATE_RENDERERS:
        assert name in str(info.value)
