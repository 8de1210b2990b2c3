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
