"""One job, two engines: every option of ``score``, ``preprocess`` and ``dataset build`` goes
through the command once in this process and once on a real LocalCluster, and both engines write
the same outputs and the same run card.

The inputs are real ZTF alerts, whose templates hold overflow sentinels: ``--overflow production``
accepts alerts that the default rejects, so an engine that dropped the option would differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brightscan.alerts import Alert, read_alerts
from brightscan.cli.main import app
from brightscan.dataset import open_split, read_dataset_card
from brightscan.distributed import RunLayout, read_triplets
from brightscan.score.results import read_run_card
from tests.cluster.conftest import read_dataset

pytest.importorskip("distributed")
runner = CliRunner()


def _invoke(*args: str) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _run_card(root: Path) -> dict:
    return json.loads((root / "_run.json").read_text(encoding="utf-8"))


def test_score_every_option_same_in_both_engines(real_avro_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    options = ["--model", tiny_model, "--backend", "torch", "--precision", "fp32", "--batch-size", "5",
               "--threads", "1", "--device", "cpu", "--overflow", "production", "--read-limit", "max_cutout_bytes=2MiB"]
    here, there = tmp_path / "scores.parquet", tmp_path / "dask"
    _invoke("score", real_avro_dir, *options, "--out", here)
    _invoke("score", real_avro_dir, *options, "--out", there, "--cluster", "local:1")
    one = pd.read_parquet(here).set_index("candid").sort_index()
    parts = read_dataset(there).set_index("candid").sort_index()
    assert len(one) and list(one.index) == list(parts.index)
    np.testing.assert_allclose(parts["score"], one["score"], rtol=0, atol=1e-6)
    rejected = pd.read_parquet(tmp_path / "scores.rejected.parquet")
    assert len(rejected) == sum(r["rejections"] for r in RunLayout(there, "scores").manifest())
    card, stored = _run_card(there), read_run_card(here)
    assert card["overflow"] == "production" and card["precision"] == "float32" and card["backend"] == "torch"
    assert card["read_limits"]["max_cutout_bytes"] == 2 * 2**20
    assert {k: stored[k] for k in card} == card
    for row in RunLayout(there, "scores").manifest():  # what each worker set up, as in this process
        assert {k: row[k] for k in ("precision", "backend", "batch_size", "threads")} == \
            {"precision": "float32", "backend": "torch", "batch_size": 5, "threads": 1}
    assert {k: stored[k] for k in ("precision", "backend", "batch_size", "threads")} == \
        {"precision": "float32", "backend": "torch", "batch_size": 5, "threads": 1}


def test_causal_is_refused_on_a_cluster_not_dropped(real_avro_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    for command in (["score", "--model", str(tiny_model)], ["preprocess"]):
        result = runner.invoke(app, [*command, str(real_avro_dir), "--out", str(tmp_path / "x"), "--causal",
                                     "--cluster", "local:1"])
        assert result.exit_code == 2 and "--causal" in result.output, result.output


def test_preprocess_every_option_same_in_both_engines(real_avro_dir: Path, tmp_path: Path) -> None:
    options = ["--features", "icml2023", "--overflow", "production", "--read-limit", "max_cutout_bytes=2MiB"]
    here, there = tmp_path / "here", tmp_path / "dask"
    _invoke("preprocess", real_avro_dir, *options, "--out", here)
    _invoke("preprocess", real_avro_dir, *options, "--out", there, "--cluster", "local:1")
    table = pq.read_table(here / "alerts.parquet").to_pandas()
    triplets = np.load(here / "triplets.npy")
    parts = read_dataset(there, "alerts")
    order, other = np.argsort(table["candid"].to_numpy(), kind="stable"), np.argsort(parts["candid"].to_numpy(),
                                                                                    kind="stable")
    assert len(table) and np.array_equal(table["candid"].to_numpy()[order], parts["candid"].to_numpy()[other])
    for name in table.columns:
        assert np.array_equal(table[name].to_numpy()[order], parts[name].to_numpy()[other]), name
    import pyarrow.dataset as ds

    flat = read_triplets(ds.dataset(there / "alerts", format="parquet", partitioning="hive").to_table())
    assert np.array_equal(triplets[order], flat[other])
    card = _run_card(there)
    assert card == _run_card(here) and card["overflow"] == "production" and card["feature_set"] == "icml2023"
    assert card["read_limits"]["max_cutout_bytes"] == 2 * 2**20


def test_dataset_build_every_option_same_in_both_engines(real_avro_dir: Path, tmp_path: Path) -> None:
    objects = sorted({a.object_id for a in read_alerts([real_avro_dir]) if isinstance(a, Alert)})
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"objectId": objects, "label": [i % 2 for i in range(len(objects))]}).to_csv(labels, index=False)
    options = ["--labels", labels, "--nmax", "1", "--split", "0.5,0.25,0.25", "--seed", "3", "--stratify", "label",
               "--features", "icml2023", "--overflow", "production", "--thinning", "latest"]
    here, there = tmp_path / "here", tmp_path / "dask"
    _invoke("dataset", "build", real_avro_dir, *options, "--out", here)
    _invoke("dataset", "build", real_avro_dir, *options, "--out", there, "--cluster", "local:1")
    card, other = read_dataset_card(here), read_dataset_card(there)
    assert card["build"] == other["build"] == {"nmax": 1, "fractions": [0.5, 0.25, 0.25], "seed": 3,
                                               "feature_set": "icml2023", "overflow": "production",
                                               "stratify": "label", "thinning": "latest"}
    assert card["splits"] == other["splits"] and card["skipped"] == other["skipped"]
    assert "rejected:cutout" not in card["skipped"]  # production accepted the sentinel templates
    for split in ("train", "val", "test"):
        pd.testing.assert_frame_equal(open_split(here, split).table, open_split(there, split).table)
        assert np.array_equal(np.load(here / split / "triplets.npy"), np.load(there / split / "triplets.npy"))
