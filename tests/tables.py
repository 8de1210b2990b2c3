"""Helpers for comparing span tables in tests."""

from __future__ import annotations

import pyarrow as pa


def plain(table: pa.Table) -> pa.Table:
    """The table with dictionary columns decoded, so equality ignores dictionary layout."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        columns.append(column.combine_chunks())
    return pa.table(columns, names=table.column_names)
