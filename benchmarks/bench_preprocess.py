"""Preprocessing speed on one core, next to production's straightforward path measured in the same run.

Production path (as the ZTF broker's BTSbot code does it): ``fastavro.reader`` per file, then per
cutout ``gzip`` + astropy ``fits.open`` + ``np.nan_to_num`` + ``np.linalg.norm`` + ``np.pad``, and
the features from the record with numpy. Rows:

(a) cutout bytes -> triplet + features, per alert (packets already decoded);
(b) Avro container decoding, per alert, several ways;
(c) end to end, Avro bytes -> triplet + features;
(d) the same alerts in multi-record containers written with each codec (null, deflate, snappy,
    zstandard): brightscan's ``decode_avro`` per alert next to ``fastavro.reader`` (the path
    snappy and zstandard used to take) and the codec's own cost (decompressing the blocks alone),
    with ratios against deflate measured in the same run.

Times are process CPU time (robust to other load on a shared machine), the best of ``--rounds``
interleaved rounds, each ``--repeat`` passes over the real alerts in ../shared.

Run: ``python benchmarks/bench_preprocess.py [--repeat 20] [--rounds 7]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: single-threaded BLAS

import argparse  # noqa: E402
import copy  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import fastavro  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from brightscan.alerts import decode_avro  # noqa: E402
from brightscan.alerts.avro import _read_header  # noqa: E402
from brightscan.alerts.avro_compiler import compile_reader  # noqa: E402
from brightscan.alerts.codecs import decompress_block  # noqa: E402
from brightscan.errors import AlertError  # noqa: E402
from brightscan.preprocess import FEATURE_SETS, preprocess_alert  # noqa: E402

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
DEFAULT_AVRO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-alerts" / "ztf-avro"
#: Fields the features and identity use: the projection of row (b).
PROJECTED_CANDIDATE = {"jd", "fid", "candid", "magpsf", "rb", "jdstarthist", "ncovhist"} | set(FEATURE_SETS["v1"])
PROJECTED_PRV = {"jd", "fid", "candid", "magpsf"}


# --- production's straightforward path ------------------------------------------------------------

def production_decode(data: bytes) -> list[dict]:
    return list(fastavro.reader(io.BytesIO(data)))


def production_triplet(record: dict) -> np.ndarray:
    channels = []
    for field in CUTOUTS:
        with gzip.open(io.BytesIO(record[field]["stampData"]), "rb") as handle:
            with fits.open(io.BytesIO(handle.read()), ignore_missing_simple=True) as hdul:
                image = np.nan_to_num(hdul[0].data)
                with np.errstate(all="ignore"):
                    image = image / np.linalg.norm(image)
                height, width = image.shape
                channels.append(np.pad(image, [(0, 63 - height), (0, 63 - width)], constant_values=1e-9))
    return np.stack(channels, axis=-1).astype(np.float32)


def production_features(record: dict, names: tuple[str, ...]) -> np.ndarray:
    cand = record["candidate"]
    history = [p for p in (record["prv_candidates"] or []) if p["magpsf"] is not None] + [cand]
    mags = np.array([h["magpsf"] for h in history])
    jds = np.array([h["jd"] for h in history])
    peak = int(np.argmin(mags))
    first = min(cand["jdstarthist"], jds.min())
    derived = {
        "age": cand["jd"] - first, "peakmag_so_far": mags[peak], "maxmag_so_far": mags.max(),
        "days_since_peak": cand["jd"] - jds[peak], "days_to_peak": jds[peak] - first,
        "nnondet": cand["ncovhist"] - cand["ndethist"],
        "drb": cand["drb"] if cand.get("drb") is not None else cand["rb"],
    }
    return np.array([derived[n] if n in derived else cand[n] for n in names], dtype=np.float32)


# --- alternatives for Avro decoding ---------------------------------------------------------------

def _project(schema: dict) -> dict:
    schema = copy.deepcopy(schema)
    for field in schema["fields"]:
        if field["name"] == "candidate":
            field["type"]["fields"] = [f for f in field["type"]["fields"] if f["name"] in PROJECTED_CANDIDATE]
        if field["name"] == "prv_candidates":
            array = next(t for t in field["type"] if isinstance(t, dict))
            array["items"]["fields"] = [f for f in array["items"]["fields"] if f["name"] in PROJECTED_PRV]
    return schema


class CachedSchemaDecoder:
    """Header parsed per file, compiled writer (and optional projected reader) schema cached."""

    def __init__(self, project: bool = False, compiled: bool = False):
        self.project = project
        self.compiled = compiled
        self.cache: dict[bytes, tuple[dict, dict | None]] = {}

    def __call__(self, data: bytes) -> list[dict]:
        stream = io.BytesIO(data)
        stream.read(4)
        metadata, sync = _read_header(stream)
        text = metadata["avro.schema"]
        if text not in self.cache:
            writer = json.loads(text)
            reader = fastavro.parse_schema(_project(writer)) if self.project else None
            self.cache[text] = (compile_reader(writer) if self.compiled else fastavro.parse_schema(writer), reader)
        writer, reader = self.cache[text]
        body = data[stream.tell():]
        records, pos = [], 0
        while pos < len(body):
            block = io.BytesIO(body[pos:])
            count, size = _long(block), _long(block)
            start = pos + block.tell()
            if self.compiled:
                offset = 0
                for _ in range(count):
                    record, offset = writer(body[start:start + size], offset)
                    records.append(record)
            else:
                block = io.BytesIO(body[start:start + size])
                records += [fastavro.schemaless_reader(block, writer, reader) for _ in range(count)]
            pos = start + size + len(sync)
        return records


def _long(stream: io.BytesIO) -> int:
    value = shift = 0
    while True:
        byte = stream.read(1)[0]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1)


def reader_with_projection(data: bytes) -> list[dict]:
    with io.BytesIO(data) as stream:
        writer = json.loads(fastavro.reader(stream).metadata["avro.schema"])
    return list(fastavro.reader(io.BytesIO(data), reader_schema=_project(writer)))


# --- brightscan ---------------------------------------------------------------------------------

def ours_preprocess(alert, names: str = "v1") -> None:
    try:
        preprocess_alert(alert, names)
    except AlertError:
        pass  # rejected (overflow sentinels): production computes a zeroed channel instead


def ours_end_to_end(data: bytes) -> None:
    for alert in decode_avro(data):
        ours_preprocess(alert)


def production_end_to_end(data: bytes) -> None:
    names = FEATURE_SETS["v1"]
    for record in production_decode(data):
        production_triplet(record)
        production_features(record, names)


# --- codecs -------------------------------------------------------------------------------------

CODECS = ("null", "deflate", "snappy", "zstandard")


def codec_containers(raw: list[bytes]) -> dict[str, list[bytes]]:
    """The alerts re-written, one container per writer schema, with each codec."""
    by_schema: dict[str, tuple[dict, list[dict]]] = {}
    for data in raw:
        reader = fastavro.reader(io.BytesIO(data))
        text = reader.metadata["avro.schema"]
        by_schema.setdefault(text, (json.loads(text), []))[1].extend(reader)
    out: dict[str, list[bytes]] = {}
    for codec in CODECS:
        out[codec] = []
        for schema, records in by_schema.values():
            buffer = io.BytesIO()
            fastavro.writer(buffer, fastavro.parse_schema(schema), records, codec=codec)
            out[codec].append(buffer.getvalue())
    return out


def block_bodies(data: bytes) -> list[bytes]:
    """The compressed block bodies of a container (for the codec-alone floor)."""
    stream = io.BytesIO(data)
    stream.read(4)
    _, sync = _read_header(stream)
    bodies = []
    while stream.read(1):
        stream.seek(-1, io.SEEK_CUR)
        _long(stream)
        size = _long(stream)
        bodies.append(stream.read(size))
        stream.read(len(sync))
    return bodies


def codec_rows(raw: list[bytes], n_alerts: int) -> list[tuple]:
    rows = []
    for codec, containers in codec_containers(raw).items():
        bodies = [block_bodies(c) for c in containers]
        rows += [
            ("d", f"brightscan decode_avro, {codec}", lambda d: list(decode_avro(d)), containers, n_alerts),
            ("d", f"fastavro.reader, {codec}", production_decode, containers, n_alerts),
            ("d", f"  codec alone: decompress the blocks, {codec}",
             lambda bs, codec=codec: [decompress_block(codec, b) for b in bs], bodies, n_alerts),
        ]
    return rows


def print_codec_rows(rows: list[tuple], best: dict) -> None:
    """Group (d): each codec's figures and their ratio to deflate's, same run."""
    print(f"\n{'':2} {'codec':10} {'decode_avro':>12} {'vs deflate':>10} {'fastavro.reader':>16} "
          f"{'speed-up':>9} {'codec alone':>12} {'decode - codec':>15}   (us/alert)")
    ours = {codec: best[f"brightscan decode_avro, {codec}"] for codec in CODECS}
    for codec in CODECS:
        theirs = best[f"fastavro.reader, {codec}"]
        alone = best[f"  codec alone: decompress the blocks, {codec}"]
        print(f"(d) {codec:10} {ours[codec]:12.1f} {ours[codec] / ours['deflate']:9.2f}x {theirs:16.1f} "
              f"{theirs / ours[codec]:8.1f}x {alone:12.1f} {ours[codec] - alone:15.1f}")


# --- harness ------------------------------------------------------------------------------------

def measure(rows: list[tuple], repeat: int, rounds: int) -> dict:
    """Best per-alert CPU time (µs) of each row over interleaved rounds.

    A row is ``(group, label, fn, items)`` (one alert an item) or ``(group, label, fn, items,
    n_alerts)`` (items holding ``n_alerts`` alerts in all, e.g. multi-record containers).
    """
    best = {row[1]: float("inf") for row in rows}
    for _ in range(rounds):
        for _, label, fn, items, *n_alerts in rows:
            start = time.process_time()
            for _ in range(repeat):
                for item in items:
                    fn(item)
            per_pass = n_alerts[0] if n_alerts else len(items)
            best[label] = min(best[label], (time.process_time() - start) / (repeat * per_pass) * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avro-dir", type=Path, default=DEFAULT_AVRO_DIR)
    parser.add_argument("--repeat", type=int, default=20, help="passes over the alerts per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the best is kept")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    files = sorted(args.avro_dir.glob("*.avro"))
    if not files:
        print(f"no .avro files in {args.avro_dir}", file=sys.stderr)
        return 2
    raw = [f.read_bytes() for f in files]
    records = [r for data in raw for r in production_decode(data)]
    alerts = [a for data in raw for a in decode_avro(data)]
    names = FEATURE_SETS["v1"]
    stamps = [r[f]["stampData"] for r in records for f in CUTOUTS]
    rows = [
        ("a", "production: gzip + astropy + numpy, numpy features", lambda r: (production_triplet(r), production_features(r, names)), records),
        ("a", "brightscan preprocess_alert (v1)", ours_preprocess, alerts),
        ("a", "  floor: zlib inflate of the 3 cutouts", lambda r: [zlib.decompress(r[f]["stampData"], 31) for f in CUTOUTS], records),
        ("a", "  floor: ISA-L inflate of the 3 cutouts", _isal_floor(), records),
        ("b", "production: fastavro.reader per file", production_decode, raw),
        ("b", "fastavro.reader + reader-schema projection", reader_with_projection, raw),
        ("b", "cached writer schema + schemaless_reader", CachedSchemaDecoder(project=False), raw),
        ("b", "cached schema + projection (candidate, prv: 4 fields)", CachedSchemaDecoder(project=True), raw),
        ("b", "cached decoder compiled from the writer schema", CachedSchemaDecoder(compiled=True), raw),
        ("b", "brightscan decode_avro (adopted: compiled, -> Alert)", lambda d: list(decode_avro(d)), raw),
        ("c", "production: fastavro.reader + astropy triplet + features", production_end_to_end, raw),
        ("c", "brightscan decode_avro + preprocess_alert", ours_end_to_end, raw),
        *codec_rows(raw, len(records)),
    ]
    best = measure(rows, args.repeat, args.rounds)
    print(f"{len(files)} real Avro alerts ({len(stamps)} cutouts), {args.repeat} passes x {args.rounds} rounds, "
          f"CPU time on core {args.core}; numpy {np.__version__}, fastavro {fastavro.__version__}; "
          f"torch imported: {'torch' in sys.modules}")
    print(f"{'':2} {'method':58} {'us/alert':>10} {'speed-up':>9}")
    for group in ("a", "b", "c"):
        group_rows = [row[1] for row in rows if row[0] == group]
        base = best[group_rows[0]]
        for label in group_rows:
            print(f"({group}) {label:58} {best[label]:10.1f} {base / best[label]:8.1f}x")
    print_codec_rows(rows, best)
    return 0


def _isal_floor() -> Callable:
    from isal import igzip_lib

    return lambda r: [igzip_lib.decompress(r[f]["stampData"], flag=igzip_lib.DECOMP_GZIP) for f in CUTOUTS]


if __name__ == "__main__":
    sys.exit(main())
