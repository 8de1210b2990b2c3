"""The Textual app behind ``tailscope tui``: the only package that imports textual.

It draws a :class:`tailscope.tui.data.TriageData` (report, skew-adjusted spans, critical-path
segments, gate verdict) and never recomputes analytics; :mod:`tailscope.tui.load` builds that
object in a worker thread. Import :class:`tailscope.tui.app.TriageApp` to run it.
"""
