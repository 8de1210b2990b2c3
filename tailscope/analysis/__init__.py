"""Analyses: pure functions from the span table (polars) to report-model data.

They never print, read files or exit. Each module answers one question.
"""
