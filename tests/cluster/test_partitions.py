"""Planning partitions, atomic files and the run folder's checks (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from brightscan.distributed import RunLayout, plan_partitions
from brightscan.distributed.partitions import UNKNOWN_NIGHT, atomic_parquet, night_of
from brightscan.errors import ConfigError, InputError


def test_night_comes_from_the_file_or_its_folder() -> None:
    assert night_of(Path("alerts/ztf_public_20180601.tar.gz")) == "20180601"
    assert night_of(Path("x/20200202_1105522281015015000.avro")) == "20200202"
    assert night_of(Path("alerts/20230301/123.avro")) == "20230301"
    assert night_of(Path("alerts/datatest-part2.parquet")) is None
    assert night_of(Path("alerts/ztf_public_20181399.tar.gz")) is None  # month 13 is not a date


def test_archives_are_one_partition_each_and_loose_avro_is_grouped_by_night(tmp_path: Path) -> None:
    for name in ("ztf_public_20180601.tar.gz", "ztf_public_20180602.tar.gz", "b.parquet"):
        (tmp_path / name).write_bytes(b"x")
    loose = tmp_path / "loose"
    loose.mkdir()
    for name in ("20200202_1.avro", "20200202_2.avro", "20231012_1.avro"):
        (loose / name).write_bytes(b"x")
    parts = plan_partitions([tmp_path])
    by_night = {p.night: p for p in parts}
    assert len(parts) == 5 and len({p.name for p in parts}) == 5
    assert len(by_night["20200202"].paths) == 2 and by_night["20180601"].key == "night=20180601"
    assert [p for p in parts if p.night == UNKNOWN_NIGHT][0].paths[0].endswith("b.parquet")
    # a changed file changes its partition's fingerprint, so a rerun redoes it
    before = {p.name: p.fingerprint for p in parts}
    (tmp_path / "b.parquet").write_bytes(b"xy")
    after = {p.name: p.fingerprint for p in plan_partitions([tmp_path])}
    assert [n for n in before if before[n] != after[n]] == [p.name for p in parts if p.night == UNKNOWN_NIGHT]
    with pytest.raises(InputError, match="does not exist"):
        plan_partitions([tmp_path / "nothing"])
    with pytest.raises(InputError, match="no alert file"):
        plan_partitions([_empty(tmp_path)])


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_atomic_write_leaves_no_temporary_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "k=1" / "p.parquet"
    import pyarrow.parquet as pq

    schema = pa.schema([("a", pa.int64())])
    with atomic_parquet(path, schema) as writer:
        writer.write_table(pa.table({"a": [1, 2]}))
    with pytest.raises(RuntimeError), atomic_parquet(path, schema) as writer:  # a failed rewrite
        writer.write_table(pa.table({"a": [9]}))
        raise RuntimeError("worker died")
    assert pq.read_table(path).column("a").to_pylist() == [1, 2]
    with atomic_parquet(path, schema) as writer:
        writer.write_table(pa.table({"a": [3]}))

    assert pq.read_table(path).column("a").to_pylist() == [3]
    assert [p.name for p in path.parent.iterdir()] == ["p.parquet"]


def test_run_folder_refuses_another_run_and_empty_resume(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run", "scores")
    with pytest.raises(ConfigError, match="nothing to resume"):
        layout.start({"model_version": "1"}, resume=True)
    layout.start({"model_version": "1"}, resume=False)
    stale = tmp_path / "run" / "scores" / "night=1" / ".p.parquet.tmp-abc"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    layout.start({"model_version": "1"}, resume=True)
    assert not stale.exists()  # a crash's temporary is removed; its partition has no manifest entry
    with pytest.raises(ConfigError, match="differs in model_version"):
        layout.start({"model_version": "2"}, resume=False)
    assert json.loads((tmp_path / "run" / "_run.json").read_text()) == {"model_version": "1"}
