"""Streaming writers for the arrays and tables we produce: constant memory, whatever the size."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from brightscan.errors import BrightscanError

_NPY_MAGIC = b"\x93NUMPY\x01\x00"
#: Header bytes reserved so the final shape can be written in place, whatever N turns out to be.
_NPY_HEADER_LEN = 128


class NpyAppender:
    """Append rows of a fixed item shape to a ``.npy`` file that ``np.load(mmap_mode='r')`` reads.

    The header is written with room to spare and rewritten with the final row count on
    :meth:`close`, so rows stream to disk without ever being held in memory together.
    """

    def __init__(self, path: str | os.PathLike, item_shape: Sequence[int], dtype: str = "<f4"):
        self.path = Path(path)
        self.item_shape = tuple(int(s) for s in item_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._file = open(self.path, "wb")
        self._write_header()

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape == self.item_shape:
            rows = rows[None]
        if rows.shape[1:] != self.item_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match {self.item_shape}")
        self._file.write(rows.tobytes())
        self.count += rows.shape[0]

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._write_header()
        self._file.close()

    def _write_header(self) -> None:
        shape = (self.count, *self.item_shape)
        text = f"{{'descr': '{self.dtype.str}', 'fortran_order': False, 'shape': {shape}, }}"
        pad = _NPY_HEADER_LEN - len(_NPY_MAGIC) - 2 - len(text) - 1
        header = text + " " * pad + "\n"
        self._file.write(_NPY_MAGIC + len(header).to_bytes(2, "little") + header.encode("latin1"))

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ParquetRowWriter:
    """Buffer dict rows and write them to Parquet in row groups, with a fixed schema."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, rows_per_group: int = 8192):
        self.path = Path(path)
        self.schema = schema
        self.rows_per_group = rows_per_group
        self.count = 0
        self._rows: list[Mapping[str, Any]] = []
        self._writer = pq.ParquetWriter(self.path, schema)

    def write(self, row: Mapping[str, Any]) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.rows_per_group:
            self._flush()

    def write_table(self, table: pa.Table) -> None:
        """Write ``table`` (cast to the schema) as its own row group, after the rows buffered so far."""
        self._flush()
        self._writer.write_table(table.select(self.schema.names).cast(self.schema))
        self.count += table.num_rows

    def close(self) -> None:
        if self._writer is None:
            return
        self._flush(final=True)
        self._writer.close()
        self._writer = None

    def _flush(self, final: bool = False) -> None:
        if self._rows or (final and self.count == 0):
            table = pa.Table.from_pylist(self._rows, schema=self.schema)
            self._writer.write_table(table)
            self._rows = []

    def __enter__(self) -> ParquetRowWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


REJECTION_SCHEMA = pa.schema(
    [
        ("candid", pa.int64()),
        ("objectId", pa.string()),
        ("source", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
    ]
)


def read_json_card(directory: str | os.PathLike, name: str, *, fmt: str, version: int,
                   error: type[BrightscanError], what: str) -> dict[str, Any]:
    """Parse ``directory/name``, a JSON card of format ``fmt`` and version ``version``.

    Raises ``error`` (``ModelFileError``, ``InputError``, ...) naming the file and the problem:
    missing, not JSON, another format, or another format version.
    """
    path = Path(directory) / name
    if not path.is_file():
        raise error(f"{directory} is not a {what}: {name} not found")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict) or card.get("format") != fmt:
        raise error(f"{path} is not a {what} card")
    if card.get("format_version") != version:
        raise error(f"{path} has format version {card.get('format_version')}; this brightscan reads "
                    f"version {version}")
    return card


def read_csv_table(path: str | os.PathLike, required: Sequence[str], what: str) -> Any:
    """Read a user's CSV (``objectId`` kept as text) and check its required columns.

    Raises ``InputError`` naming the file when it is missing or lacks a column.
    """
    import pandas as pd

    from brightscan.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} not found")
    frame = pd.read_csv(path, dtype={"objectId": str})
    missing = set(required) - set(frame.columns)
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(sorted(missing))}")
    return frame
