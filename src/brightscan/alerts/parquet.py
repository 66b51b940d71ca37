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

Bounded (:class:`~brightscan.alerts.limits.ReadLimits`): a row group whose columns we read take
more than ``max_row_group_bytes`` uncompressed (as its metadata states) is rejected without being
decoded; rows are decoded in batches small enough that a batch cannot exceed that limit either,
even when a dictionary-encoded column repeats one huge value in every row (no value can be larger
than its column chunk, so ``rows x chunk size`` bounds a batch); a page whose header lies about its
size fails inside Arrow and rejects its row group;
cutout bytes are bounded again when preprocessing inflates them (``max_cutout_bytes``), and
Kafka message values by the Avro limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from brightscan.alerts.avro import decode_avro
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.records import CUTOUT_FIELDS, Alert, Rejection, alert_from_record
from brightscan.errors import LimitExceeded

#: Columns we use; broker extras (cdsxmatch, tns, ...) are carried in ``Alert.extra`` when present.
CORE_COLUMNS = ("objectId", "candid", "schemavsn", "candidate", "prv_candidates", *CUTOUT_FIELDS)
EXTRA_COLUMNS = ("cdsxmatch", "tns")
#: Without these a file holds no alerts at all: one file-level rejection.
REQUIRED_COLUMNS = ("objectId", "candidate")
#: Rubin packets as Fink stores them (lsst.v10_0 and later): the packet's fields as columns, less
#: the forced photometry that no feature reads (as the Avro readers skip it: alerts.rubin).
RUBIN_COLUMNS = ("diaSourceId", "diaSource", "prvDiaSources", "diaObject",
                 "ssSource", "lsst_schema_version", *CUTOUT_FIELDS)

#: Rows decoded at a time: bounds memory whatever the file size.
BATCH_ROWS = 64
#: Lost rows are reported one by one up to this many per row group, then as one range.
_MAX_ROWS_PER_LOSS = 10_000


def read_parquet_file(file: str | Path | BinaryIO, source: str | None = None,
                      limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Stream alerts from a broker Parquet file in small row batches.

    Parameters
    ----------
    file : path or binary file object
        A local path, or an open (seekable) file such as fsspec returns.
    source : str, optional
        How rows are named in their ``source`` (``source#row``); default the path.
    limits : ReadLimits, optional
        Bounds on row group sizes (and on the Avro of raw Kafka dumps).

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
        try:
            pfile = _keeping_dictionaries(file, pfile, columns, limits)
        except (pa.ArrowException, OSError, ValueError) as exc:
            yield Rejection(None, None, source, "read", f"not a readable Parquet file: {_one_line(exc)}")
            return
        for row, record in _rows(pfile, columns, source, limits):
            yield record if isinstance(record, Rejection) else alert_from_record(record, f"{source}#{row}")
        return
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    kafka = bool(missing) and _is_kafka_dump(pfile.schema_arrow)
    if missing and not kafka:
        yield Rejection(None, None, source, "read",
                        f"Parquet file lacks alert column(s) {', '.join(missing)}")
        return
    columns = ["value"] if kafka else [c for c in (*CORE_COLUMNS, *EXTRA_COLUMNS) if c in names]
    try:
        pfile = _keeping_dictionaries(file, pfile, columns, limits)
    except (pa.ArrowException, OSError, ValueError) as exc:
        yield Rejection(None, None, source, "read", f"not a readable Parquet file: {_one_line(exc)}")
        return
    if kafka:
        yield from _kafka_values(pfile, source, limits)
        return
    for row, record in _rows(pfile, columns, source, limits):
        yield record if isinstance(record, Rejection) else _alert(record, f"{source}#{row}")


def _rows(pfile: pq.ParquetFile, columns: list[str], source: str,
          limits: ReadLimits) -> Iterator[tuple[int, dict | Rejection]]:
    """Each row's number and values, row group by row group; a damaged group rejects its rows."""
    first = 0
    for group in range(pfile.num_row_groups):
        size = pfile.metadata.row_group(group).num_rows
        row = first
        try:
            rows = _batch_rows(pfile.metadata.row_group(group), columns, group, limits)
            for batch in pfile.iter_batches(batch_size=rows, row_groups=[group], columns=columns):
                for record in batch.to_pylist():
                    yield row, record
                    row += 1
        except (pa.ArrowException, OSError, ValueError, LimitExceeded) as exc:  # a corrupt page or row group
            yield from _lost_rows(source, group, row, first + size, _one_line(exc))
        first += size


def _batch_rows(meta: pq.RowGroupMetaData, columns: list[str], group: int, limits: ReadLimits) -> int:
    """Rows to decode at a time; refuse a row group whose columns, by its metadata, exceed the limit."""
    wanted = set(columns)
    total = sum(meta.column(i).total_uncompressed_size for i in range(meta.num_columns)
                if meta.column(i).path_in_schema.split(".", 1)[0] in wanted)
    if total > limits.max_row_group_bytes:
        raise LimitExceeded(f"row group {group} holds {total} bytes uncompressed",
                            limits.describe("max_row_group_bytes"))
    return max(1, min(BATCH_ROWS, limits.max_row_group_bytes // max(total, 1)))


def _keeping_dictionaries(file: str | Path | BinaryIO, pfile: pq.ParquetFile, columns: list[str],
                          limits: ReadLimits) -> pq.ParquetFile:
    """``pfile``, or the file reopened so that Arrow keeps dictionary-encoded text and binary
    columns as dictionaries where decoding them whole could pass ``max_row_group_bytes``.

    A dictionary page holds each distinct value once: one 4 MiB stamp referenced by every row
    looks like 4 MiB in the metadata and decodes to rows x 4 MiB, which Arrow would build for the
    whole row group. Kept as a dictionary, only the rows of one batch are ever expanded. Real files
    never come near the bound (values x chunk size), so they are read as before.
    """
    wanted, paths = set(columns), set()
    meta = pfile.metadata
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            if (chunk.physical_type == "BYTE_ARRAY" and chunk.has_dictionary_page
                    and chunk.path_in_schema.split(".", 1)[0] in wanted
                    and chunk.num_values * chunk.total_uncompressed_size > limits.max_row_group_bytes):
                paths.add(chunk.path_in_schema)
    return pq.ParquetFile(file, read_dictionary=sorted(paths)) if paths else pfile


def _lost_rows(source: str, group: int, row: int, end: int, reason: str) -> Iterator[tuple[int, Rejection]]:
    # One rejection per lost row, so counts stay true; one for the range when a group claims too many.
    span = f"rows {row}-{end - 1}" if end - 1 > row else f"row {row}"
    if end - row > _MAX_ROWS_PER_LOSS:
        yield row, Rejection(None, None, f"{source}#{row}", "read",
                             f"{end - row} rows of Parquet row group {group} ({span}) unreadable: {reason}")
        return
    for lost in range(row, end):
        yield lost, Rejection(None, None, f"{source}#{lost}", "read",
                              f"unreadable Parquet row group {group} ({span}): {reason}")


def _is_kafka_dump(schema: pa.Schema) -> bool:
    # Spark's Kafka source written as it came: key, value (the message bytes), topic, partition, ...
    names = set(schema.names)
    return {"value", "topic", "partition", "offset"} <= names and pa.types.is_binary(schema.field("value").type)


def _kafka_values(pfile: pq.ParquetFile, source: str, limits: ReadLimits) -> Iterator[Alert | Rejection]:
    """Each message of a raw Kafka dump holds an Avro container (ZTF's packets): decode it."""
    for row, record in _rows(pfile, ["value"], source, limits):
        if isinstance(record, Rejection):
            yield record
        elif record["value"] is None:
            yield Rejection(None, None, f"{source}#{row}", "read", "Kafka message has no value")
        else:
            yield from decode_avro(record["value"], f"{source}#{row}", limits)


def _alert(record: dict, source: str) -> Alert | Rejection:
    result = alert_from_record(record, source)
    if isinstance(result, Alert):
        extra = {c: record[c] for c in EXTRA_COLUMNS if c in record}
        if extra:
            result = replace(result, extra=extra)
    return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
