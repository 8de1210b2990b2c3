"""What a ``tailscope`` process does not import: pandas, unless PySpark asks for it.

No command uses pandas, yet pyarrow imports it the first time it converts to numpy or checks
whether a value is a pandas object (``Array.to_numpy``, ``pa.scalar``, ``pa.array`` of a list):
0.15-0.3 s of CPU per process (0.15 s in an A/B of ``analyze`` at 50k spans). pyarrow treats
a failed import as "no pandas" and carries on with the same results, so the console script
installs :class:`PandasKeptOut` before any command runs.

PySpark (``analyze --engine spark``) does use pandas: once ``pyspark`` is imported, pandas
imports as usual. In-process callers of :func:`tailscope.cli.main` (tests, embedding programs)
are not affected; only :func:`tailscope.cli.run` installs the hook.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

KEPT_OUT = "pandas"
"""The module kept out of a tailscope process."""

ALLOWED_AFTER = "pyspark"
"""Once this package is imported, :data:`KEPT_OUT` imports as usual (PySpark needs it)."""


class PandasKeptOut:
    """Import hook (``sys.meta_path``) that makes ``import pandas`` raise ImportError until
    PySpark is imported."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == KEPT_OUT and ALLOWED_AFTER not in sys.modules:
            raise ModuleNotFoundError(f"{KEPT_OUT} is kept out of tailscope processes", name=name)
        return None


def keep_pandas_out() -> None:
    """Install :class:`PandasKeptOut` first on ``sys.meta_path`` (once; a no-op when pandas is
    already imported)."""
    if KEPT_OUT in sys.modules or any(isinstance(f, PandasKeptOut) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, PandasKeptOut())
