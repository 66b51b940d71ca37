"""Bombs beside good alerts, read and scored in a process whose address space is capped with
``ulimit -v``: the bombs (4 GiB each inside a few MB) become rejections naming their limit, and
every good alert is still read and scored by a seeded model, as it is without the bombs.

A control in the same capped process shows the cap bites: the zstd bomb read with a block limit
above the cap raises ``MemoryError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerts import bombs
from alerts.samples import avro_bytes, load_packet, real_avro_files, with_stamp

#: The address-space cap: torch and the scorer take ~1 GiB of it (VmPeak measured 0.95 GiB), the
#: bombs hold 4 GiB each, so unbounded reading of any of them cannot fit.
CAP_KIB = 2 * 1024 * 1024
BOMB_BYTES = 4 << 30

_CHILD = textwrap.dedent("""
    import json, sys
    from brightscan.alerts import Rejection, decode_avro
    from brightscan.alerts.limits import ReadLimits
    from brightscan.model import create_model, save_model
    from brightscan.score.scorer import Scorer

    root = sys.argv[1]
    model = save_model(create_model("mi_cnn.tiny", seed=0, device="cpu"), root + "/model")
    scorer = Scorer(model, device="cpu", num_threads=1)
    out = {}
    for name in ("good", "mixed"):
        results = scorer.score_files([root + "/" + name])
        out[name] = {"scored": sorted(int(r["candid"]) for r in results.rows),
                     "rejections": [r.as_row() for r in results.rejections]}
    try:  # control: the same zstd bomb with the block limit above the cap
        data = open(root + "/mixed/zstd_bomb.avro", "rb").read()
        list(decode_avro(data, "control", ReadLimits(max_block_bytes=8 << 30)))
        out["control"] = "read"
    except MemoryError:
        out["control"] = "MemoryError"
    out["status"] = {k: v.strip() for k, v in (l.split(":", 1) for l in open("/proc/self/status"))
                     if k in ("VmPeak", "VmHWM")}
    print(json.dumps(out))
""")


def _write_inputs(root: Path, avro_dir: Path) -> dict[str, str]:
    """``good/`` real packets; ``mixed/`` the same beside five bombs; returns bomb file -> limit."""
    files = real_avro_files(avro_dir)[:8]
    (root / "good").mkdir(parents=True)
    mixed = root / "mixed"
    mixed.mkdir()
    for path in files:
        (root / "good" / path.name).write_bytes(path.read_bytes())
        (mixed / path.name).write_bytes(path.read_bytes())
    schema, (record,) = load_packet(files[0])
    (mixed / "zstd_bomb.avro").write_bytes(bombs.container(schema, "zstandard", [(1, bombs.zstd_zeros(BOMB_BYTES))]))
    (mixed / "deflate_bomb.avro").write_bytes(bombs.container(schema, "deflate", [(1, bombs.deflate_zeros(BOMB_BYTES))]))
    (mixed / "count_bomb.avro").write_bytes(bombs.record_count_bomb(2**60))
    cutout = with_stamp(record, "cutoutDifference", bombs.gzip_zeros(BOMB_BYTES))
    (mixed / "cutout_bomb.avro").write_bytes(avro_bytes(schema, [cutout]))
    members = [(f"night/{p.name}", p.read_bytes()) for p in real_avro_files(avro_dir)[8:11]]
    (mixed / "night.tar.gz").write_bytes(bombs.tar_with_bomb(members, "night/bomb.avro", BOMB_BYTES))
    total = sum(p.stat().st_size for p in mixed.iterdir())
    assert total < 30_000_000, "the bombs are small files"
    return {"zstd_bomb.avro": "max_block_bytes", "deflate_bomb.avro": "max_block_bytes",
            "count_bomb.avro": "max_block_records", "cutout_bomb.avro": "max_cutout_bytes",
            "night.tar.gz::night/bomb.avro": "max_member_bytes"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ulimit -v and /proc are Linux's")
def test_bombs_beside_good_alerts_under_ulimit(tmp_path, real_avro_dir):
    expected = _write_inputs(tmp_path, real_avro_dir)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MALLOC_ARENA_MAX": "2"}
    run = subprocess.run(["bash", "-c", f'ulimit -v {CAP_KIB} && exec "$0" "$@"', sys.executable,
                          str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["control"] == "MemoryError", "the cap must be low enough for an unbounded bomb to fail"
    good, mixed = out["good"], out["mixed"]
    assert len(good["scored"]) >= 6
    # every good alert beside the bombs is read and scored (the archive adds three more)
    assert set(good["scored"]) <= set(mixed["scored"])
    assert len(mixed["scored"]) >= len(good["scored"]) + 2
    bomb_rejections = [r for r in mixed["rejections"] if r not in good["rejections"]]
    for suffix, limit in expected.items():
        found = [r for r in bomb_rejections if r["source"].split("/mixed/")[-1].startswith(suffix)]
        assert found, f"{suffix} was not rejected"
        assert all(f"({limit}=" in r["reason"] for r in found), found
    assert len(bomb_rejections) == len(expected)
