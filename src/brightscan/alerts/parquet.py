"""Broker Parquet (the Fink layout): ``candidate`` struct, ``prv_candidates`` list, cutout structs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from brightscan.alerts.records import CUTOUT_FIELDS, Alert, Rejection, alert_from_record

#: Columns we use; broker extras (cdsxmatch, tns, ...) are carried in ``Alert.extra`` when present.
CORE_COLUMNS = ("objectId", "candid", "schemavsn", "candidate", "prv_candidates", *CUTOUT_FIELDS)
EXTRA_COLUMNS = ("cdsxmatch", "tns")

#: Rows decoded at a time: bounds memory whatever the file size.
BATCH_ROWS = 64


def read_parquet_file(path: Path, source: str | None = None) -> Iterator[Alert | Rejection]:
    """Stream alerts from a broker Parquet file in small row batches."""
    source = source or str(path)
    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        yield Rejection(None, None, source, "read", f"not a readable Parquet file: {exc}")
        return
    names = set(pfile.schema_arrow.names)
    missing = [c for c in ("objectId", "candidate") if c not in names]
    if missing:
        yield Rejection(None, None, source, "read",
                        f"Parquet file lacks alert column(s) {', '.join(missing)}")
        return
    columns = [c for c in (*CORE_COLUMNS, *EXTRA_COLUMNS) if c in names]
    row_index = 0
    try:
        for batch in pfile.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            for row in batch.to_pylist():
                result = alert_from_record(row, f"{source}#{row_index}")
                if isinstance(result, Alert):
                    extra = {c: row[c] for c in EXTRA_COLUMNS if c in row}
                    if extra:
                        result = _with_extra(result, extra)
                yield result
                row_index += 1
    except Exception as exc:  # a corrupt row group: report and stop this file
        yield Rejection(None, None, f"{source}#{row_index}", "read",
                        f"corrupt Parquet data after {row_index} row(s): {exc}")


def _with_extra(alert: Alert, extra: dict) -> Alert:
    from dataclasses import replace

    return replace(alert, extra=extra)
