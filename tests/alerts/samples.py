"""Helpers shared by the ingest and preprocessing tests: real packets re-written with their own
writer schema, gzipped FITS stamps built with astropy, and the production (astropy) oracle."""

from __future__ import annotations

import copy
import datetime
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import numpy as np
from astropy.io import fits

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def real_avro_files(avro_dir: Path) -> list[Path]:
    return sorted(avro_dir.glob("*.avro"))


def load_packet(path: Path) -> tuple[dict, list[dict]]:
    """The writer schema (as JSON) and the records of one Avro container."""
    with open(path, "rb") as stream:
        reader = fastavro.reader(stream)
        schema = json.loads(reader.metadata["avro.schema"])
        return schema, list(reader)


def avro_bytes(schema: dict, records: list[dict], codec: str = "null", sync_interval: int = 16000) -> bytes:
    """An Avro container holding ``records``, written with ``schema`` (a real writer schema);
    a block is closed once it holds ``sync_interval`` bytes (1: one record a block)."""
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(copy.deepcopy(schema)), records, codec=codec,
                    sync_interval=sync_interval)
    return out.getvalue()


def stamp_bytes(image: np.ndarray, *, compress: bool = True) -> bytes:
    """A gzipped FITS primary-HDU image, encoded by astropy as ZTF's stamps are."""
    out = io.BytesIO()
    fits.PrimaryHDU(np.asarray(image)).writeto(out)
    raw = out.getvalue()
    return gzip.compress(raw) if compress else raw


def tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    """A ``.tar.gz`` archive of ``members`` (name, bytes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def with_stamp(record: dict, field: str, data: bytes | None) -> dict:
    """A copy of ``record`` whose cutout ``field`` holds ``data``."""
    record = dict(record)
    record[field] = None if data is None else {**record[field], "stampData": data}
    return record


def production_stamp(data: bytes) -> np.ndarray:
    """Production's per-cutout computation: gzip + ``fits.open`` + ``nan_to_num`` + L2 norm + pad."""
    with gzip.open(io.BytesIO(data), "rb") as handle:
        with fits.open(io.BytesIO(handle.read()), ignore_missing_simple=True) as hdul:
            image = hdul[0].data
    image = np.nan_to_num(image)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        image = image / np.linalg.norm(image)
    height, width = image.shape
    return np.pad(image, [(0, 63 - height), (0, 63 - width)], mode="constant", constant_values=1e-9)


def production_triplet(cutouts: dict[str, Any]) -> np.ndarray:
    """The production oracle for a whole alert: (63, 63, 3) in float32, channels in model order."""
    channels = [production_stamp(_stamp(cutouts[field])) for field in CUTOUTS]
    return np.stack(channels, axis=-1).astype(np.float32)


def _stamp(cutout: Any) -> bytes:
    return cutout["stampData"] if isinstance(cutout, dict) else cutout


def zigzag(value: int) -> bytes:
    """Avro's ``long`` encoding (zig-zag varint)."""
    value, out = (value << 1) ^ (value >> 63), b""
    while value > 0x7F:
        out += bytes([(value & 0x7F) | 0x80])
        value >>= 7
    return out + bytes([value])


def split_container(data: bytes) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
    """An Avro container as (header up to and including the sync marker, sync, [(count, body)]).

    Written independently of brightscan's reader, to build damaged files from real ones.
    """
    with io.BytesIO(data) as stream:
        sync = fastavro.reader(stream)._header["sync"]
    pos = data.index(sync) + len(sync)
    header, blocks = data[:pos], []

    def varint(at: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1), at

    while pos < len(data):
        count, pos = varint(pos)
        size, pos = varint(pos)
        blocks.append((count, data[pos:pos + size]))
        pos += size + len(sync)
    return header, sync, blocks


def join_container(header: bytes, sync: bytes, blocks: list[tuple[int, bytes]]) -> bytes:
    """The inverse of :func:`split_container` (bodies taken as they are)."""
    return header + b"".join(zigzag(n) + zigzag(len(body)) + body + sync for n, body in blocks)


#: Columns a broker adds around the packet, typed as Spark's ``to_avro`` writes them.
BROKER_COLUMNS: list[dict] = [
    {"name": "cdsxmatch", "type": ["string", "null"]},
    {"name": "rf_snia_vs_nonia", "type": ["double", "null"]},
    {"name": "is_transient", "type": ["boolean", "null"]},
    {"name": "mangrove", "type": [{"type": "map", "values": ["string", "null"]}, "null"]},
    {"name": "timestamp", "type": [{"type": "long", "logicalType": "timestamp-micros"}, "null"]},
]


def spark_export(schema: dict, records: list[dict], *, drop: tuple[str, ...] = ("candid",),
                 broker_columns: bool = True) -> tuple[dict, list[dict]]:
    """A ZTF writer schema and records as a Spark export writes them (``to_avro`` / spark-avro).

    Spark names the top record ``topLevelRecord`` and each nested one by its path, inlines every
    named reference, makes each nullable field a union with the type *first* and ``null`` second,
    drops schema docs and defaults; broker exports add columns (cross-matches, scores, a map, a
    boolean, a timestamp) and often lack the top-level ``candid`` (``drop``).
    """
    expanded = fastavro.schema.expand_schema(copy.deepcopy(schema))

    def convert(kind: Any, path: str) -> Any:
        if isinstance(kind, list):
            branches = [convert(b, path) for b in kind if b != "null"]
            return [*branches, "null"] if "null" in kind else branches
        if isinstance(kind, dict) and kind.get("type") == "record":
            return {"type": "record", "name": path,
                    "fields": [{"name": f["name"], "type": convert(f["type"], f"{path}.{f['name']}")}
                               for f in kind["fields"]]}
        if isinstance(kind, dict) and kind.get("type") == "array":
            return {"type": "array", "items": convert(kind["items"], path)}
        return kind

    top = convert(expanded, "topLevelRecord")
    top["fields"] = [f for f in top["fields"] if f["name"] not in drop]
    if broker_columns:
        top["fields"] += copy.deepcopy(BROKER_COLUMNS)
    rows = []
    for n, record in enumerate(records):
        row = {k: v for k, v in record.items() if k not in drop}
        if broker_columns:
            row.update(cdsxmatch="Unknown" if n % 2 else None, rf_snia_vs_nonia=0.25 * n,
                       is_transient=bool(n % 2), mangrove={"HyperLEDA_name": "None", "2MASS_name": None},
                       timestamp=datetime.datetime(2023, 10, 12, 7, n % 60, tzinfo=datetime.timezone.utc))
        rows.append(row)
    return top, rows
