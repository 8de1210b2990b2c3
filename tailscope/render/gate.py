"""Renderers of a :class:`~tailscope.gate.GateVerdict`: text, Markdown, JUnit XML, JSON.

Each renderer takes the verdict and returns the whole document as a string; they are looked up
by name with :func:`render_gate` (an unknown name is a usage error listing the valid ones).
They only draw the verdict: every number was decided by :func:`tailscope.gate.evaluate`.

* text — a fixed-width table for CI logs.
* markdown — a pull-request comment / ``$GITHUB_STEP_SUMMARY`` section.
* junit — one ``<testcase>`` per gated operation (and per ``--fail-on-*`` check) so CI systems
  (GitLab, Jenkins, GitHub test reporters) show regressions natively: a regression is a
  ``<failure>``, an inconclusive operation ``<skipped>`` (a ``<failure>`` under ``--strict``).
* json — the verdict as data, ``"format": "tailscope-gate"``, ``"format_version": 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from itertools import groupby
from typing import Any

from tailscope.errors import UsageError
from tailscope.report.model import GateVerdict, QuantileComparison
from tailscope.types import GATE_FORMATS

GATE_JSON_FORMAT = "tailscope-gate"
GATE_JSON_VERSION = 1

_VERDICT_WORD = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}
_VERDICT_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _signed(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:+.1f}{unit}" if unit == "%" else f"{value:+.2f}{unit}"


def _interval(bounds: tuple[float, float] | None, unit: str) -> str:
    if bounds is None:
        return "–"
    return f"[{_signed(bounds[0], unit)}, {_signed(bounds[1], unit)}]"


def _counts(row: QuantileComparison) -> str:
    return f"{row.baseline_count}/{row.current_count}"


def _header(verdict: GateVerdict) -> list[str]:
    policy = verdict.policy
    allowed = []
    if policy.max_increase_pct is not None:
        allowed.append(f"+{policy.max_increase_pct:g}%")
    if policy.max_increase_ms is not None:
        allowed.append(f"+{policy.max_increase_ms:g} ms")
    base = verdict.baseline_label or "unlabelled"
    return [
        f"baseline: {base} (created {verdict.baseline_created or 'unknown'})",
        f"allowed increase: {' and '.join(allowed)}; confidence {policy.confidence:.0%}; "
        "fails only when the whole interval is beyond the allowance"
        + ("; strict (inconclusive fails)" if policy.strict else ""),
    ]


# --- text -------------------------------------------------------------------------------------
def render_text(verdict: GateVerdict) -> str:
    """Fixed-width table for terminals and CI logs."""
    headers = (
        "operation",
        "q",
        "baseline ms",
        "current ms",
        "change",
        "interval (ms)",
        "interval (%)",
        "n base/cur",
        "verdict",
    )
    table = [
        (
            r.name,
            r.quantile_label,
            _ms(r.baseline_ms),
            _ms(r.current_ms),
            _signed(r.change_pct, "%"),
            _interval(r.interval_ms, ""),
            _interval(r.interval_pct, "%"),
            _counts(r),
            _VERDICT_WORD[r.verdict],
        )
        for r in verdict.rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    numeric = {2, 3, 4, 7}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [f"tailscope gate: {verdict.summary()}", *_header(verdict), ""]
    out.append(line(headers))
    out.append(line(tuple("-" * w for w in widths)))
    out.extend(line(row) for row in table)
    notes = [r for r in verdict.rows if r.verdict != "pass" or "not significant" in r.reason]
    if notes:
        out.append("")
        out.extend(f"{r.name} {r.quantile_label}: {r.verdict}: {r.reason}" for r in notes)
    if verdict.checks:
        out.append("")
        out.extend(
            f"{c.name}: {c.observed} (limit {c.limit}) {_VERDICT_WORD[c.verdict]}"
            + (f" — {c.detail}" if c.detail else "")
            for c in verdict.checks
        )
    return "\n".join(out) + "\n"


# --- markdown ---------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(verdict: GateVerdict) -> str:
    """A pull-request comment: a verdict heading, the table, reasons for anything not passing."""
    icon = _VERDICT_ICON[verdict.verdict]
    out = [
        f"### {icon} tailscope gate: {_VERDICT_WORD[verdict.verdict]}",
        "",
        _md_cell(verdict.summary()),
        "",
        *(f"- {_md_cell(h)}" for h in _header(verdict)),
        "",
        "| operation | q | baseline ms | current ms | change | interval (ms) | interval (%) "
        "| n base/cur | verdict |",
        "|---|---|--:|--:|--:|---|---|--:|---|",
    ]
    for r in verdict.rows:
        out.append(
            "| "
            + " | ".join(
                _md_cell(c)
                for c in (
                    f"`{r.name}`",
                    r.quantile_label,
                    _ms(r.baseline_ms),
                    _ms(r.current_ms),
                    _signed(r.change_pct, "%"),
                    _interval(r.interval_ms, ""),
                    _interval(r.interval_pct, "%"),
                    _counts(r),
                    f"{_VERDICT_ICON[r.verdict]} {_VERDICT_WORD[r.verdict]}",
                )
            )
            + " |"
        )
    notes = [r for r in verdict.rows if r.verdict != "pass"]
    if notes:
        out.append("")
        out.extend(
            f"- `{_md_cell(r.name)}` {r.quantile_label}: **{r.verdict}**: {_md_cell(r.reason)}"
            for r in notes
        )
    if verdict.checks:
        out.append("")
        out.extend(
            f"- {_VERDICT_ICON[c.verdict]} {c.name}: {c.observed} (limit {c.limit})"
            + (f": {_md_cell(c.detail)}" if c.detail else "")
            for c in verdict.checks
        )
    return "\n".join(out) + "\n"


# --- junit ------------------------------------------------------------------------------------
def render_junit(verdict: GateVerdict) -> str:
    """JUnit XML: one test case per gated operation (its quantiles together), one per check."""
    import xml.etree.ElementTree as ET

    strict = verdict.policy.strict
    suites = ET.Element("testsuites", name="tailscope gate")
    suite = ET.SubElement(suites, "testsuite", name="tailscope gate")
    failures = skipped = tests = 0
    for name, group in groupby(verdict.rows, key=lambda r: r.name):
        rows = list(group)
        tests += 1
        case = ET.SubElement(suite, "testcase", classname="tailscope.gate", name=name, time="0")
        failed = [r for r in rows if r.verdict == "fail"]
        unsure = [r for r in rows if r.verdict == "inconclusive"]
        body = "\n".join(_row_text(r) for r in rows)
        if failed or (strict and unsure):
            failures += 1
            bad = failed or unsure
            message = "; ".join(f"{r.quantile_label} {r.verdict}: {r.reason}" for r in bad)
            element = ET.SubElement(case, "failure", message=message, type="regression")
            element.text = body
        elif unsure:
            skipped += 1
            message = "; ".join(f"{r.quantile_label}: {r.reason}" for r in unsure)
            ET.SubElement(case, "skipped", message=message)
            ET.SubElement(case, "system-out").text = body
        else:
            ET.SubElement(case, "system-out").text = body
    for check in verdict.checks:
        tests += 1
        case = ET.SubElement(
            suite, "testcase", classname="tailscope.gate.checks", name=check.name, time="0"
        )
        text = f"{check.name}: {check.observed} (limit {check.limit})" + (
            f"; {check.detail}" if check.detail else ""
        )
        if check.verdict == "fail":
            failures += 1
            ET.SubElement(case, "failure", message=text, type="threshold").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    for element in (suites, suite):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", "0")
    suite.set("skipped", str(skipped))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _row_text(r: QuantileComparison) -> str:
    interval = (
        f"interval {_interval(r.interval_ms, ' ms')} {_interval(r.interval_pct, '%')}"
        if r.interval_ms is not None
        else "no interval"
    )
    return (
        f"{r.quantile_label}: baseline {_ms(r.baseline_ms)} ms, current {_ms(r.current_ms)} ms, "
        f"change {_signed(r.change_pct, '%')}, {interval}, samples {_counts(r)}: "
        f"{r.verdict} ({r.reason})"
    )


# --- json -------------------------------------------------------------------------------------
def gate_to_dict(verdict: GateVerdict) -> dict[str, Any]:
    """The verdict as JSON-ready data (infinite interval bounds become ``null``)."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, tuple | list):
            return [finite(v) for v in value]
        return value

    return {
        "format": GATE_JSON_FORMAT,
        "format_version": GATE_JSON_VERSION,
        "verdict": verdict.verdict,
        "summary": verdict.summary(),
        "baseline": {"label": verdict.baseline_label, "created": verdict.baseline_created},
        "current_label": verdict.current_label,
        "policy": {k: finite(v) for k, v in asdict(verdict.policy).items()},
        "rows": [
            {"quantile_label": r.quantile_label, **{k: finite(v) for k, v in asdict(r).items()}}
            for r in verdict.rows
        ],
        "checks": [asdict(c) for c in verdict.checks],
    }


def render_json(verdict: GateVerdict) -> str:
    """The verdict as indented JSON."""
    import orjson

    return orjson.dumps(gate_to_dict(verdict), option=orjson.OPT_INDENT_2).decode() + "\n"


GATE_RENDERERS: dict[str, Callable[[GateVerdict], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "junit": render_junit,
    "json": render_json,
}
assert set(GATE_RENDERERS) == set(GATE_FORMATS)


def render_gate(verdict: GateVerdict, fmt: str) -> str:
    """Render ``verdict`` with the renderer named ``fmt`` (UsageError listing valid names)."""
    try:
        renderer = GATE_RENDERERS[fmt]
    except KeyError:
        raise UsageError(
            f"unknown gate format {fmt!r}; choose one of {', '.join(GATE_RENDERERS)}"
        ) from None
    return renderer(verdict)
