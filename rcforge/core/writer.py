"""Writing tables as Parquet parts, atomically, against a declared schema.

`PartWriter` buffers rows, converts each batch to an Arrow table against the schema (a row that does not fit
the schema fails here, loudly), and rolls over to a new ``part-NNNNN.parquet`` every ``rows_per_part`` rows.
Each part is written under a temporary name and renamed when complete, so a crash never leaves a truncated part
under a final name.
"""

from __future__ import annotations

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from rcforge.core import fsio


class PartWriter:
    def __init__(self, directory: str, schema: pa.Schema, *, rows_per_part: int = 20000, batch_rows: int = 1000,
                 prefix: str = "part", compression: str = "zstd"):
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.batch_rows = min(batch_rows, rows_per_part)
        self.prefix = prefix
        self.compression = compression
        self.fs, self._dir = fsspec.core.url_to_fs(directory)
        self.fs.makedirs(self._dir, exist_ok=True)
        self._buffer: list[dict] = []
        self._tables: list[pa.Table] = []  # rows of `write_table` waiting for a whole row group
        self._table_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._handle = None
        self._tmp = self._final = None
        self._rows_in_part = 0
        self.parts: list[str] = []
        self.rows = 0

    def clear_existing(self) -> None:
        """Remove parts (and leftover temporaries) of an earlier run in this folder."""
        for path in self.fs.glob(fsio.join(self._dir, f"{self.prefix}-*.parquet")) + \
                self.fs.glob(fsio.join(self._dir, f".tmp-{self.prefix}-*")):
            self.fs.rm(path)

    def write(self, row: dict) -> None:
        if self._tables:
            self._flush_tables(final=True)
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._buffer = self._buffer, []
        while rows:
            if self._writer is None:
                self._open()
            room = self.rows_per_part - self._rows_in_part
            chunk, rows = rows[:room], rows[room:]
            table = pa.Table.from_pylist(chunk, schema=self.schema)
            self._writer.write_table(table)
            self._rows_in_part += len(chunk)
            self.rows += len(chunk)
            if self._rows_in_part >= self.rows_per_part:
                self._close_part()

    def write_table(self, table: pa.Table) -> None:
        """Write a table already built against the schema (a reader's batch). Rows wait until ``batch_rows`` of
        them make a row group, so a part's row groups have one size whatever the size of the tables written."""
        if self._buffer:
            self._flush()
        table = table.cast(self.schema) if table.schema != self.schema else table
        if table.num_rows:
            self._tables.append(table)
            self._table_rows += table.num_rows
        if self._table_rows >= self.batch_rows:
            self._flush_tables(final=False)

    def _flush_tables(self, final: bool) -> None:
        pending = pa.concat_tables(self._tables) if len(self._tables) > 1 else self._tables[0]
        full = pending.num_rows if final else pending.num_rows - pending.num_rows % self.batch_rows
        offset = 0
        while offset < full:
            if self._writer is None:
                self._open()
            room = min(self.rows_per_part - self._rows_in_part, self.batch_rows, full - offset)
            chunk = pending.slice(offset, room)
            self._writer.write_table(chunk)
            offset += chunk.num_rows
            self._rows_in_part += chunk.num_rows
            self.rows += chunk.num_rows
            if self._rows_in_part >= self.rows_per_part:
                self._close_part()
        rest = pending.slice(full)
        self._tables, self._table_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.parts):05d}.parquet"
        self._final = fsio.join(self._dir, name)
        self._tmp = fsio.temp_name(self._final)
        self._handle = self.fs.open(self._tmp, "wb")
        self._writer = pq.ParquetWriter(self._handle, self.schema, compression=self.compression)
        self._rows_in_part = 0

    def _close_part(self) -> None:
        self._writer.close()
        self._handle.close()
        self.fs.mv(self._tmp, self._final)
        self.parts.append(self._final if "://" not in self.directory else fsio.join(self.directory,
                                                                                       self._final.rsplit("/", 1)[1]))
        self._writer = self._handle = None

    def close(self) -> list[str]:
        if self._buffer:
            self._flush()
        if self._tables:
            self._flush_tables(final=True)
        if self._writer is not None:
            self._close_part()
        return self.parts

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
                self._handle.close()
            finally:
                self.fs.rm(self._tmp)
            self._writer = self._handle = None
