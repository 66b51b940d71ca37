"""``brightscan score`` and ``brightscan model`` through the CLI, on the real alerts in ../shared."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.cli.main import app
from brightscan.errors import AlertError
from brightscan.score.results import SCORE_COLUMNS
from brightscan.score.scorer import Scorer
from brightscan.preprocess import preprocess_alert

runner = CliRunner()


@pytest.fixture
def v1_dir(tmp_path, published_models_dir):
    out = tmp_path / "v1"
    result = runner.invoke(app, ["model", "import-keras", str(published_models_dir / "v1.0.1"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mi_cnn.v1 v1.0.1" in result.output
    return out


def _accepted_by_preprocessing(inputs) -> tuple[set[int], int]:
    accepted, others = set(), 0
    for item in read_alerts(inputs):
        if isinstance(item, Rejection):
            others += 1
            continue
        try:
            preprocess_alert(item, "v1")
            accepted.add(item.candid)
        except AlertError:
            others += 1
    return accepted, others


@pytest.mark.slow
def test_score_scores_every_alert_preprocessing_accepts(tmp_path, v1_dir, real_avro_dir,
                                                        real_parquet_dir):
    inputs = [real_avro_dir, real_parquet_dir]
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", *map(str, inputs), "--model", str(v1_dir),
                                 "--out", str(out), "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    scores = pq.read_table(out).to_pandas()
    rejected = pq.read_table(tmp_path / "scores.rejected.parquet").to_pandas()
    accepted, others = _accepted_by_preprocessing(inputs)
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert set(scores["candid"]) == accepted and len(scores) >= len(accepted) > 200
    assert len(rejected) == others and rejected["reason"].str.len().min() > 0
    assert scores["score"].between(0, 1).all()
    assert (scores["model_id"] == "mi_cnn.v1").all() and (scores["model_version"] == "v1.0.1").all()


@pytest.mark.slow
def test_onnx_backend_through_the_cli_matches_torch(tmp_path, v1_dir, real_avro_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(app, ["model", "export-onnx", str(v1_dir)])
    assert result.exit_code == 0, result.output
    for backend in ("torch", "onnx"):
        result = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(v1_dir),
                                     "--out", str(tmp_path / f"{backend}.parquet"),
                                     "--backend", backend])
        assert result.exit_code == 0, result.output
    a = pq.read_table(tmp_path / "torch.parquet").to_pandas()
    b = pq.read_table(tmp_path / "onnx.parquet").to_pandas()
    assert list(a["candid"]) == list(b["candid"])
    np.testing.assert_allclose(a["score"], b["score"], rtol=0, atol=1e-5)


def test_python_api_scores_in_memory_alerts_like_the_cli(tmp_path, v1_dir, real_avro_dir):
    items = list(read_alerts([real_avro_dir]))
    scorer = Scorer(v1_dir, device="cpu", batch_size=7)
    with_thread = scorer.score_alerts(items)
    without = scorer.score_alerts(items, overlap=False)
    assert [r["candid"] for r in with_thread.rows] == [r["candid"] for r in without.rows]
    np.testing.assert_array_equal(with_thread.score, without.score)
    n_alerts = sum(isinstance(i, Alert) for i in items)
    assert len(with_thread) + len(with_thread.rejections) == n_alerts
    result = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(v1_dir),
                                 "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 0, result.output
    cli = pq.read_table(tmp_path / "s.parquet").to_pandas()
    np.testing.assert_allclose(cli["score"], with_thread.score, rtol=0, atol=1e-6)


def test_model_info_and_errors(tmp_path, tiny_model_dir):
    result = runner.invoke(app, ["model", "info", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "mi_cnn.tiny" in result.output and "verified" in result.output
    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "not a model directory" in " ".join(result.output.split())  # rich wraps lines
    result = runner.invoke(app, ["score", str(tmp_path), "--model", str(tiny_model_dir),
                                 "--backend", "tensorflow"])
    assert result.exit_code == 2
    assert "'tensorflow' is not one of 'torch', 'onnx'" in " ".join(result.output.split())


def test_score_alerts_passes_rejections_through_and_uses_earlier(v1_dir, real_avro_dir):
    alerts = [i for i in read_alerts([real_avro_dir]) if isinstance(i, Alert)][:4]
    alerts = [a for a in alerts if _accepted_by_preprocessing_one(a)]
    given = Rejection(123, "ZTF00aaaaaaa", "somewhere.avro", "read", "corrupt")
    scorer = Scorer(v1_dir, device="cpu")
    plain = scorer.score_alerts([given, *alerts])
    assert plain.rejections[0] == given and len(plain) == len(alerts)
    # A much brighter earlier detection changes the history features, hence the score.
    first = alerts[0]
    bright = {"candid": 1, "jd": first.jd - 5.0, "magpsf": 12.0, "fid": 1, "isdiffpos": "t"}
    with_history = scorer.score_alerts(alerts, earlier={first.object_id: [bright]})
    assert with_history.score[0] != plain.score[0]
    np.testing.assert_array_equal(with_history.score[1:], plain.score[1:])


def _accepted_by_preprocessing_one(alert) -> bool:
    try:
        preprocess_alert(alert, "v1")
        return True
    except AlertError:
        return False


def test_score_takes_read_limits(tmp_path, tiny_model_dir, real_avro_dir):
    """``--read-limit`` reaches the scorer's reading and cutout inflation; a bad one is a usage error."""
    refused = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(tiny_model_dir),
                                  "--out", str(tmp_path / "a.parquet"), "--read-limit", "max_cutout_bytes=10KiB"])
    assert refused.exit_code == 1
    assert "cutout inflates to more than N bytes" in refused.output and "all 38 rejected" in refused.output
    scored = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(tiny_model_dir),
                                 "--out", str(tmp_path / "b.parquet"), "--read-limit", "max_block_records=10"])
    assert scored.exit_code == 0 and "scored 36 alerts" in scored.output, scored.output
    usage = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(tiny_model_dir),
                                "--read-limit", "max_block_bytes=0"])
    assert usage.exit_code == 2 and "must be a positive integer" in " ".join(usage.output.split())
