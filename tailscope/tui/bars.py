"""Text graphics for the TUI: share bars with confidence intervals, quantile ladders, stall
timelines and waterfall bars, drawn as rich ``Text`` so they fit in table cells and panels.

Pure functions of the model and a width in cells; colours come in as a :class:`Palette` taken
from the app's current Textual theme, so light and dark themes both read well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from tailscope.report.model import OperationStats
from tailscope.tui.data import WaterfallSpan

EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclass(frozen=True, slots=True)
class Palette:
    """Colours (any rich colour text) for the graphics."""

    accent: str = "cyan"
    critical: str = "magenta"
    stall: str = "red"
    warning: str = "yellow"
    muted: str = "grey50"


def format_ms(ms: float) -> str:
    """A latency in ms with sensible precision (``0.42``, ``12.3``, ``1,204``)."""
    if math.isnan(ms):
        return "–"
    if abs(ms) >= 1000:
        return f"{ms:,.0f}"
    if abs(ms) >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def format_percent(fraction: float) -> str:
    """``0.4231`` as ``42.3%``."""
    if math.isnan(fraction):
        return "–"
    return f"{fraction * 100:.1f}%"


def horizontal_bar(fraction: float, width: int) -> str:
    """A bar ``width`` cells wide filled to ``fraction`` (0..1) with eighth-cell resolution."""
    fraction = min(max(fraction, 0.0), 1.0) if not math.isnan(fraction) else 0.0
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    bar = "█" * full + (EIGHTHS[rest] if rest else "")
    return bar.ljust(width)


def share_bar(
    share: float, interval: tuple[float, float], width: int, palette: Palette, dim: bool = False
) -> Text:
    """A share (0..1 of the whole) as a bar, its 95 % interval drawn as ``├──┤`` behind it.

    Negative shares (a hop that is *faster* in the tail) draw an empty bar; the number says so.
    """
    width = max(width, 4)
    cells = [" "] * width
    low, high = (min(max(v, 0.0), 1.0) for v in interval)
    if not (math.isnan(low) or math.isnan(high)) and high > low:
        a, b = round(low * (width - 1)), round(high * (width - 1))
        for i in range(a, b + 1):
            cells[i] = "─"
        cells[a], cells[b] = "├", "┤"
        if a == b:
            cells[a] = "┼"
    bar = horizontal_bar(share, width)
    text = Text()
    style = palette.muted if dim else palette.accent
    for cell_bar, cell_ci in zip(bar, cells, strict=True):
        if cell_bar != " ":
            text.append(cell_bar, style=style)
        else:
            text.append(cell_ci, style=palette.muted)
    return text


def quantile_ladder(op: OperationStats, width: int, palette: Palette) -> Text:
    """p50 … max of one operation as bars on one shared (linear) scale, one line each."""
    rows = [
        ("p50", op.p50_ms),
        ("p90", op.p90_ms),
        ("p99", op.p99_ms),
        ("p99.9", op.p999_ms),
        ("max", op.max_ms),
    ]
    top = max((ms for _, ms in rows), default=0.0) or 1.0
    bar_width = max(width - 18, 4)
    text = Text()
    for i, (label, ms) in enumerate(rows):
        style = palette.warning if label in ("p99", "p99.9") else palette.accent
        text.append(f"{label:>5} ")
        text.append(horizontal_bar(ms / top, bar_width), style=style)
        text.append(f" {format_ms(ms):>9} ms")
        if i < len(rows) - 1:
            text.append("\n")
    return text


def timeline(
    windows: Sequence[tuple[int, int]], start: int, end: int, width: int, palette: Palette
) -> Text:
    """A time axis ``width`` cells wide from ``start`` to ``end`` (ns) with the ``windows``
    marked; a window shorter than one cell still takes one cell so no stall disappears."""
    width = max(width, 1)
    span = max(end - start, 1)
    cells = ["·"] * width
    for w_start, w_end in windows:
        a = int((w_start - start) / span * width)
        b = math.ceil((w_end - start) / span * width)
        a = min(max(a, 0), width - 1)
        b = min(max(b, a + 1), width)
        for i in range(a, b):
            cells[i] = "█"
    text = Text()
    for cell in cells:
        text.append(cell, style=palette.stall if cell == "█" else palette.muted)
    return text


def waterfall_bar(span: WaterfallSpan, start: int, end: int, width: int, palette: Palette) -> Text:
    """One span's bar on the trace's time axis: the span as ``━`` (``█`` where it is on the
    critical path), stall windows overlaid as ``▓``, outside the span blank."""
    width = max(width, 1)
    total = max(end - start, 1)

    def cell_of(t: int) -> float:
        return (t - start) / total * width

    a = min(int(cell_of(span.start_unix_nano)), width - 1)
    b = max(min(math.ceil(cell_of(span.end_unix_nano)), width), a + 1)
    kinds = [""] * width
    for i in range(a, b):
        kinds[i] = "span"
    for seg_start, seg_end in span.critical_segments:
        sa = min(max(int(cell_of(seg_start)), a), b - 1)
        sb = max(min(math.ceil(cell_of(seg_end)), b), sa + 1)
        for i in range(sa, sb):
            kinds[i] = "critical"
    for _, w_start, w_end in span.stall_windows:
        wa = min(max(int(cell_of(w_start)), a), b - 1)
        wb = max(min(math.ceil(cell_of(w_end)), b), wa + 1)
        for i in range(wa, wb):
            kinds[i] = "stall"
    text = Text()
    glyph = {"": " ", "span": "━", "critical": "█", "stall": "▓"}
    style = {"": "", "span": palette.accent, "critical": palette.critical, "stall": palette.stall}
    for kind in kinds:
        text.append(glyph[kind], style=style[kind])
    return text
