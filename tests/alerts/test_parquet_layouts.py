"""Broker Parquet as brokers and Spark lay it out: Fink's raw and science layouts, hive-partitioned
directories, other column orders and extra columns, missing columns, a damaged row group."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from brightscan.alerts import Alert, Rejection, iter_input_files, read_alerts

RAW, SCIENCE = "alerts.parquet", "superluminous.parquet"  # Fink's raw layout; its science layout


def by_candid(items) -> dict[int, Alert]:
    alerts = [i for i in items if isinstance(i, Alert)]
    assert len({a.candid for a in alerts}) == len(alerts)
    return {a.candid: a for a in alerts}


def same_alert(a: Alert, b: Alert) -> bool:
    return (a.object_id, a.candidate, a.prv_candidates, a.cutouts) == (b.object_id, b.candidate, b.prv_candidates,
                                                                         b.cutouts)


def test_fink_raw_and_science_layouts(real_parquet_dir):
    for name in (RAW, SCIENCE):
        path = real_parquet_dir / name
        items = list(read_alerts(path))
        assert all(isinstance(i, Alert) for i in items)
        assert [i.candid for i in items] == pq.read_table(path, columns=["candid"]).column("candid").to_pylist()
    science = pq.ParquetFile(real_parquet_dir / SCIENCE).schema_arrow
    assert len(science.names) > 50 and {"year", "month", "day"} <= set(science.names)


def test_hive_partitioned_directory(tmp_path, real_parquet_dir):
    """Spark's partitionBy("year", "month", "day") output, with _SUCCESS and a failed task's leftovers."""
    table = pq.read_table(real_parquet_dir / RAW)
    nights = pc.floor(pc.subtract(pc.struct_field(table.column("candidate"), "jd"), 2400000.5))
    table = table.append_column("year", pa.array(["2019"] * table.num_rows)) \
                 .append_column("month", pa.array(["06"] * table.num_rows)) \
                 .append_column("day", pc.cast(pc.add(pc.cast(nights, pa.int64()), 0), pa.string()))
    root = tmp_path / "science"
    ds.write_dataset(table, root, format="parquet", partitioning=["year", "month", "day"],
                     partitioning_flavor="hive", max_rows_per_group=16, max_rows_per_file=20,
                     basename_template="part-{i}.c000.snappy.parquet")
    (root / "_SUCCESS").write_bytes(b"")
    leftovers = root / "_temporary" / "0"
    leftovers.mkdir(parents=True)
    pq.write_table(table, leftovers / "part-00000.parquet")
    files = list(iter_input_files(root))
    assert len(files) > 2 and all("year=2019/month=06/day=" in str(f) for f in files)
    read = by_candid(read_alerts(root))
    expected = by_candid(read_alerts(real_parquet_dir / RAW))
    assert read.keys() == expected.keys()
    assert all(same_alert(read[c], expected[c]) for c in expected)


def test_other_column_order_extra_and_missing_columns(tmp_path, real_parquet_dir):
    table = pq.read_table(real_parquet_dir / SCIENCE)
    expected = by_candid(read_alerts(real_parquet_dir / SCIENCE))
    shuffled = table.select(sorted(table.column_names, reverse=True))
    shuffled = shuffled.append_column("my_broker_score", pa.array(range(table.num_rows), pa.float64()))
    pq.write_table(shuffled, tmp_path / "shuffled.parquet")
    read = by_candid(read_alerts(tmp_path / "shuffled.parquet"))
    assert read.keys() == expected.keys() and all(same_alert(read[c], expected[c]) for c in expected)
    assert all(read[c].extra == expected[c].extra for c in expected)

    thin = table.drop_columns(["candid", "prv_candidates", "cutoutScience"])
    pq.write_table(thin, tmp_path / "thin.parquet")
    read = by_candid(read_alerts(tmp_path / "thin.parquet"))
    assert read.keys() == expected.keys()  # candid from candidate.candid
    assert all(a.prv_candidates == () and a.cutouts["cutoutScience"] is None for a in read.values())
    assert all(read[c].cutouts["cutoutTemplate"] == expected[c].cutouts["cutoutTemplate"] for c in expected)


def test_a_damaged_row_group_loses_only_its_rows(tmp_path, real_parquet_dir):
    table = pq.read_table(real_parquet_dir / RAW).slice(0, 30)
    path = tmp_path / "groups.parquet"
    pq.write_table(table, path, row_group_size=10, compression="snappy")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3
    group = meta.row_group(1)
    data = bytearray(path.read_bytes())
    for column in range(group.num_columns):  # scribble over every data page of row group 1
        chunk = group.column(column)
        start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
        end = start + chunk.total_compressed_size
        data[start + 8:end - 8] = b"\xa5" * (end - start - 16)
    path.write_bytes(bytes(data))
    items = list(read_alerts(path))
    assert len(items) == 30
    alerts = [i for i in items if isinstance(i, Alert)]
    lost = [i for i in items if isinstance(i, Rejection)]
    assert [a.source for a in alerts] == [f"{path}#{n}" for n in [*range(10), *range(20, 30)]]
    assert [r.source for r in lost] == [f"{path}#{n}" for n in range(10, 20)]
    assert all(r.reason.startswith("unreadable Parquet row group 1 (rows 10-19): ") for r in lost)
    assert [a.candid for a in alerts] == [c for n, c in enumerate(table.column("candid").to_pylist())
                                          if not 10 <= n < 20]


@pytest.mark.parametrize("cut", [100, 50_000])
def test_a_truncated_parquet_file_is_one_file_level_rejection(tmp_path, real_parquet_dir, cut):
    path = tmp_path / "cut.parquet"
    path.write_bytes((real_parquet_dir / RAW).read_bytes()[:cut])
    (item,) = list(read_alerts(path))
    assert isinstance(item, Rejection) and item.source == str(path)
    assert item.reason.startswith("not a readable Parquet file")


def test_cutouts_stored_as_bare_bytes(tmp_path, real_parquet_dir):
    """Fink's image archives keep ``cutoutScience.stampData`` as the column ``cutoutScience``."""
    table = pq.read_table(real_parquet_dir / RAW)
    for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        index = table.column_names.index(name)
        table = table.set_column(index, name, pc.struct_field(table.column(name), "stampData"))
    assert table.schema.field("cutoutScience").type == pa.binary()
    pq.write_table(table, tmp_path / "images.parquet")
    read = by_candid(read_alerts(tmp_path / "images.parquet"))
    expected = by_candid(read_alerts(real_parquet_dir / RAW))
    assert read.keys() == expected.keys() and all(same_alert(read[c], expected[c]) for c in expected)


def test_a_raw_kafka_dump(tmp_path, real_avro_dir):
    """Spark's Kafka source written as it came: each value is one ZTF Avro packet."""
    files = sorted(real_avro_dir.glob("*.avro"))[:5]
    values = [f.read_bytes() for f in files]
    values[2] = values[2][:500]  # a message cut short
    values.insert(3, None)
    n = len(values)
    table = pa.table({"key": pa.array([None] * n, pa.binary()), "value": pa.array(values, pa.binary()),
                      "topic": ["ztf_20231012_programid1"] * n, "partition": pa.array([0] * n, pa.int32()),
                      "offset": pa.array(range(n), pa.int64())})
    path = tmp_path / "kafka.parquet"
    pq.write_table(table, path)
    items = list(read_alerts(path))
    assert [type(i) for i in items] == [Alert, Alert, Rejection, Rejection, Alert, Alert]
    assert [i.source for i in items] == [f"{path}#{r}" for r in range(6)]
    assert items[2].reason.startswith("unreadable Avro") and items[3].reason == "Kafka message has no value"
    expected = [a.candid for f in files for a in read_alerts(f)]
    assert [i.candid for i in items if isinstance(i, Alert)] == [expected[k] for k in (0, 1, 3, 4)]
