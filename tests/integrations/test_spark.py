"""The Spark pandas UDF over Fink's own Parquet columns: the scores ``brightscan score`` gives, the
model version, null scores with reasons for rejected alerts. Runs in a local Spark session when
Java and pyspark are installed (CI installs both), and the column logic also without Spark."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from brightscan.integrations.spark import FINK_COLUMNS, score_columns
from brightscan.score import Scorer


@pytest.fixture(scope="module")
def fink_file() -> Path:
    from tests.conftest import require_shared

    return require_shared("data", "real-alerts", "fink-parquet", "datatest-part2.parquet")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from brightscan.model import create_model, save_model

    return save_model(create_model("mi_cnn.v1", seed=1, device="cpu"), tmp_path_factory.mktemp("m") / "v1")


def _reference(model_dir: Path, path: Path) -> tuple[dict, list]:
    results = Scorer(model_dir, device="cpu").score_files([path])
    return dict(zip([r["source"] for r in results.rows], results.score)), results.rejections


def test_columns_scored_as_brightscan_score_does(fink_file: Path, model_dir: Path) -> None:
    frame = pq.read_table(fink_file, columns=list(FINK_COLUMNS)).to_pandas()
    broken = list(frame["cutoutDifference"])
    broken[3] = {"fileName": "x", "stampData": b"not a gzipped FITS"}
    frame["cutoutDifference"] = broken
    out = score_columns(Scorer(model_dir, device="cpu"), *(frame[c] for c in FINK_COLUMNS))
    assert len(out) == len(frame) and set(out["model_id"]) == {"mi_cnn.v1"} and len(set(out["model_version"])) == 1
    expected, rejections = _reference(model_dir, fink_file)
    for i in range(len(frame)):
        if i == 3:
            assert np.isnan(out["score"][i]) and out["rejection"][i].startswith("cutout:")
            continue
        key = f"{fink_file}#{i}"
        if key in expected:
            assert out["score"][i] == pytest.approx(expected[key], abs=1e-6) and out["rejection"][i] is None
        else:
            assert np.isnan(out["score"][i]) and out["rejection"][i]
    assert {r.source for r in rejections} <= {f"{fink_file}#{i}" for i in range(len(frame))}


#: Run in a fresh interpreter: starting Spark's JVM forks the calling process, which can deadlock in
#: a pytest process that already holds other threads (dask event loops, torch pools).
SPARK_SCRIPT = """
import json, sys
from pyspark.sql import SparkSession
from brightscan.integrations.spark import FINK_COLUMNS, score_udf
spark = (SparkSession.builder.master("local[1]").appName("brightscan-test")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1").getOrCreate())
try:
    df = spark.read.parquet(sys.argv[1])
    scored = df.withColumn("btsbot", score_udf(sys.argv[2])(*FINK_COLUMNS))
    rows = scored.select("candid", "btsbot.score", "btsbot.model_id", "btsbot.model_version",
                         "btsbot.rejection").collect()
finally:
    spark.stop()
print(json.dumps([r.asDict() for r in rows]))
"""


def run_spark_script(script: str, *args: object) -> list[dict]:
    """Run ``script`` (which prints its rows as JSON last) in a fresh interpreter; skip without Spark."""
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (CI: apt-get install openjdk-17-jre-headless)")
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'brightscan[spark]')")
    import json
    import os
    import subprocess

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}  # executors run this interpreter (with brightscan)
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_udf_in_a_local_spark_session(fink_file: Path, model_dir: Path) -> None:
    rows = run_spark_script(SPARK_SCRIPT, fink_file, model_dir)
    expected, _ = _reference(model_dir, fink_file)
    candids = pq.read_table(fink_file, columns=["candid"]).column("candid").to_pylist()
    by_candid = {}
    for source, value in expected.items():
        by_candid.setdefault(candids[int(source.rsplit("#", 1)[1])], value)
    assert len(rows) == len(candids)
    scored_rows = [r for r in rows if r["score"] is not None]
    assert len(scored_rows) == len(expected)
    for row in scored_rows:
        assert row["score"] == pytest.approx(by_candid[row["candid"]], abs=1e-6)
        assert row["model_id"] == "mi_cnn.v1" and row["rejection"] is None
    assert all(r["rejection"] for r in rows if r["score"] is None)
