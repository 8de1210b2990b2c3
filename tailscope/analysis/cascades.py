"""Timeout -> retry cascades caused by stalls. (Being built: returns nothing yet.)"""

from __future__ import annotations

import polars as pl

from tailscope.report.model import Cascade, Stall, UnexplainedTimeout


def find_cascades(
    spans: pl.DataFrame, stalls: tuple[Stall, ...]
) -> tuple[tuple[Cascade, ...], tuple[UnexplainedTimeout, ...]]:
    """Cascades linked to ``stalls`` and timeouts that no stall explains."""
    del spans, stalls
    return (), ()
