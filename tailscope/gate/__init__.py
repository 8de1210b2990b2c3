"""CI gating on tail-latency regressions: baseline files and ``evaluate(...)`` verdicts.

* :mod:`tailscope.gate.baseline` — per-operation HdrHistograms of a run, as a portable,
  mergeable JSON file.
* :mod:`tailscope.gate.intervals` — Harrell–Davis quantile estimates with Maritz–Jarrett
  standard errors, and distribution-free order-statistic intervals (the sample-size floor), from
  raw samples or from histogram counts.
* :mod:`tailscope.gate.evaluate` — the decision: fail only when the whole confidence interval of
  the quantile change lies beyond the allowed increase.
* :mod:`tailscope.gate.run` — :func:`gate`, the one entry point of the CLI and the TUI.

Pure library code: no printing, no files, no exits (the CLI does that).
"""

from tailscope.gate.baseline import (
    BASELINE_FORMAT,
    BASELINE_FORMAT_VERSION,
    Baseline,
    OperationHistogram,
    build_baseline,
    decode_baseline,
    encode_baseline,
    merge_baselines,
)
from tailscope.gate.evaluate import (
    GatePolicy,
    GateVerdict,
    QuantileChange,
    QuantileComparison,
    ThresholdCheck,
    evaluate,
    minimum_samples,
    quantile_change,
    quantile_label,
    threshold_check,
)
from tailscope.gate.intervals import (
    QuantileEstimate,
    QuantileInterval,
    RankInterval,
    harrell_davis,
    harrell_davis_from_histogram,
    order_statistic_ranks,
    quantile_interval_from_histogram,
    quantile_interval_from_samples,
)
from tailscope.gate.run import gate

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_FORMAT_VERSION",
    "Baseline",
    "GatePolicy",
    "GateVerdict",
    "OperationHistogram",
    "QuantileChange",
    "QuantileComparison",
    "QuantileEstimate",
    "QuantileInterval",
    "RankInterval",
    "ThresholdCheck",
    "build_baseline",
    "decode_baseline",
    "encode_baseline",
    "evaluate",
    "gate",
    "harrell_davis",
    "harrell_davis_from_histogram",
    "merge_baselines",
    "minimum_samples",
    "order_statistic_ranks",
    "quantile_change",
    "quantile_interval_from_histogram",
    "quantile_interval_from_samples",
    "quantile_label",
    "threshold_check",
]
