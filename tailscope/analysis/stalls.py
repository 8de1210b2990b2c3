"""Stop-the-world stall detection per process. (Being built: returns no stalls yet.)"""

from __future__ import annotations

import polars as pl

from tailscope.report.model import Stall


def detect_stalls(spans: pl.DataFrame) -> tuple[Stall, ...]:
    """Stalls found in ``spans`` (a span table as a polars DataFrame)."""
    del spans
    return ()
