"""A mixed batch of real alerts and mutated ones, each bad one with the reason we expect.

Every mutant lives in its own file (or archive member), so its ``source`` identifies it in the
outputs whatever its candid.
"""

from __future__ import annotations

import copy
import gzip
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np

from alerts.samples import avro_bytes, load_packet, real_avro_files, stamp_bytes, with_stamp, zigzag


@dataclass
class Batch:
    """Sources expected accepted, and expected rejected (source -> reason fragment)."""

    root: Path
    good: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)


def _flip(data: bytes, rng: np.random.Generator, n: int, lo: int, hi: int) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(lo, hi, size=n):
        out[pos] ^= 0xFF
    return bytes(out)


def _set_type(schema: dict, name: str, avro_type) -> dict:
    schema = copy.deepcopy(schema)
    cand = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    for item in cand["fields"]:
        if item["name"] == name:
            item["type"] = avro_type
            item.pop("default", None)
    return schema


def record_mutants(schema: dict, record: dict, rng: np.random.Generator) -> dict[str, tuple[bytes, str]]:
    """name -> (Avro container bytes, expected reason fragment) for record-level mutations."""
    stamp = record["cutoutScience"]["stampData"]
    good_image = np.arange(63 * 63, dtype=">f4").reshape(63, 63)
    cand = record["candidate"]

    def packet(rec: dict, sch: dict = schema) -> bytes:
        return avro_bytes(sch, [rec])

    def with_cand(**changes) -> dict:
        return {**record, "candidate": {**cand, **changes}}

    truncated_fits = gzip.compress(stamp_bytes(good_image, compress=False)[:4000])
    nan_image = np.full((63, 63), np.nan, dtype=">f4")
    inf_image = good_image.copy()
    inf_image[3, 4] = np.inf
    sentinel = good_image.copy()
    sentinel[10:20, 0] = 1e38
    return {
        "flipped_cutout_bytes": (packet(with_stamp(record, "cutoutScience", _flip(stamp, rng, 8, 20, len(stamp) - 10))),
                                 "science cutout: undecodable"),
        "stamp_64x64": (packet(with_stamp(record, "cutoutTemplate", stamp_bytes(np.ones((64, 64), ">f4")))),
                        "larger than 63 px"),
        "stamp_3d": (packet(with_stamp(record, "cutoutDifference", stamp_bytes(np.ones((3, 63, 63), ">f4")))),
                     "3 axes, expected 2"),
        "stamp_1d": (packet(with_stamp(record, "cutoutDifference", stamp_bytes(np.ones(63, ">f4")))),
                     "1 axes, expected 2"),
        "stamp_nan_only": (packet(with_stamp(record, "cutoutScience", stamp_bytes(nan_image))), "all zero"),
        "stamp_zero": (packet(with_stamp(record, "cutoutTemplate", stamp_bytes(np.zeros((63, 63), ">f4")))),
                       "all zero"),
        "stamp_inf": (packet(with_stamp(record, "cutoutScience", stamp_bytes(inf_image))), "infinite"),
        "stamp_sentinel": (packet(with_stamp(record, "cutoutTemplate", stamp_bytes(sentinel))), "overflow sentinel"),
        "stamp_not_fits": (packet(with_stamp(record, "cutoutScience", gzip.compress(b"hello world"))),
                           "not a FITS file"),
        "stamp_truncated_fits": (packet(with_stamp(record, "cutoutScience", truncated_fits)), "truncated"),
        "stamp_missing": (packet(with_stamp(record, "cutoutDifference", None)), "missing or empty"),
        "missing_sgscore1": (packet(with_cand(sgscore1=None)), "missing feature sgscore1"),
        "missing_drb_and_rb": (packet(with_cand(drb=None, rb=None)), "missing feature drb"),
        "string_sgscore1": (packet(with_cand(sgscore1="0.5"), _set_type(schema, "sgscore1", ["string", "null"])),
                            "feature sgscore1 is not a number"),
        "string_jd": (packet(with_cand(jd="2458000.5"), _set_type(schema, "jd", "string")), "no numeric jd"),
        # values checked where the record is read (stage read), each reason naming the field
        "nan_magpsf": (packet(with_cand(magpsf=float("nan"))), "candidate magpsf nan is not finite"),
        "inf_diffmaglim": (packet(with_cand(diffmaglim=float("inf"))), "candidate diffmaglim inf is not finite"),
        "jd_absurd": (packet(with_cand(jd=1e12)), "candidate jd 1000000000000.0 is outside"),
        "ra_out_of_range": (packet(with_cand(ra=400.0)), "candidate ra 400.0 is outside [0, 360]"),
        "dec_out_of_range": (packet(with_cand(dec=-100.0)), "candidate dec -100.0 is outside [-90, 90]"),
        "prv_nan_magpsf": (packet({**record, "prv_candidates": [
            {**record["prv_candidates"][0], "magpsf": float("nan")}, *record["prv_candidates"][1:]]}),
            "prv_candidates[0] magpsf nan is not finite"),
        "objectid_too_long": (packet({**record, "objectId": "ZTF" + "a" * 40}), "more than 32"),
        "objectid_not_ztf": (packet({**record, "objectId": "ZTF20ab/cdefg"}), "is not a ZTF name"),
        "objectid_path": (packet({**record, "objectId": "../../etc"}), "characters other than"),
        "candid_huge_digits": (packet({**record, "candid": "9" * 5000}, _set_top_type(schema, "candid", "string")),
                               "(5002 characters) is outside the int64 range"),
    }


def _set_top_type(schema: dict, name: str, avro_type) -> dict:
    schema = copy.deepcopy(schema)
    for item in schema["fields"]:
        if item["name"] == name:
            item["type"] = avro_type
            item.pop("default", None)
    return schema


def build_mixed_batch(root: Path, avro_dir: Path, parquet_dir: Path | None = None, seed: int = 0) -> Batch:
    """Real alerts (good) interleaved with mutants of them (bad), in files, a tarball and Parquet."""
    rng = np.random.default_rng(seed)
    batch = Batch(root)
    files = real_avro_files(avro_dir)
    good_dir = root / "good"
    good_dir.mkdir(parents=True)
    for path in files[:6]:
        target = good_dir / path.name
        target.write_bytes(path.read_bytes())
        batch.good.append(str(target))
    schema, (record,) = load_packet(files[7])
    data = files[7].read_bytes()
    bad_dir = root / "bad"
    bad_dir.mkdir()

    def bad(name: str, content: bytes, reason: str, suffix: str = ".avro") -> None:
        target = bad_dir / f"{name}{suffix}"
        target.write_bytes(content)
        batch.bad[str(target)] = reason

    for name, (content, reason) in record_mutants(schema, record, rng).items():
        bad(name, content, reason)
    bad("truncated_in_block", data[: len(data) // 2], "unreadable Avro block")
    bad("truncated_in_header", data[:300], "unreadable Avro header")
    bad("huge_block_length", _with_block_length(data, 5_000_000_000), "unreadable Avro block")
    bad("empty", b"", "file is empty")
    bad("not_avro", b"SIMPLE  =                    T" + b" " * 100, "not an Avro container")
    bad("not_parquet", b"PAR1 but not really", "not a readable Parquet file", suffix=".parquet")
    _tarball_with_corrupt_member(root / "night.tar.gz", files[8:11], data, batch)
    if parquet_dir is not None:
        _parquet_with_bad_rows(root / "broker.parquet", parquet_dir, batch)
    return batch


def _parquet_with_bad_rows(path: Path, parquet_dir: Path, batch: Batch) -> None:
    """Four real Fink rows; row 1 gets a corrupt science stamp, row 2 loses sgscore1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(parquet_dir.glob("*.parquet"))[0])
    rows = table.slice(0, 4).to_pylist()
    rows[1]["cutoutScience"]["stampData"] = b"\x1f\x8b\x08" + bytes(200)
    rows[2]["candidate"]["sgscore1"] = None
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    batch.good += [f"{path}#0", f"{path}#3"]
    batch.bad[f"{path}#1"] = "science cutout: undecodable gzip data"
    batch.bad[f"{path}#2"] = "missing feature sgscore1"


def _with_block_length(data: bytes, size: int) -> bytes:
    """The container with its first block claiming ``size`` bytes (a corrupt length varint)."""
    with io.BytesIO(data) as stream:
        sync = fastavro.reader(stream)._header["sync"]
    start = data.index(sync) + len(sync)  # the header ends with the sync marker; block 1 follows
    count_len = 1  # one record: a one-byte varint
    size_end = start + count_len
    while data[size_end] & 0x80:
        size_end += 1
    return data[:start + count_len] + zigzag(size) + data[size_end + 1:]


def _tarball_with_corrupt_member(path: Path, good: list[Path], data: bytes, batch: Batch) -> None:
    members = [(f"night/{p.name}", p.read_bytes()) for p in good]
    members.insert(1, ("night/corrupt.avro", data[: len(data) // 3]))
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    for name, _ in members:
        source = f"{path}::{name}"
        if name.endswith("corrupt.avro"):
            batch.bad[source] = "unreadable Avro block"
        else:
            batch.good.append(source)
