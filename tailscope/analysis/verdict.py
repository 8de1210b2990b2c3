"""The verdict of one entry point: which hop owns its p99 tail, and how much of it is pause.

:func:`root_verdict` decides the ranking status from the bootstrap intervals and writes the one
sentence that every output (text, Markdown, JSON ``roots[].verdict.text``, the TUI overview)
shows first. The sentence is built here and only here, from the report model's numbers:

* below the floor of tail requests: say so, rank nothing;
* ``conclusive``: the top hop's 95 % tail-share interval lies above the next hop's;
* ``ambiguous``: name every hop whose interval overlaps the top hop's;
* always: the share of the tail spent behind detected stop-the-world pauses, with its interval,
  and the paused services (language, number of pauses, their range of durations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from tailscope.report.model import HopRef, PausedService, RootSummary, RootVerdict
from tailscope.report.numbers import share_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tailscope.report.model import HopShare
    from tailscope.types import RankingStatus

MAX_NAMED_SERVICES: Final = 3
"""Paused services named in the sentence (the rest are in ``paused_services``)."""
_COMPONENT_WORDS: Final = {
    "self": "own work",
    "network": "network and queueing",
    "dependency": "uninstrumented dependency",
    "stall": "queued or stretched behind its stop-the-world pauses",
}


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _ref(hop: HopShare) -> HopRef:
    return HopRef(
        hop.hop_service, hop.hop_operation, hop.component, hop.tail_share, hop.tail_share_ci
    )


def hop_phrase(hop: HopRef) -> str:
    """``service operation`` and what the component means, e.g.
    ``inventory Reserve (stall: queued or stretched behind its stop-the-world pauses)``."""
    meaning = _COMPONENT_WORDS[hop.component]
    return f"{hop.hop_service} {hop.hop_operation} ({hop.component}: {meaning})"


def _paused_phrase(service: PausedService) -> str:
    details = [service.language] if service.language else []
    pauses = len(service.stall_ids)
    details.append(f"{pauses} pause{'s' if pauses != 1 else ''}")
    if pauses:
        low, high = _ms(service.min_pause_ms), _ms(service.max_pause_ms)
        details.append(f"{low} ms" if low == high else f"{low}–{high} ms")
    return f"{service.service} ({', '.join(details)})"


def verdict_text(
    summary: RootSummary,
    status: RankingStatus,
    top: HopRef | None,
    indistinct: Sequence[HopRef],
    runner_up: HopRef | None,
    stall_share: tuple[float, tuple[float, float]],
    paused: Sequence[PausedService],
    floor: int,
) -> str:
    """The verdict sentence (see the module docstring)."""
    head = (
        f"p99 {_ms(summary.p99_ms)} ms ({summary.requests:,} requests, "
        f"{summary.tail_requests:,} above p99)."
    )
    if status == "too_few_tail_requests":
        return (
            f"{head} Too few requests above p99 to rank hops (fewer than {floor}); "
            "the shares are shown but are noise."
        )
    if status == "no_hops" or top is None:
        return f"{head} No critical-path time to attribute."
    parts = [head]
    if status == "conclusive":
        after = ""
        if runner_up is not None:
            runner_share = share_text(runner_up.tail_share, runner_up.tail_share_ci)
            after = f", ahead of {hop_phrase(runner_up)} at {runner_share}"
        parts.append(
            f"The tail is owned by {hop_phrase(top)}: "
            f"{share_text(top.tail_share, top.tail_share_ci)} of it{after}."
        )
    else:
        names = "; ".join(
            f"{hop_phrase(h)} {share_text(h.tail_share, h.tail_share_ci)}"
            for h in (top, *indistinct)
        )
        parts.append(f"The top hops cannot be told apart (their 95% intervals overlap): {names}.")
    share, interval = stall_share
    named = [p for p in paused if p.tail_share > 0][:MAX_NAMED_SERVICES]
    if named:
        services = ", ".join(_paused_phrase(p) for p in named[:-1])
        services = (
            f"{services} and {_paused_phrase(named[-1])}" if services else _paused_phrase(named[-1])
        )
        parts.append(
            f"{share_text(share, interval)} of the tail is waiting behind stop-the-world pauses in "
            f"{services}."
        )
    else:
        parts.append("None of the tail is spent behind a detected stop-the-world pause.")
    return " ".join(parts)


def root_verdict(
    summary: RootSummary,
    hops: Sequence[HopShare],
    stall_share: tuple[float, tuple[float, float]],
    paused: tuple[PausedService, ...],
    floor: int,
) -> RootSummary:
    """``summary`` with its :class:`RootVerdict`.

    Args:
        summary: the root's numbers (``inconclusive`` already decided by the floor).
        hops: the root's hop shares, largest tail share first.
        stall_share: tail share of all ``stall`` hops and its bootstrap 95 % interval.
        paused: the paused services on the root's critical paths, largest share first.
        floor: the minimum number of tail requests (for the sentence).
    """
    from dataclasses import replace

    refs = [_ref(h) for h in hops]
    top = refs[0] if refs else None
    indistinct: tuple[HopRef, ...] = ()
    runner_up = refs[1] if len(refs) > 1 else None
    status: RankingStatus
    if summary.inconclusive:
        status = "too_few_tail_requests"
    elif top is None:
        status = "no_hops"
    else:
        indistinct = tuple(h for h in refs[1:] if h.tail_share_ci[1] >= top.tail_share_ci[0])
        status = "ambiguous" if indistinct else "conclusive"
    text = verdict_text(summary, status, top, indistinct, runner_up, stall_share, paused, floor)
    verdict = RootVerdict(
        status=status,
        text=text,
        top=top if status in ("conclusive", "ambiguous") else None,
        indistinct=indistinct,
        stall_tail_share=stall_share[0],
        stall_tail_share_ci=stall_share[1],
        paused_services=paused,
    )
    return replace(summary, verdict=verdict)
