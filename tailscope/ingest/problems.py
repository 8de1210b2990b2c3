"""Where readers report bad records: counted and kept in the stats, or raised under ``strict``.

One :class:`ProblemLog` per input file, so every problem carries its file; readers pass the
line (or byte offset) and a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailscope.errors import InputError
from tailscope.ingest.model import IngestStats, Problem


@dataclass(slots=True)
class ProblemLog:
    """Skip-and-count (default) or fail-fast (``strict``) handling of bad records of one file."""

    stats: IngestStats
    file: str
    strict: bool = False

    def bad(
        self,
        line: int | None,
        reason_class: str,
        detail: str | None = None,
        offset: int | None = None,
    ) -> None:
        """One bad record at ``line`` (or byte ``offset``): count it, or raise under strict."""
        problem = Problem(self.file, line, detail or reason_class, offset)
        if self.strict:
            raise InputError(f"{problem.location()}: {problem.reason} (--strict)")
        self.stats.skip(problem, reason_class)


Held = tuple[int | None, str, str | None, int | None]
"""One held-back problem: (line, reason class, detail, byte offset)."""


class HeldLog(ProblemLog):
    """A log that holds problems back instead of counting them, for readers that work ahead
    of what they report (``take`` them, then :func:`replay` them into the real log at the
    right moment). With ``own_stats`` the record counts are kept apart too."""

    def __init__(self, target: ProblemLog, own_stats: bool = False) -> None:
        super().__init__(IngestStats() if own_stats else target.stats, target.file, False)
        self.held: list[Held] = []

    def bad(
        self,
        line: int | None,
        reason_class: str,
        detail: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.held.append((line, reason_class, detail, offset))

    def take(self) -> list[Held]:
        """The problems held since the last call."""
        held, self.held = self.held, []
        return held

    def replay_into(self, log: ProblemLog) -> None:
        """Pass everything held on to ``log`` (which may raise under ``strict``): the
        problems, and with ``own_stats`` the record counts too."""
        if self.stats is not log.stats:
            log.stats.records += self.stats.records
            log.stats.unknown_service_resources += self.stats.unknown_service_resources
            log.stats.non_trace_lines += self.stats.non_trace_lines
        replay(self.take(), log)


def replay(held: list[Held], log: ProblemLog) -> None:
    """Report held problems to ``log`` in order (which may raise under ``strict``)."""
    for line, reason_class, detail, offset in held:
        log.bad(line, reason_class, detail, offset)
