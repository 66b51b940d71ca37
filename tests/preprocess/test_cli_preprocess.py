"""``brightscan preprocess`` through Typer's CliRunner: outputs, summary, exit codes."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from alerts.samples import avro_bytes, load_packet, real_avro_files
from brightscan.alerts import read_alerts
from brightscan.cli.main import app
from brightscan.preprocess import FEATURE_SETS, make_triplet
from preprocess.mutants import build_mixed_batch

ID_COLUMNS = ["candid", "objectId", "jd", "magpsf", "fid", "source"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    result = runner.invoke(app, ["preprocess", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("feature_set", ["v1", "icml2023"])
def test_outputs_shape_columns_and_row_order(tmp_path, runner, real_avro_dir, feature_set):
    out = tmp_path / "out"
    result = invoke(runner, str(real_avro_dir), "--out", str(out), "--features", feature_set)
    assert result.exit_code == 0, result.output
    n_files = len(real_avro_files(real_avro_dir))
    n_rejected = pq.read_table(out / "rejected.parquet").num_rows
    n_accepted = n_files - n_rejected  # every file holds one alert: each is accounted for
    assert f"accepted {n_accepted}, rejected {n_rejected}" in result.output and n_accepted > 30

    triplets = np.load(out / "triplets.npy", mmap_mode="r")
    assert triplets.dtype == np.float32 and triplets.shape == (n_accepted, 63, 63, 3)
    table = pq.read_table(out / "alerts.parquet")
    features = [n for n in FEATURE_SETS[feature_set] if n not in ID_COLUMNS]
    assert table.column_names == ID_COLUMNS + features
    assert str(table.schema.field("candid").type) == "int64"
    assert table.schema.metadata[b"feature_set"].decode() == feature_set
    rows = table.to_pylist()
    alerts = {a.source: a for a in read_alerts(real_avro_dir)}
    for triplet, row in zip(triplets, rows):
        alert = alerts[row["source"]]
        assert row["candid"] == alert.candid and row["objectId"] == alert.object_id
        np.testing.assert_array_equal(triplet, make_triplet(alert))
    assert len(rows) == n_accepted
    rejected = pq.read_table(out / "rejected.parquet")
    assert rejected.column_names == ["candid", "objectId", "source", "stage", "reason"]
    assert set(rejected.column("source").to_pylist()).isdisjoint(row["source"] for row in rows)


def test_mixed_batch_exit_zero_and_summary_by_reason(tmp_path, runner, real_avro_dir, real_parquet_dir):
    batch = build_mixed_batch(tmp_path / "in", real_avro_dir, real_parquet_dir)
    result = invoke(runner, str(batch.root), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"accepted {len(batch.good)}, rejected {len(batch.bad)}" in result.output
    for fragment in ("missing feature sgscore", "all zero", "overflow", "file is empty"):
        assert fragment in result.output
    assert pq.read_table(tmp_path / "out" / "rejected.parquet").num_rows == len(batch.bad)


def test_overflow_production_accepts_sentinel_templates(tmp_path, runner, real_avro_dir):
    schema, (record,) = load_packet(real_avro_files(real_avro_dir)[0])
    from alerts.samples import stamp_bytes, with_stamp

    image = np.ones((63, 63), ">f4")
    image[0, :5] = 3e38
    path = tmp_path / "in" / "sentinel.avro"
    path.parent.mkdir()
    path.write_bytes(avro_bytes(schema, [with_stamp(record, "cutoutTemplate", stamp_bytes(image))]))
    rejected = invoke(runner, str(path), "--out", str(tmp_path / "a"))
    # nothing accepted is a failure: the reasons are printed, and no output is left behind
    assert rejected.exit_code == 1 and "no alert was accepted (1 rejected)" in " ".join(rejected.output.split())
    assert "sentinel" in rejected.output and not (tmp_path / "a").exists()
    accepted = invoke(runner, str(path), "--out", str(tmp_path / "b"), "--overflow", "production")
    assert accepted.exit_code == 0 and "accepted 1, rejected 0" in accepted.output
    triplets = np.load(tmp_path / "b" / "triplets.npy")
    assert not triplets[0, :, :, 1].any()  # production's overflowed norm zeroes the channel


def test_nothing_readable_exits_2(tmp_path, runner):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.avro").write_bytes(b"")
    (tmp_path / "in" / "junk.avro").write_bytes(b"hello")
    result = invoke(runner, str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "no alert could be read" in result.output
    assert not (tmp_path / "out").exists()  # no half-written outputs


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--features", "v9"], "'v9' is not one of 'v1', 'icml2023'"),
     (["--overflow", "clip"], "'clip' is not one of 'reject', 'production'"),
     (["--read-limit", "max_block_bytes"], "'max_block_bytes' is not NAME=SIZE"),
     (["--read-limit", "max_alert=5"], "unknown read limit(s) ['max_alert']"),
     (["--read-limit", "max_cutout_bytes=-1"], "'-1' is not a size")],
)
def test_bad_options_exit_2(tmp_path, runner, real_avro_dir, args, message):
    result = invoke(runner, str(real_avro_dir), "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and message in result.output


def test_read_limits_from_the_command_line(tmp_path, runner, real_avro_dir):
    """``--read-limit`` reaches both the cutout inflation and the readers."""
    small = invoke(runner, str(real_avro_dir), "--out", str(tmp_path / "a"),
                   "--read-limit", "max_cutout_bytes=10KiB", "--read-limit", "max_block_bytes=64MiB")
    assert small.exit_code == 1  # every stamp (~20 kB inflated) is refused: nothing accepted
    assert "cutout inflates to more than N bytes" in small.output and "no alert was accepted" in small.output
    blocks = invoke(runner, str(real_avro_dir), "--out", str(tmp_path / "b"), "--read-limit", "max_block_bytes=1k")
    assert blocks.exit_code == 2  # no packet fits a 1 kB block: nothing could be read at all
    assert "no alert could be read" in blocks.output
    default = invoke(runner, str(real_avro_dir), "--out", str(tmp_path / "c"), "--read-limit", "max_cutout_bytes=1MiB")
    assert default.exit_code == 0 and "accepted 36" in default.output


def test_missing_input_exits_2(tmp_path, runner):
    result = invoke(runner, str(tmp_path / "nope.avro"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "out").exists()


def test_causal_flag_merges_earlier_alerts_never_later(tmp_path, runner, real_avro_dir):
    schema, (record,) = load_packet(real_avro_files(real_avro_dir)[3])
    jd, mag = record["candidate"]["jd"], record["candidate"]["magpsf"]

    def variant(candid_offset: int, djd: float, magpsf: float) -> dict:
        rec = copy.deepcopy(record)
        rec["candid"] += candid_offset
        rec["candidate"].update(candid=rec["candid"], jd=jd + djd, magpsf=magpsf)
        return rec

    later, earlier = variant(1, +2.0, 10.0), variant(2, -400.0, 25.0)
    (tmp_path / "in").mkdir()
    for name, rec in (("a", record), ("b", later), ("c", earlier)):
        (tmp_path / "in" / f"{name}.avro").write_bytes(avro_bytes(schema, [rec]))
    plain = invoke(runner, str(tmp_path / "in"), "--out", str(tmp_path / "p"))
    causal = invoke(runner, str(tmp_path / "in"), "--out", str(tmp_path / "c"), "--causal")
    assert plain.exit_code == causal.exit_code == 0
    rows_p = {r["candid"]: r for r in pq.read_table(tmp_path / "p" / "alerts.parquet").to_pylist()}
    rows_c = {r["candid"]: r for r in pq.read_table(tmp_path / "c" / "alerts.parquet").to_pylist()}
    this = record["candid"]
    # the real alert: the earlier faint detection lengthens its history, the later bright one is unseen
    assert rows_c[this]["age"] == pytest.approx(400.0, abs=1e-3)
    assert rows_c[this]["maxmag_so_far"] == 25.0
    assert rows_c[this]["peakmag_so_far"] == rows_p[this]["peakmag_so_far"] != 10.0
    # the later alert sees both earlier ones
    assert rows_c[this + 1]["peakmag_so_far"] == 10.0 and rows_c[this + 1]["maxmag_so_far"] == 25.0
    assert rows_c[this + 1]["age"] == pytest.approx(402.0, abs=1e-3)
    assert rows_p[this]["age"] < 400.0 and mag < 25.0
