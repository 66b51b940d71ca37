"""Bad input: mutated real alerts never crash a batch; each bad alert is rejected with its reason
and each good alert of the same batch is accepted."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest

from alerts.samples import real_avro_files
from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.errors import AlertError
from brightscan.preprocess import preprocess_alert
from brightscan.preprocess.batch import preprocess_to_dir
from preprocess.mutants import build_mixed_batch


def _file_of(source: str) -> str:
    return source.split("#", 1)[0]  # "path#3": the 4th record of a file


@pytest.fixture
def batch(tmp_path, real_avro_dir, real_parquet_dir):
    return build_mixed_batch(tmp_path / "in", real_avro_dir, real_parquet_dir)


def _matching(rejected: list[dict], key: str) -> list[dict]:
    # "path" names a whole file: its rejection may read "path#0" (the record where it broke)
    return [row for row in rejected if row["source"] == key or row["source"].startswith(key + "#")]


def test_mixed_batch_good_accepted_bad_rejected_with_reason(tmp_path, batch, caplog):
    caplog.set_level(logging.DEBUG)
    summary = preprocess_to_dir([batch.root], tmp_path / "out", "v1")
    accepted = pq.read_table(tmp_path / "out" / "alerts.parquet").to_pylist()
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()

    assert sorted(row["source"] for row in accepted) == sorted(batch.good)
    assert len(rejected) == len(batch.bad)
    for source, fragment in batch.bad.items():
        (row,) = _matching(rejected, source) or [None]
        assert row is not None, f"{source} was not rejected"
        assert fragment in row["reason"], (source, row["reason"])
    assert summary.accepted == len(batch.good) and summary.n_rejected == len(batch.bad)
    triplets = np.load(tmp_path / "out" / "triplets.npy", mmap_mode="r")
    assert triplets.shape == (len(batch.good), 63, 63, 3) and np.isfinite(triplets).all()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_rejections_carry_identity_when_the_packet_was_decoded(tmp_path, batch):
    preprocess_to_dir([batch.root], tmp_path / "out", "v1")
    for row in pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist():
        decoded = row["stage"] in ("cutout", "features")
        assert (row["candid"] is not None and row["objectId"] is not None) or not decoded, row
        assert row["stage"] in ("read", "cutout", "features") and row["reason"]


def test_random_byte_flips_and_truncations_never_crash(tmp_path, real_avro_dir):
    rng = np.random.default_rng(20240601)
    sources = real_avro_files(real_avro_dir)
    for i in range(60):
        data = bytearray(sources[i % len(sources)].read_bytes())
        if i % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 40))):
                data[pos] = int(rng.integers(0, 256))
        (tmp_path / f"mutant{i:03d}.avro").write_bytes(bytes(data))

    seen_files = set()
    outcomes = {"accepted": 0, "rejected": 0}
    for item in read_alerts(tmp_path):
        seen_files.add(_file_of(item.source))
        if isinstance(item, Rejection):
            assert item.reason and item.stage == "read"
            outcomes["rejected"] += 1
            continue
        assert isinstance(item, Alert)
        try:
            triplet, features = preprocess_alert(item, "v1")
        except AlertError as exc:
            assert exc.reason and exc.candid == item.candid
            outcomes["rejected"] += 1
            continue
        assert triplet.shape == (63, 63, 3) and np.isfinite(triplet).all() and np.isfinite(features).all()
        outcomes["accepted"] += 1
    assert len(seen_files) == 60  # every mutant accounted for
    assert outcomes["rejected"] >= 20, outcomes
