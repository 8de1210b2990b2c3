"""Shares and changes read the same in every output, and never as ``-0``."""

from __future__ import annotations

import math

import pytest

from tailscope.report.numbers import share_text, signed_percent, whole_percent


@pytest.mark.parametrize(
    ("fraction", "want"),
    [(0.4249, "42"), (0.425, "42"), (0.4251, "43"), (-0.004, "0"), (-0.006, "-1"), (1.2, "120")],
)
def test_whole_percent_rounds_half_to_even_and_drops_the_minus_of_zero(
    fraction: float, want: str
) -> None:
    assert whole_percent(fraction) == want


def test_share_text() -> None:
    assert share_text(0.873, (0.804, 0.9316)) == "87% [80, 93]"
    assert share_text(-0.0004, (-0.003, 0.002)) == "0% [0, 0]"
    assert share_text(0.05, (0.01, 0.09), width=3) == "  5% [1, 9]"
    assert share_text(math.nan, (math.nan, math.nan)) == "–"
    assert share_text(0.5, (math.nan, 0.6)) == "50% [?]"


def test_signed_percent() -> None:
    assert signed_percent(12.345) == "+12.3%"
    assert signed_percent(-0.04) == "+0.0%"
    assert signed_percent(-0.06) == "-0.1%"
    assert signed_percent(None) == "n/a"
    assert signed_percent(None, missing="–") == "–"
