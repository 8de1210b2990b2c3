"""What every reader returns: the span table plus an honest account of what was skipped.

Nothing is lost silently: each skipped record is counted under a reason, and the first few
problems keep their file and line (or byte offset) so reports can say exactly where.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

MAX_PROBLEMS_KEPT = 20
"""How many individual problems (file, line, reason) are kept; all are still counted."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One skipped record: where it was and why it was skipped."""

    file: str
    line: int | None
    """1-based line number for line-oriented inputs, else None (see ``offset``)."""
    reason: str
    """One line, e.g. ``truncated line``, ``not JSON: ...``, ``end before start``."""
    offset: int | None = None
    """Byte offset for binary inputs (protobuf frames, gzip)."""

    def location(self) -> str:
        """``file:line`` or ``file@offset`` or ``file``."""
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.offset is not None:
            return f"{self.file}@{self.offset}"
        return self.file


@dataclass(slots=True)
class IngestStats:
    """Mutable counters filled while reading; frozen into the report at the end."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    """Span objects seen (before dropping bad ones and duplicates)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Skipped records by reason class (``not JSON``, ``missing span id`` ...)."""
    problems: list[Problem] = field(default_factory=list)
    duplicates_dropped: int = 0
    non_trace_lines: int = 0
    """Metric and log lines in mixed collector exports: skipped quietly, not bad records."""
    unknown_service_resources: int = 0
    """Resources without ``service.name`` (named ``unknown_service``)."""

    @property
    def skipped_records(self) -> int:
        return sum(self.skipped.values())

    def skip(self, problem: Problem, reason_class: str | None = None) -> None:
        """Count one skipped record and keep its problem if there is room."""
        self.skipped[reason_class or problem.reason] += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)

    def merge(self, other: IngestStats) -> None:
        self.files.extend(other.files)
        self.records += other.records
        self.skipped.update(other.skipped)
        room = MAX_PROBLEMS_KEPT - len(self.problems)
        if room > 0:
            self.problems.extend(other.problems[:room])
        self.duplicates_dropped += other.duplicates_dropped
        self.non_trace_lines += other.non_trace_lines
        self.unknown_service_resources += other.unknown_service_resources


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The span table (exactly ``SPAN_SCHEMA``, duplicates dropped) and what reading it cost."""

    table: pa.Table
    stats: IngestStats


class ProgressSink:
    """Where readers report progress (bytes). The default does nothing; the CLI passes a rich
    progress bar when stderr is a terminal. Readers call ``start`` once per input, ``advance``
    as bytes are consumed, and ``finish`` at the end of the input."""

    def start(self, description: str, total_bytes: int | None) -> None:
        """A new input of ``total_bytes`` (None when unknown, e.g. stdin) begins."""

    def advance(self, n_bytes: int) -> None:
        """``n_bytes`` more of the current input were consumed."""

    def finish(self) -> None:
        """The current input is done."""
