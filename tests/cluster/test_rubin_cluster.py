"""Rubin alerts on the ``--cluster`` path: the same job as in this process, at Rubin's 48 px.

``preprocess`` and ``dataset build`` write the triplet column at the feature set's survey size
(48 * 48 * 3 for ``rubin_v1``; it was 63 * 63 * 3 whatever the survey), and ``score`` with a Rubin
model gives the scores of the local path. Inputs: the real Rubin samples in ``../shared`` (wire
messages and Fink's LSSTCam container) and a small simulated Rubin survey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.dataset import open_split
from brightscan.distributed import read_triplets
from brightscan.model import create_model, save_model
from tests.conftest import require_shared

pytest.importorskip("distributed")
runner = CliRunner()


def _invoke(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _read(folder: Path):
    # Rubin's files have no night in their names: the partitions are night=__HIVE_DEFAULT_PARTITION__,
    # which a hive reader cannot type, so the files are read as they are
    return ds.dataset(folder, format="parquet").to_table()


@pytest.fixture(scope="module")
def rubin_alerts() -> Path:
    return require_shared("data/rubin-alerts")


@pytest.fixture(scope="module")
def rubin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(create_model("mm_cnn.rubin", seed=2, device="cpu"), tmp_path_factory.mktemp("m") / "rubin")


def test_preprocess_writes_48px_rubin_triplets_in_both_engines(rubin_alerts: Path, tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "dask"
    _invoke("preprocess", rubin_alerts, "--features", "rubin_v1", "--out", here)
    _invoke("preprocess", rubin_alerts, "--features", "rubin_v1", "--out", there, "--cluster", "local:1")
    table = pq.read_table(here / "alerts.parquet").to_pandas()
    triplets = np.load(here / "triplets.npy")
    flat_table = _read(there / "alerts")
    parts, flat = flat_table.to_pandas(), read_triplets(flat_table)
    assert triplets.shape[1:] == flat.shape[1:] == (48, 48, 3)
    assert len(table) >= 10 and len(parts) == len(table)
    order = np.argsort(table["candid"].to_numpy(), kind="stable")
    other = np.argsort(parts["candid"].to_numpy(), kind="stable")
    for name in table.columns:
        assert np.array_equal(table[name].to_numpy()[order], parts[name].to_numpy()[other]), name
    assert np.array_equal(triplets[order], flat[other])


def test_score_rubin_files_on_a_cluster_equals_the_local_path(rubin_alerts: Path, rubin_model: Path,
                                                              tmp_path: Path) -> None:
    options = ["--model", rubin_model, "--backend", "torch", "--precision", "fp32", "--device", "cpu"]
    here, there = tmp_path / "scores.parquet", tmp_path / "dask"
    _invoke("score", rubin_alerts, *options, "--out", here)
    _invoke("score", rubin_alerts, *options, "--out", there, "--cluster", "local:1")
    one = pd.read_parquet(here).set_index("candid").sort_index()
    parts = _read(there / "scores").to_pandas().set_index("candid").sort_index()
    assert len(one) >= 10 and list(one.index) == list(parts.index)
    assert (one["model_id"] == "mm_cnn.rubin").all()
    np.testing.assert_allclose(parts["score"], one["score"], rtol=0, atol=1e-6)


def test_dataset_build_of_a_rubin_survey_same_in_both_engines(tmp_path: Path) -> None:
    from brightscan.simulate.rubin import RubinSurveyConfig, simulate_rubin_survey

    simulate_rubin_survey(RubinSurveyConfig(n_sources=24, n_nights=12, seed=5), tmp_path / "survey")
    options = ["--labels", tmp_path / "survey" / "labels.csv", "--nmax", "4", "--seed", "1",
               "--features", "rubin_v1"]
    here, there = tmp_path / "here", tmp_path / "dask"
    _invoke("dataset", "build", tmp_path / "survey" / "alerts", *options, "--out", here)
    _invoke("dataset", "build", tmp_path / "survey" / "alerts", *options, "--out", there, "--cluster", "local:1")
    for split in ("train", "val", "test"):
        pd.testing.assert_frame_equal(open_split(here, split).table, open_split(there, split).table)
        mine, theirs = np.load(here / split / "triplets.npy"), np.load(there / split / "triplets.npy")
        assert mine.shape[1:] == (48, 48, 3) and np.array_equal(mine, theirs)
