"""How each screen of ``tailscope tui`` looks, as SVG snapshots at a fixed 100x30 terminal.

Data: the hand-built case of test_tui_sample (fixed ids and times, no clock, no randomness).
Update deliberately with ``pytest tests/e2e/test_tui_snapshots.py --snapshot-update`` and review
the SVGs (``tests/e2e/__snapshots__/test_tui_snapshots/``) before committing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_tui_sample import sample_triage

from tailscope.tui.app import TriageApp

SIZE = (100, 30)
SnapCompare = Callable[..., bool]


def app(with_verdict: bool = False) -> TriageApp:
    return TriageApp(data=sample_triage(with_verdict))


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("overview", ()),
        ("overview_filtered", ("slash", *"checkout", "enter", "down")),
        ("hops", ("2",)),
        ("stalls", ("3",)),
        ("trace", ("4", "down", "down", "down")),
        ("runtimes", ("5",)),
        ("help", ("question_mark",)),
        ("exemplars", ("2", "enter", "enter")),
    ],
)
def test_screen_snapshot(snap_compare: SnapCompare, name: str, keys: tuple[str, ...]) -> None:
    del name  # part of the snapshot's file name
    assert snap_compare(app(), press=keys, terminal_size=SIZE)


def test_overview_snapshot_at_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(app(), terminal_size=(80, 24))


def test_trace_snapshot_wide(snap_compare: SnapCompare) -> None:
    """From 130 columns on, the span detail sits beside the waterfall."""
    assert snap_compare(app(), press=("4",), terminal_size=(140, 30))


def test_light_theme_snapshot(snap_compare: SnapCompare) -> None:
    light = app()
    light.theme = "textual-light"
    assert snap_compare(light, press=("2",), terminal_size=SIZE)


def test_compare_snapshot(snap_compare: SnapCompare) -> None:
    assert snap_compare(app(with_verdict=True), press=("6",), terminal_size=SIZE)
