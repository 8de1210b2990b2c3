"""The ``markdown`` renderer: GitHub-flavoured pipe tables, sized for a pull-request comment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailscope.render.sections import Section, all_sections, summary_lines, verdict_lines
from tailscope.report.model import Report

if TYPE_CHECKING:
    from tailscope.render import RenderOptions


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_markdown(section: Section) -> str:
    """One section as a level-3 heading and a pipe table (or its ``empty`` line)."""
    lines = [f"### {_cell(section.title)}", ""]
    if section.rows:
        lines.append("| " + " | ".join(_cell(c) for c in section.columns) + " |")
        lines.append("|" + "|".join("---" for _ in section.columns) + "|")
        lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows)
    else:
        lines.append(f"_{section.empty}_")
    if section.note:
        lines.extend(["", f"_{_cell(section.note)}_"])
    return "\n".join(lines)


class MarkdownRenderer:
    name = "markdown"

    def render(self, report: Report, options: RenderOptions) -> str:
        parts = [
            f"## tailscope analyze ({report.tailscope_version})",
            "",
            *(f"**Verdict** {_cell(line)}" + "\n" for line in verdict_lines(report, options.top)),
            *(f"- {line}" for line in summary_lines(report)),
        ]
        parts.extend(
            ["", *(section_markdown(sec) + "\n" for sec in all_sections(report, options.top))]
        )
        return "\n".join(parts).rstrip() + "\n"
