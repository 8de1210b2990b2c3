"""Report model and its JSON codec (``docs/report-schema.md``)."""

from tailscope.report.model import (
    SCHEMA_VERSION,
    Cascade,
    HopShare,
    InputSummary,
    OperationStats,
    ProblemEntry,
    Report,
    RootSummary,
    RuntimeSummary,
    Stall,
    UnexplainedTimeout,
)

__all__ = [
    "SCHEMA_VERSION",
    "Cascade",
    "HopShare",
    "InputSummary",
    "OperationStats",
    "ProblemEntry",
    "Report",
    "RootSummary",
    "RuntimeSummary",
    "Stall",
    "UnexplainedTimeout",
]
