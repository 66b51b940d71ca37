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


# Spark: Fink's Rubin Parquet scored by the pandas UDF (integrations/spark.py) in a local session,
# against ``brightscan score`` of the same file in this process.
RUBIN_SPARK_SCRIPT = """
import json, sys
from pyspark.sql import SparkSession
from brightscan.integrations.spark import score_udf, udf_columns
spark = (SparkSession.builder.master("local[1]").appName("brightscan-rubin-test")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1").getOrCreate())
try:
    df = spark.read.parquet(sys.argv[1])
    scored = df.withColumn("btsbot", score_udf(sys.argv[2])(*udf_columns(sys.argv[2])))
    rows = scored.select("diaSourceId", "btsbot.score", "btsbot.model_id", "btsbot.rejection").collect()
finally:
    spark.stop()
print(json.dumps([r.asDict() for r in rows]))
"""


def _fink_rubin_parquet(rubin_alerts: Path) -> Path:
    (path,) = sorted(rubin_alerts.glob("*.parquet"))
    return path


def _local_scores(model: Path, path: Path) -> tuple[dict[int, float], dict[int, str]]:
    """Scores and rejection reasons of ``brightscan score``'s path, by row of the file."""
    from brightscan.score import Scorer

    results = Scorer(model, device="cpu").score_files([path])
    scores = {int(row["source"].rsplit("#", 1)[1]): float(s) for row, s in zip(results.rows, results.score)}
    reasons = {int(r.source.rsplit("#", 1)[1]): r.reason for r in results.rejections}
    return scores, reasons


def test_the_spark_udf_columns_of_a_rubin_model_score_as_the_local_path(rubin_alerts: Path,
                                                                         rubin_model: Path) -> None:
    from brightscan.integrations.spark import FINK_RUBIN_COLUMNS, score_rubin_columns, udf_columns
    from brightscan.score import Scorer

    path = _fink_rubin_parquet(rubin_alerts)
    assert udf_columns(str(rubin_model)) == FINK_RUBIN_COLUMNS
    frame = pq.read_table(path, columns=list(FINK_RUBIN_COLUMNS)).to_pandas()
    out = score_rubin_columns(Scorer(rubin_model, device="cpu"), *(frame[c] for c in FINK_RUBIN_COLUMNS))
    scores, reasons = _local_scores(rubin_model, path)
    assert len(out) == len(frame) and len(scores) >= 5 and set(out["model_id"]) == {"mm_cnn.rubin"}
    for row in range(len(frame)):
        if row in scores:
            assert out["score"][row] == pytest.approx(scores[row], abs=1e-6) and out["rejection"][row] is None
        else:
            assert np.isnan(out["score"][row]) and reasons[row] in out["rejection"][row]


def test_a_rubin_model_scores_finks_rubin_parquet_in_a_local_spark_session(rubin_alerts: Path,
                                                                           rubin_model: Path) -> None:
    from tests.integrations.test_spark import run_spark_script

    path = _fink_rubin_parquet(rubin_alerts)
    rows = run_spark_script(RUBIN_SPARK_SCRIPT, path, rubin_model)
    scores, _ = _local_scores(rubin_model, path)
    ids = pq.read_table(path, columns=["diaSourceId"]).column("diaSourceId").to_pylist()
    expected = {ids[row]: score for row, score in scores.items()}
    assert len(rows) == len(ids) and len(expected) >= 5
    scored = {r["diaSourceId"]: r["score"] for r in rows if r["score"] is not None}
    assert scored.keys() == expected.keys()
    for key, score in scored.items():
        assert score == pytest.approx(expected[key], abs=1e-6)
    assert all(r["model_id"] == "mm_cnn.rubin" for r in rows)
    assert all(r["rejection"] for r in rows if r["score"] is None)
