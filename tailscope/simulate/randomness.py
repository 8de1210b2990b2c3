"""Addressable randomness: every draw is a pure function of (key, index).

The counterfactual ("the same request with pauses switched off") must see *identical* random
draws even though a different run may take other branches (fewer retries, say). A sequential
generator cannot promise that: one extra draw shifts all later ones. So each place that draws
(a request, an operation execution, a call attempt) owns a 64-bit key derived from its parent's
key and its position in the call graph, and its draws are ``uniform(key, 0)``,
``uniform(key, 1)`` ... (a SplitMix64 hash: counter-based, no state). Same position, same draws,
whatever happened elsewhere.
"""

from __future__ import annotations

import math

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_STREAM = 0xD1B54A32D192ED03
_TWO_PI = 2.0 * math.pi


def mix64(value: int) -> int:
    """The SplitMix64 finaliser: a bijective, well-mixing hash of a 64-bit integer."""
    z = (value + _GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def child_key(key: int, position: int) -> int:
    """The key of the ``position``-th child of ``key`` (independent of its siblings)."""
    return mix64(key ^ mix64(position * _STREAM & MASK64))


def uniform(key: int, index: int) -> float:
    """Draw number ``index`` of ``key``: uniform in [0, 1)."""
    return (mix64((key + index * _STREAM) & MASK64) >> 11) * (1.0 / 9007199254740992.0)


def standard_normal(key: int, index: int) -> float:
    """A standard normal draw from draws ``index`` and ``index + 1`` (Box-Muller)."""
    u1 = 1.0 - uniform(key, index)
    u2 = uniform(key, index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


def exponential(key: int, index: int, mean: float) -> float:
    """An exponential draw with the given mean."""
    return -math.log(1.0 - uniform(key, index)) * mean
