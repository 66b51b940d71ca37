"""Readers: Avro containers (one or many records, each schema version), tarballs read as a stream,
directories, broker Parquet, and the usage errors of ``read_alerts``."""

from __future__ import annotations

import copy
import io
import tarfile
import tracemalloc
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest

from alerts.samples import avro_bytes, load_packet, real_avro_files
from brightscan.alerts import Alert, Rejection, decode_avro, iter_input_files, read_alerts
from brightscan.errors import InputError


@pytest.fixture
def packets(real_avro_dir) -> list[tuple[Path, dict, dict]]:
    """(path, writer schema, record) of every real Avro alert."""
    out = []
    for path in real_avro_files(real_avro_dir):
        schema, records = load_packet(path)
        assert len(records) == 1
        out.append((path, schema, records[0]))
    return out


def by_version(packets, version: str):
    return [(p, s, r) for p, s, r in packets if r["schemavsn"] == version]


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_multi_record_container(tmp_path, packets, codec):
    chosen = by_version(packets, "4.01")[:3]
    path = tmp_path / "night.avro"
    path.write_bytes(avro_bytes(chosen[0][1], [r for _, _, r in chosen], codec=codec))
    alerts = list(read_alerts(path))
    assert [a.candid for a in alerts] == [r["candid"] for _, _, r in chosen]
    assert [a.source for a in alerts] == [str(path), f"{path}#1", f"{path}#2"]
    assert all(a.cutouts["cutoutScience"] == r["cutoutScience"]["stampData"] for a, (_, _, r) in zip(alerts, chosen))


def test_one_record_per_block_and_corrupt_last_block(tmp_path, packets):
    chosen = by_version(packets, "4.01")[:4]
    schema = chosen[0][1]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(copy.deepcopy(schema)), [r for _, _, r in chosen], sync_interval=1)
    data = out.getvalue()
    path = tmp_path / "blocks.avro"
    path.write_bytes(data)
    assert [a.candid for a in read_alerts(path)] == [r["candid"] for _, _, r in chosen]
    path.write_bytes(data[:-30])  # the last block loses its end
    items = list(read_alerts(path))
    assert [a.candid for a in items[:3]] == [r["candid"] for _, _, r in chosen[:3]]
    assert isinstance(items[3], Rejection) and items[3].source == f"{path}#3"
    assert items[3].reason.startswith("unreadable Avro block (record 3): damaged block framing (truncated")


def test_schema_cache_keeps_each_files_own_schema(tmp_path, packets):
    """Two files with different writer schemas, read alternately, each decode with their own."""
    (p32, s32, r32), (p401, s401, r401) = by_version(packets, "3.2")[0], by_version(packets, "4.01")[0]
    for _ in range(2):
        (a32,) = list(decode_avro(p32.read_bytes()))
        (a401,) = list(decode_avro(p401.read_bytes()))
        assert a32.schemavsn == "3.2" and a401.schemavsn == "4.01"
        assert set(a32.candidate) == set(r32["candidate"]) and set(a401.candidate) == set(r401["candidate"])
        assert set(a32.candidate) != set(a401.candidate)


@pytest.mark.parametrize("version", ["3.2", "3.3", "4.01"])
def test_each_schema_version(packets, version):
    chosen = by_version(packets, version)
    assert chosen, f"no real alert of schema {version}"
    for path, _, record in chosen:
        (alert,) = list(decode_avro(path.read_bytes(), path.name))
        assert isinstance(alert, Alert) and alert.schemavsn == version
        assert alert.object_id == record["objectId"] and alert.candid == record["candid"]
        assert alert.candidate["jd"] == record["candidate"]["jd"]
        assert len(alert.prv_candidates) == len(record["prv_candidates"] or ())


def test_writer_schema_is_authoritative(packets):
    """A writer schema we have never seen (an extra candidate field, reordered fields) still reads."""
    _, schema, record = by_version(packets, "3.3")[0]
    schema = copy.deepcopy(schema)
    cand_type = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    cand_type["fields"].insert(0, {"name": "brand_new", "type": ["null", "double"], "default": None})
    cand_type["fields"].reverse()
    record = copy.deepcopy(record)
    record["candidate"]["brand_new"] = 4.5
    (alert,) = list(decode_avro(avro_bytes(schema, [record])))
    assert alert.candidate["brand_new"] == 4.5
    assert alert.candidate["magpsf"] == record["candidate"]["magpsf"]


def test_mixed_versions_in_one_batch(tmp_path, packets):
    for version in ("3.2", "3.3", "4.01"):
        path, schema, record = by_version(packets, version)[0]
        (tmp_path / path.name).write_bytes(avro_bytes(schema, [record]))
    assert sorted(a.schemavsn for a in read_alerts(tmp_path)) == ["3.2", "3.3", "4.01"]


def _tarball(path: Path, members: list[tuple[str, bytes]], mode: str) -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("suffix", "mode"), [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz")])
def test_tarball_streamed(tmp_path, packets, suffix, mode):
    members = [(f"ztf_public_20200202/{p.name}", p.read_bytes()) for p, _, _ in packets[:5]]
    members.insert(2, ("ztf_public_20200202/README.txt", b"not an alert"))
    archive = _tarball(tmp_path / f"night{suffix}", members, mode)
    before = sorted(tmp_path.rglob("*"))
    alerts = list(read_alerts(archive))
    assert sorted(tmp_path.rglob("*")) == before  # nothing extracted
    assert [a.candid for a in alerts] == [r["candid"] for _, _, r in packets[:5]]
    assert alerts[0].source == f"{archive}::ztf_public_20200202/{packets[0][0].name}"


def test_tarball_memory_is_constant(tmp_path, packets):
    def peak_bytes(n_members: int) -> int:
        members = [(f"m{i:04d}.avro", packets[i % len(packets)][0].read_bytes()) for i in range(n_members)]
        archive = _tarball(tmp_path / f"n{n_members}.tar", members, "w")
        tracemalloc.start()
        count = sum(1 for _ in read_alerts(archive))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == n_members
        return peak

    small, large = peak_bytes(10), peak_bytes(150)  # 150 alerts hold ~11 MB of packets
    assert large < small + 2_000_000, (small, large)


def test_directories_recursive_sorted_and_foreign_files_skipped(tmp_path, packets):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    paths = [tmp_path / "b" / "deep" / "z.avro", tmp_path / "a" / "y.avro", tmp_path / "x.avro"]
    for path, (source, _, _) in zip(paths, packets):
        path.write_bytes(source.read_bytes())
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    # a directory's own files first (sorted), then its subdirectories (sorted), recursively
    expected = [tmp_path / "x.avro", tmp_path / "a" / "y.avro", tmp_path / "b" / "deep" / "z.avro"]
    assert list(iter_input_files(tmp_path)) == expected
    assert [a.source for a in read_alerts(tmp_path)] == [str(p) for p in expected]


def test_parquet_rows_and_extras(tmp_path, real_parquet_dir):
    source = next(f for f in sorted(real_parquet_dir.glob("*.parquet"))
                  if "cdsxmatch" in pq.ParquetFile(f).schema_arrow.names)
    table = pq.read_table(source).slice(0, 4)
    path = tmp_path / "few.parquet"
    pq.write_table(table, path)
    alerts = list(read_alerts(path))
    rows = table.to_pylist()
    assert [a.candid for a in alerts] == [r["candid"] for r in rows]
    assert [a.source for a in alerts] == [f"{path}#{i}" for i in range(4)]
    assert all(a.extra["cdsxmatch"] == r["cdsxmatch"] for a, r in zip(alerts, rows))
    assert all(a.cutouts["cutoutDifference"] == r["cutoutDifference"]["stampData"] for a, r in zip(alerts, rows))


def test_parquet_without_alert_columns_is_rejected(tmp_path):
    import pyarrow as pa

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    (item,) = list(read_alerts(path))
    assert isinstance(item, Rejection) and "lacks alert column(s) objectId, candidate" in item.reason


def test_truncated_parquet_is_rejected(tmp_path, real_parquet_dir):
    source = sorted(real_parquet_dir.glob("*.parquet"))[0]
    path = tmp_path / "cut.parquet"
    path.write_bytes(source.read_bytes()[: 100_000])
    (item,) = list(read_alerts(path))
    assert isinstance(item, Rejection) and item.stage == "read" and "not a readable Parquet file" in item.reason


def test_usage_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list(read_alerts(tmp_path / "nope.avro"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="cannot read this kind of file"):
        list(read_alerts([tmp_path / "x.json"]))


def test_reading_is_lazy(tmp_path, packets):
    path = tmp_path / "one.avro"
    path.write_bytes(packets[0][0].read_bytes())
    items = read_alerts([path, path])
    first = next(items)
    path.unlink()  # the second input is opened only when reached
    assert isinstance(first, Alert)
    (second,) = list(items)
    assert isinstance(second, Rejection) and "cannot open file" in second.reason
