"""How numbers read in every output (text, Markdown, TUI, verdict sentences): one place, so the
same share never prints two ways."""

from __future__ import annotations

import math


def whole_percent(fraction: float) -> str:
    """``0.4249`` -> ``42``; never ``-0`` (a share of ``-0.001`` is ``0``)."""
    return f"{round(fraction * 100) + 0:d}"


def share_text(fraction: float, interval: tuple[float, float], width: int = 0) -> str:
    """``42% [35, 49]``: a share and its interval in whole percent; ``–`` when undefined.
    ``width`` right-aligns the share's digits (columns of shares line up)."""
    if math.isnan(fraction):
        return "–"
    low, high = interval
    bounds = "?" if math.isnan(low) or math.isnan(high) else None
    if bounds is None:
        bounds = f"{whole_percent(low)}, {whole_percent(high)}"
    return f"{whole_percent(fraction):>{width}}% [{bounds}]"


def signed_percent(value: float | None, missing: str = "n/a") -> str:
    """A change in percent with its sign (``+12.5%``, never ``-0.0%``); ``missing`` when there
    is none."""
    return missing if value is None else f"{round(value, 1) + 0.0:+.1f}%"
