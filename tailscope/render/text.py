"""The ``text`` renderer: rich tables for a terminal, most important first."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from tailscope.render.sections import Section, all_sections, summary_lines, verdict_lines
from tailscope.report.model import Report

if TYPE_CHECKING:
    from rich.console import Console

    from tailscope.render import RenderOptions

_NUMERIC_HINTS = ("ms", "count", "requests", "errors", "on path", "share", "spans", "timeouts")


def _draw(console: Console, section: Section) -> None:
    from rich.table import Table

    if not section.rows:
        console.print(f"[bold]{section.title}[/bold]: {section.empty}", highlight=False)
        console.print()
        return
    table = Table(title=section.title, title_justify="left", title_style="bold", expand=False)
    for column in section.columns:
        numeric = any(h in column for h in _NUMERIC_HINTS)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in section.rows:
        table.add_row(*row)
    console.print(table)
    if section.note:
        console.print(f"  {section.note}", style="dim", highlight=False)
    console.print()


class TextRenderer:
    name = "text"

    def render(self, report: Report, options: RenderOptions) -> str:
        from rich.console import Console
        from rich.markup import escape

        buffer = io.StringIO()
        console = Console(
            file=buffer,
            width=options.width,
            force_terminal=options.color,
            no_color=not options.color,
            color_system="auto" if options.color else None,
            highlight=False,
        )
        console.print(f"[bold]tailscope analyze[/bold] {report.tailscope_version}")
        for line in verdict_lines(report, options.top):
            console.print(f"[bold]Verdict[/bold] {escape(line)}", highlight=False)
        for line in summary_lines(report):
            console.print(line, highlight=False)
        console.print()
        for section in all_sections(report, options.top):
            _draw(console, section)
        return buffer.getvalue()
