"""Option vocabularies as ``Literal`` aliases, in one place (CLI, analysis, renderers)."""

from __future__ import annotations

from typing import Literal, get_args

InputFormat = Literal["auto", "otlp-json", "otlp-proto", "parquet", "arrow", "jaeger", "zipkin"]
"""Input formats the readers understand. ``auto`` sniffs the content."""

ReportFormat = Literal["text", "json", "markdown"]
"""Report renderers, looked up by name in :mod:`tailscope.render`."""

GateFormat = Literal["text", "json", "markdown", "junit"]
"""Gate verdict renderers."""

HopComponent = Literal["self", "network", "dependency", "stall"]
"""What a critical-path segment is: own work, network/queue, an uninstrumented dependency, or
time behind a detected stop-the-world stall of the instance that served it."""

RankingStatus = Literal["conclusive", "ambiguous", "too_few_tail_requests", "no_hops"]
"""Whether a root operation's top hop is told apart from the next one by their 95 % intervals
(``ambiguous``: the intervals overlap), or there is not enough to rank at all."""

DEFAULT_MIN_TAIL_REQUESTS = 10
"""Floor of requests above p99 below which a root's hops are not ranked (CLI and analysis)."""

DEFAULT_LARGE_TRACE_SPANS = 100_000
"""Span count above which ``--engine spark`` analyses a trace in its separate large-trace pass
(CLI and engine)."""

StallKind = Literal["process", "host"]
"""A stall of one process, or of every instance on a host."""

Verdict = Literal["pass", "fail", "inconclusive"]
"""Outcome of gating one operation."""

OutputFormat = Literal["otlp-json", "otlp-proto", "parquet"]
"""What ``tailscope generate`` writes."""

INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)
GATE_FORMATS: tuple[str, ...] = get_args(GateFormat)

Engine = Literal["local", "spark"]
"""Where ``analyze`` runs: this process, or a Spark cluster (docs/scale-out.md)."""
ENGINES: tuple[str, ...] = get_args(Engine)
