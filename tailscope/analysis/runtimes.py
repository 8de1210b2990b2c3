"""Tail latency compared across runtimes. (Being built: returns nothing yet.)"""

from __future__ import annotations

import polars as pl

from tailscope.report.model import RuntimeSummary, Stall


def compare_runtimes(spans: pl.DataFrame, stalls: tuple[Stall, ...]) -> tuple[RuntimeSummary, ...]:
    """Per-runtime latency of SERVER spans' self time, with stall rates."""
    del spans, stalls
    return ()
