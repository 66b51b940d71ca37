"""Peak memory and time of reading each kind of bomb with the default read limits.

Each bomb (4 GiB inside a few MB, built by ``tests/alerts/bombs.py``; nothing is committed) is
read in a fresh process: ``read_alerts`` over the file, and ``make_triplet`` for every alert it
yields (the gzip cutout bomb bites there). The process first reads one real packet, so imports,
caches and the baseline are paid; the figures are its peak resident set (``VmHWM``) and how much
that peak grew while reading the bomb, the wall time, and the rejection reason. A last row reads
the zstd bomb with the block limit raised to 8 GiB, for contrast (under ``--cap``, a ``ulimit -v``
in KiB, it ends in ``MemoryError``).

    python benchmarks/bench_bombs.py             # --size 4 (GiB inside each bomb), --cap 3145728
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRIGHTSCAN_SHARED_DIR", REPO.parent / "shared"))
sys.path.insert(0, str(REPO / "tests"))  # the bomb builders live beside the tests that use them
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_read import cpu_line, load  # noqa: E402

_CHILD = r"""
import json, sys, time
from brightscan.alerts import Alert, read_alerts
from brightscan.alerts.limits import ReadLimits
from brightscan.errors import AlertError
from brightscan.preprocess import make_triplet

bomb, good, limits = sys.argv[1], sys.argv[2], ReadLimits.from_mapping(json.loads(sys.argv[3]))

def read(path):
    reasons = []
    for item in read_alerts(path, limits=limits):
        if isinstance(item, Alert):
            try:
                make_triplet(item, max_cutout_bytes=limits.max_cutout_bytes)
            except AlertError as exc:
                reasons.append(exc.reason)
        else:
            reasons.append(item.reason)
    return reasons

def peak_kib():
    # VmHWM: this process's peak resident set since exec (ru_maxrss would carry the forking
    # parent's peak across exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))

read(good)
before = peak_kib()
start = time.perf_counter()
try:
    reasons = read(bomb)
except MemoryError:
    reasons = ["MemoryError"]
seconds = time.perf_counter() - start
after = peak_kib()
print(json.dumps({"baseline_mb": before / 1024, "growth_mb": (after - before) / 1024, "seconds": seconds,
                  "reasons": reasons}))
"""


def build(folder: Path, size: int) -> dict[str, tuple[Path, dict]]:
    """name -> (file, limits overriding the defaults)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alerts import bombs
    from alerts.samples import avro_bytes, load_packet, real_avro_files, with_stamp

    files = real_avro_files(SHARED / "data" / "real-alerts" / "ztf-avro")
    schema, (record,) = load_packet(files[14])
    out: dict[str, tuple[Path, dict]] = {}

    def put(name: str, data: bytes, limits: dict | None = None) -> None:
        path = folder / name
        path.write_bytes(data)
        out[name] = (path, limits or {})

    for codec in ("zstandard", "deflate", "bzip2", "xz", "snappy", "lz4"):
        put(f"{codec}-block.avro", bombs.container(schema, codec, [(1, bombs.CODEC_BOMBS[codec](size))]))
    put("record-count.avro", bombs.record_count_bomb(2**60))
    put("array-count.avro", bombs.array_count_bomb(2**60))
    put("deep-array-count.avro", bombs.deep_array_count_bomb(2**60))  # a schema only fastavro could read
    put("gzip-cutout.avro", avro_bytes(schema, [with_stamp(record, "cutoutScience", bombs.gzip_zeros(size))]))
    put("tar-member.tar.gz", bombs.tar_with_bomb([(f.name, f.read_bytes()) for f in files[:2]], "bomb.avro", size))
    # a Parquet row group of 64 stamps of 4 MiB of zeros (256 MiB), against a 64 MiB limit (the
    # default, 1 GiB, would need a >1 GiB table in memory just to write the bomb): plainly encoded,
    # and dictionary-encoded (one 4 MiB value, 64 references: the metadata says ~4 MiB)
    table = pq.read_table(SHARED / "data" / "real-alerts" / "fink-parquet" / "datatest-part2.parquet").slice(0, 64)
    stamps = table.column("cutoutScience").combine_chunks()
    big = pa.array([{**row, "stampData": bytes(4 << 20)} for row in stamps.to_pylist()], type=stamps.type)
    table = table.set_column(table.schema.get_field_index("cutoutScience"), "cutoutScience", big)
    for name, dictionary in (("row-group.parquet", False), ("dictionary.parquet", True)):
        pq.write_table(table, folder / name, compression="zstd", use_dictionary=dictionary)
        out[f"{name}, limit 64 MiB"] = (folder / name, {"max_row_group_bytes": "64MiB"})
    out["zstandard-block.avro, limit 8 GiB"] = (folder / "zstandard-block.avro", {"max_block_bytes": "8GiB"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4, help="GiB inside each bomb")
    parser.add_argument("--cap", type=int, default=3 * 1024 * 1024, help="ulimit -v (KiB) of each reader")
    args = parser.parse_args()
    good = str(SHARED / "data" / "real-alerts" / "ztf-avro")
    print(f"CPU: {cpu_line()}; load average: {load()}; cap: ulimit -v {args.cap} KiB", flush=True)
    print("\n| bomb | file size | peak RSS | growth | time | rejection |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as tmp:
        for name, (path, limits) in build(Path(tmp), args.size << 30).items():
            command = f'ulimit -v {args.cap} && exec "$0" "$@"'
            done = subprocess.run(["bash", "-c", command, sys.executable, "-c", _CHILD, str(path), good,
                                   json.dumps(limits)], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            reasons = sorted(set(result["reasons"]))
            shown = reasons[0] if len(reasons) == 1 else f"{len(result['reasons'])} rejections: {reasons}"
            peak = result["baseline_mb"] + result["growth_mb"]
            print(f"| {name} | {path.stat().st_size:,} B | {peak:.0f} MB | {result['growth_mb']:.1f} MB | "
                  f"{result['seconds']:.2f} s | {shown} |", flush=True)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
