"""tailscope: which hop owns the p99 tail, and did a stop-the-world pause start it.

The package is layered so data flows one way:
ingest -> Arrow span table (:mod:`tailscope.schema`) -> analysis (polars, pure)
-> report model (:mod:`tailscope.report`) -> renderers / TUI / gate -> CLI exit code.
"""

__version__ = "0.1.0"
