"""``brightscan model export-onnx --convention btsbot-v2|btsbot-v1`` run in ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.model import create_model, save_model, set_temperature
from brightscan.preprocess import FEATURE_SETS

ort = pytest.importorskip("onnxruntime")
runner = CliRunner()


def _inputs(n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    triplets = rng.normal(0, 0.02, (n, 63, 63, 3)).astype(np.float32)
    features = rng.normal(0, 1, (n, 25)).astype(np.float32)
    return triplets, features


@pytest.mark.parametrize("preset", ["mm_convnext_pico.btsbot2", "mm_cnn.btsbot2", "um_nn.btsbot2",
                                    "mi_cnn.v1"])
def test_conventions_equal_the_torch_model(tmp_path, preset):
    model = create_model(preset, seed=2, device="cpu")
    model_dir = save_model(model, tmp_path / "m", model_version="t1")
    set_temperature(model_dir, 1.7)
    triplets, features = _inputs()
    with torch.no_grad():
        logits = model(torch.from_numpy(triplets), torch.from_numpy(features)).numpy()
    for convention in ("btsbot-v2", "btsbot-v1"):
        result = runner.invoke(app, ["model", "export-onnx", str(model_dir), "--convention", convention])
        assert result.exit_code == 0, result.output
        session = ort.InferenceSession(str(model_dir / f"model.{convention}.onnx"),
                                       providers=["CPUExecutionProvider"])
        feed = {}
        for spec in session.get_inputs():
            if spec.name == "image":
                assert spec.shape[1:] == [3, 63, 63]
                feed["image"] = np.ascontiguousarray(triplets.transpose(0, 3, 1, 2))  # as BOOM permutes
            elif spec.name == "triplet":
                assert spec.shape[1:] == [63, 63, 3]
                feed["triplet"] = triplets
            else:
                assert spec.name == "metadata" and spec.shape[1:] == [25]
                feed["metadata"] = features
        (output,) = session.get_outputs()
        got = session.run(None, feed)[0]
        assert got.shape == (5, 1)
        meta = session.get_modelmeta().custom_metadata_map
        if convention == "btsbot-v2":
            assert output.name == "logits"
            np.testing.assert_allclose(got[:, 0], logits, rtol=1e-5, atol=1e-5)
        else:
            assert output.name == "fc_out"
            np.testing.assert_allclose(got[:, 0], 1 / (1 + np.exp(-logits / 1.7)), atol=1e-5)
        assert meta["model_id"] == preset and meta["model_version"] == "t1"
        assert json.loads(meta["metadata_columns"]) == list(FEATURE_SETS["v1"])
        assert float(meta["calibration_temperature"]) == 1.7 and len(meta["weights_sha256"]) == 64
        assert meta["preprocessing_version"] and meta["convention"] == convention


def test_unknown_convention_is_a_usage_error(tmp_path):
    model_dir = save_model(create_model("um_nn.btsbot2", device="cpu"), tmp_path / "m")
    result = runner.invoke(app, ["model", "export-onnx", str(model_dir), "--convention", "keras"])
    assert result.exit_code != 0 and "btsbot-v2" in result.output
