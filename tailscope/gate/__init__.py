"""CI gating on tail-latency regressions: baseline files and ``evaluate(...)`` verdicts.

* :mod:`tailscope.gate.baseline` — per-operation HdrHistograms of a run, as a portable,
  mergeable JSON file.
* :mod:`tailscope.gate.intervals` — distribution-free order-statistic confidence intervals for a
  quantile, from raw samples or from histogram counts.
* :mod:`tailscope.gate.evaluate` — the decision: fail only when the whole confidence interval of
  the quantile change lies beyond the allowed increase.

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
    QuantileComparison,
    ThresholdCheck,
    evaluate,
    minimum_samples,
    quantile_label,
    threshold_check,
)
from tailscope.gate.intervals import (
    QuantileInterval,
    RankInterval,
    order_statistic_ranks,
    quantile_interval_from_histogram,
    quantile_interval_from_samples,
)

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_FORMAT_VERSION",
    "Baseline",
    "GatePolicy",
    "GateVerdict",
    "OperationHistogram",
    "QuantileComparison",
    "QuantileInterval",
    "RankInterval",
    "ThresholdCheck",
    "build_baseline",
    "decode_baseline",
    "encode_baseline",
    "evaluate",
    "merge_baselines",
    "minimum_samples",
    "order_statistic_ranks",
    "quantile_interval_from_histogram",
    "quantile_interval_from_samples",
    "quantile_label",
    "threshold_check",
]
