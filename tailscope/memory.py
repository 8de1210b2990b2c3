"""Giving freed memory back to the operating system between large steps."""

from __future__ import annotations

import sys


def release_freed_memory() -> None:
    """Hand memory freed by dropped tables and frames back to the OS: Arrow's pool and glibc's
    malloc both keep freed pages for reuse, which the next step (polars, numpy) often cannot
    use, so the process's peak is the sum of the steps' working sets rather than the largest.

    ``malloc_trim`` is looked up among the symbols already loaded into the process
    (``CDLL(None)``): ``ctypes.util.find_library`` would run ``ldconfig -p`` in a subprocess.
    """
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        if trim is not None:  # glibc only (musl has none)
            trim(0)
