"""Broker Parquet: the alert packet's fields as columns, one alert a row, in any column order.

Read by column name, so every layout that keeps the packet's nested fields reads the same: Fink's
*raw* layout (the decoded packet plus ``timestamp``/``brokerIngestTimestamp``), its *science*
layout (the same plus the science modules' columns, candidate fields in any order, some as
doubles), Spark's partitioned output (``year=2019/month=09/day=03/part-*.snappy.parquet``,
walked like any directory), any column order and any extra columns; Fink's Rubin layout (the
Rubin packet's fields as columns, ``diaSource`` instead of ``candidate``). ``candid`` is taken from
``candidate.candid`` when the top-level column is absent; a missing ``prv_candidates`` column reads
as no earlier detections, and missing cutout columns leave the cutouts empty (each alert is then
rejected by preprocessing, naming the cutout). A raw dump of ZTF's Kafka stream as Spark writes
it (``key, value, topic, partition, offset, timestamp``) is read too: each ``value`` is an Avro
container, decoded as a ``.avro`` file is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from brightscan.alerts.avro import decode_avro
from brightscan.alerts.records import CUTOUT_FIELDS, Alert, Rejection, alert_from_record

#: Columns we use; broker extras (cdsxmatch, tns, ...) are carried in ``Alert.extra`` when present.
CORE_COLUMNS = ("objectId", "candid", "schemavsn", "candidate", "prv_candidates", *CUTOUT_FIELDS)
EXTRA_COLUMNS = ("cdsxmatch", "tns")
#: Without these a file holds no alerts at all: one file-level rejection.
REQUIRED_COLUMNS = ("objectId", "candidate")
#: Rubin packets as Fink stores them (lsst.v10_0 and later): the packet's fields as columns.
RUBIN_COLUMNS = ("diaSourceId", "diaSource", "prvDiaSources", "prvDiaForcedSources", "diaObject",
                 "ssSource", "lsst_schema_version", *CUTOUT_FIELDS)

#: Rows decoded at a time: bounds memory whatever the file size.
BATCH_ROWS = 64


def read_parquet_file(file: str | Path | BinaryIO, source: str | None = None) -> Iterator[Alert | Rejection]:
    """Stream alerts from a broker Parquet file in small row batches.

    Parameters
    ----------
    file : path or binary file object
        A local path, or an open (seekable) file such as fsspec returns.
    source : str, optional
        How rows are named in their ``source`` (``source#row``); default the path.

    Yields
    ------
    Alert or Rejection
        One per row; a row group that cannot be decoded rejects its own rows only.
    """
    source = source or str(file)
    try:
        pfile = pq.ParquetFile(file)
    except (pa.ArrowException, OSError, ValueError) as exc:
        yield Rejection(None, None, source, "read", f"not a readable Parquet file: {_one_line(exc)}")
        return
    names = set(pfile.schema_arrow.names)
    if "diaSource" in names and "candidate" not in names:  # a Rubin layout
        columns = [c for c in RUBIN_COLUMNS if c in names]
        for row, record in _rows(pfile, columns, source):
            yield record if isinstance(record, Rejection) else alert_from_record(record, f"{source}#{row}")
        return
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing and _is_kafka_dump(pfile.schema_arrow):
        yield from _kafka_values(pfile, source)
        return
    if missing:
        yield Rejection(None, None, source, "read",
                        f"Parquet file lacks alert column(s) {', '.join(missing)}")
        return
    columns = [c for c in (*CORE_COLUMNS, *EXTRA_COLUMNS) if c in names]
    for row, record in _rows(pfile, columns, source):
        yield record if isinstance(record, Rejection) else _alert(record, f"{source}#{row}")


def _rows(pfile: pq.ParquetFile, columns: list[str], source: str) -> Iterator[tuple[int, dict | Rejection]]:
    """Each row's number and values, row group by row group; a damaged group rejects its rows."""
    first = 0
    for group in range(pfile.num_row_groups):
        size = pfile.metadata.row_group(group).num_rows
        row = first
        try:
            for batch in pfile.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=columns):
                for record in batch.to_pylist():
                    yield row, record
                    row += 1
        except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt page or row group
            span = f"rows {row}-{first + size - 1}" if first + size - 1 > row else f"row {row}"
            for lost in range(row, first + size):
                yield lost, Rejection(None, None, f"{source}#{lost}", "read",
                                      f"unreadable Parquet row group {group} ({span}): {_one_line(exc)}")
        first += size


def _is_kafka_dump(schema: pa.Schema) -> bool:
    # Spark's Kafka source written as it came: key, value (the message bytes), topic, partition, ...
    names = set(schema.names)
    return {"value", "topic", "partition", "offset"} <= names and pa.types.is_binary(schema.field("value").type)


def _kafka_values(pfile: pq.ParquetFile, source: str) -> Iterator[Alert | Rejection]:
    """Each message of a raw Kafka dump holds an Avro container (ZTF's packets): decode it."""
    for row, record in _rows(pfile, ["value"], source):
        if isinstance(record, Rejection):
            yield record
        elif record["value"] is None:
            yield Rejection(None, None, f"{source}#{row}", "read", "Kafka message has no value")
        else:
            yield from decode_avro(record["value"], f"{source}#{row}")


def _alert(record: dict, source: str) -> Alert | Rejection:
    result = alert_from_record(record, source)
    if isinstance(result, Alert):
        extra = {c: record[c] for c in EXTRA_COLUMNS if c in record}
        if extra:
            result = replace(result, extra=extra)
    return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
