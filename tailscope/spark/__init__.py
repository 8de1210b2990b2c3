"""Scale-out engine: ``tailscope analyze DIR --engine spark`` runs the engine-neutral kernels of
:mod:`tailscope.analysis.kernels` on a Spark cluster over a Parquet span dataset and builds the
same report as the single-machine run. PySpark is optional (``pip install 'tailscope[spark]'``)
and imported only when the engine runs."""

from tailscope.spark.engine import SparkOptions, check_java, run_spark

__all__ = ["SparkOptions", "check_java", "run_spark"]
