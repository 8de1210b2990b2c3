"""A rich progress bar on stderr for slow inputs; nothing when piped, under CI or with --quiet.

The bar appears only once an input has taken more than a second, so small files never flash
one. rich is imported lazily to keep ``tailscope --help`` fast.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tailscope.ingest.model import ProgressSink

SHOW_AFTER_S = 1.0
"""An input must take this long (seconds) before the bar is drawn."""


def progress_enabled(quiet: bool) -> bool:
    """Only for a human watching: stderr is a terminal, not CI, not --quiet."""
    if quiet or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()


class RichProgress(ProgressSink):
    """Draws one bar per input (bytes read of total bytes) once it is slower than a second."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._description = ""
        self._total: int | None = None
        self._done = 0
        self._started = 0.0

    def start(self, description: str, total_bytes: int | None) -> None:
        self._description = description
        self._total = total_bytes
        self._done = 0
        self._started = time.monotonic()
        self._task = None

    def advance(self, n_bytes: int) -> None:
        self._done += n_bytes
        if self._task is None:
            if time.monotonic() - self._started < SHOW_AFTER_S:
                return
            self._open_task()
        if self._progress is not None:
            self._progress.update(self._task, completed=self._done)

    def _open_task(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        name = self._description if len(self._description) <= 40 else "…" + self._description[-39:]
        self._task = self._progress.add_task(name, total=self._total, completed=self._done)

    def finish(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._total or self._done)
            self._progress.remove_task(self._task)
        self._task = None

    def close(self) -> None:
        """Stop drawing (restores the terminal line)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
