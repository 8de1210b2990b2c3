"""The ``json`` renderer: the versioned report document (``docs/report-schema.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailscope.report.codec import report_to_json
from tailscope.report.model import Report

if TYPE_CHECKING:
    from tailscope.render import RenderOptions


class JsonRenderer:
    """Every section in full (``top`` does not apply: machines read everything)."""

    name = "json"

    def render(self, report: Report, options: RenderOptions) -> str:
        return report_to_json(report).decode() + "\n"
