"""Deterministic parquet files written in fixed row groups, whole or streamed.

Event traces (one row per event, thousands per trial), a long run's summary and a sweep's
combined summary can be far larger than memory, so they are streamed to disk in batches. A
file's bytes must not depend on how the rows arrived (one frame, or batches cut by realization
blocks, ranges or job count), so rows are regrouped into row groups of exactly
``ROW_GROUP_ROWS`` (the last one shorter) whatever the batches, each written as one chunk.
``write_parquet`` goes through the same writer, so a frame written whole and the same rows
streamed give the same bytes. Files are created exclusively: a stream never follows or
overwrites something already at its path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .scratch import create_exclusive

#: Rows per row group: bounds what a stream holds before writing (about 10 MB of events).
ROW_GROUP_ROWS = 1 << 18
COMPRESSION = "zstd"


_ARROW_TYPES = {"str": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
                "bool": pa.bool_()}  # fmt: skip


def schema_of(columns: dict[str, str]) -> pa.Schema:
    """The arrow schema of a table given as {column: dtype} (runner.SUMMARY_COLUMNS...)."""
    return pa.schema([(name, _ARROW_TYPES[dtype]) for name, dtype in columns.items()])


class ParquetStream:
    """Append pandas frames with the schema's columns; ``close`` writes the rest (an empty
    table if no row came). The file must not exist yet."""

    def __init__(self, path: Path, schema: pa.Schema, rows_per_group: int | None = None):
        self.path = Path(path)
        self.schema = schema
        self.rows_per_group = rows_per_group or ROW_GROUP_ROWS
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.file = create_exclusive(self.path)
        try:
            self.writer = pq.ParquetWriter(self.file, self.schema, compression=COMPRESSION)
        except BaseException:
            self.file.close()
            raise

    def append(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self.pending.append(table.replace_schema_metadata(None))
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        while self.pending_rows >= self.rows_per_group:
            self._write(self.rows_per_group)

    def close(self) -> None:
        try:
            if self.pending_rows:
                self._write(self.pending_rows)
            if self.rows == 0:
                self.writer.write_table(self.schema.empty_table())
            self.writer.close()
        finally:
            self.file.close()

    def _write(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)
        # One chunk per column: the writer cuts data pages at chunk boundaries, so a group
        # written from the batches as they came would encode differently for other batches.
        self.writer.write_table(table.slice(0, rows).combine_chunks(), row_group_size=rows)
        rest = table.slice(rows)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows


def write_parquet(frame: pd.DataFrame, path: Path, columns: dict[str, str] | None = None) -> None:
    """Deterministic parquet: same rows, same bytes (no pandas index, fixed row groups). The
    schema comes from ``columns`` ({column: dtype}) when given, else from the frame."""
    if columns is not None:
        schema = schema_of(columns)
    else:
        schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
    stream = ParquetStream(path, schema)
    stream.append(frame)
    stream.close()
