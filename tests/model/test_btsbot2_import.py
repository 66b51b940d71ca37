"""``brightscan model import`` of btsbot 2 directories (Hub layout), then score and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.errors import ModelFileError
from brightscan.model import create_model, load_model
from brightscan.model.btsbot2.train_config import to_train_config
from brightscan.model.importing import import_model

runner = CliRunner()


def write_hub_dir(path: Path, preset: str = "mm_cnn.btsbot2", *, seed: int = 5,
                  safetensors: bool = False, prefix: str = "") -> torch.nn.Module:
    """A directory laid out like nabeelr/BTSbot-* on the Hub: train_config.json + weights."""
    model = create_model(preset, seed=seed, device="cpu")
    path.mkdir(parents=True)
    config = {**to_train_config(model.config), "learning_rate": 1e-4, "epochs": 50}  # + training keys
    (path / "train_config.json").write_text(json.dumps(config))
    state = {prefix + k: v for k, v in model.state_dict().items()}
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"))
    else:
        torch.save(state, path / "pytorch_model.bin")
    return model


def test_import_then_score_equals_the_model(tmp_path, real_avro_dir):
    model = write_hub_dir(tmp_path / "BTSbot-mm_cnn")
    out = tmp_path / "imported"
    result = runner.invoke(app, ["model", "import", str(tmp_path / "BTSbot-mm_cnn"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mm_cnn.btsbot2 BTSbot-mm_cnn" in result.output
    assert "no reference distribution" in result.output  # drift: said missing, not silently skipped
    scores = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", str(real_avro_dir), "--model", str(out), "--out", str(scores)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(scores).to_pandas()
    assert len(table) > 20 and (table["model_id"] == "mm_cnn.btsbot2").all()
    loaded = load_model(out, device="cpu")
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(loaded.model.state_dict()[name], tensor), name
    # the scores are the model's own: re-score the same alerts directly
    from brightscan.alerts import read_alerts
    from brightscan.preprocess.pipeline import Pipeline

    chunk = Pipeline("v1").prepare(read_alerts(real_avro_dir))
    with torch.no_grad():
        direct = torch.sigmoid(model(torch.from_numpy(chunk.triplet_array()),
                                     torch.from_numpy(chunk.feature_array()))).numpy()
    by_candid = dict(zip(table["candid"], table["score"]))
    got = np.array([by_candid[row["candid"]] for row in chunk.rows])
    np.testing.assert_allclose(got, direct, atol=1e-6)


def test_imported_model_evaluates(tmp_path):
    from evaluate.tiny import write_tiny_dataset

    write_hub_dir(tmp_path / "hub", "um_nn.btsbot2")
    out = import_model(tmp_path / "hub", tmp_path / "m")
    order = tuple(json.loads((out / "model.json").read_text())["features"]["order"])
    dataset = write_tiny_dataset(tmp_path / "ds", order)
    result = runner.invoke(app, ["evaluate", str(out), str(dataset), "--out", str(tmp_path / "report"),
                                 "--target-completeness", "0.01"])
    assert result.exit_code == 0, result.output
    assert "gt1: completeness=" in result.output


def test_safetensors_and_dataparallel_prefix(tmp_path):
    model = write_hub_dir(tmp_path / "st", "um_cnn.btsbot2", safetensors=True)
    write_hub_dir(tmp_path / "dp", "um_cnn.btsbot2", prefix="module.")
    for name in ("st", "dp"):
        loaded = load_model(import_model(tmp_path / name, tmp_path / f"out-{name}"), device="cpu")
        assert torch.equal(loaded.model.head[0].weight, model.head[0].weight)


def test_refusals_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="not a model brightscan can import"):
        import_model(tmp_path / "empty", tmp_path / "o1")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ModelFileError, match="ONNX"):
        import_model(tmp_path / "m.onnx", tmp_path / "o2")
    # a pickle that would run code is refused by weights_only
    bad = tmp_path / "bad"
    write_hub_dir(bad, "um_nn.btsbot2")
    torch.save({"x": torch.zeros(1), "code": Path("/")}, bad / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="cannot read the weights"):
        import_model(bad, tmp_path / "o3")
    # weights of another architecture
    other = tmp_path / "other"
    write_hub_dir(other, "um_nn.btsbot2")
    cfg = json.loads((other / "train_config.json").read_text())
    (other / "train_config.json").write_text(json.dumps({**cfg, "meta_fc1_neurons": 64}))
    with pytest.raises(ModelFileError, match="does not fit"):
        import_model(other, tmp_path / "o4")
    cfg["model_name"] = "ResNet"
    (other / "train_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="ResNet"):
        import_model(other, tmp_path / "o5")
    result = runner.invoke(app, ["model", "import", str(tmp_path / "empty"), "--out", str(tmp_path / "o6")])
    assert result.exit_code == 1 and "not a model brightscan can import" in result.output
