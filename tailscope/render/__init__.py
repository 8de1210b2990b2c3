"""Report renderers: one :class:`Renderer` protocol, found by name with :func:`get_renderer`.

``text`` draws rich tables for a terminal, ``markdown`` pipe tables for a pull-request comment,
``json`` the versioned document of :mod:`tailscope.report.codec`. Renderers only draw a
:class:`~tailscope.report.model.Report`; they never recompute analytics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tailscope.errors import UsageError
from tailscope.render.sections import DEFAULT_TOP
from tailscope.report.model import Report
from tailscope.types import REPORT_FORMATS


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How much to show and how."""

    top: int = DEFAULT_TOP
    """Rows per table (roots, hops per root, operations, stalls ...)."""
    color: bool = False
    """Terminal colours (text renderer only)."""
    width: int = 120
    """Terminal width in columns (text renderer only)."""


class Renderer(Protocol):
    """Turns a report into text."""

    name: str

    def render(self, report: Report, options: RenderOptions) -> str:
        """The whole report as one string (ends with a newline)."""
        ...


def get_renderer(name: str) -> Renderer:
    """The renderer called ``name``; an unknown name is a UsageError listing the valid ones."""
    from tailscope.render.json import JsonRenderer
    from tailscope.render.markdown import MarkdownRenderer
    from tailscope.render.text import TextRenderer

    renderers: dict[str, Renderer] = {
        "text": TextRenderer(),
        "json": JsonRenderer(),
        "markdown": MarkdownRenderer(),
    }
    assert set(renderers) == set(REPORT_FORMATS)
    try:
        return renderers[name]
    except KeyError:
        raise UsageError(
            f"unknown report format {name!r}; choose one of {', '.join(REPORT_FORMATS)}"
        ) from None


__all__ = ["RenderOptions", "Renderer", "get_renderer"]
