"""ONNX export: metadata carries the contract; ONNX Runtime scores like torch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from brightscan.errors import ConfigError, ModelFileError  # noqa: E402
from brightscan.model import create_model, save_model  # noqa: E402
from brightscan.model.onnx_export import export_onnx, open_onnx_session  # noqa: E402
from brightscan.score.scorer import Scorer  # noqa: E402

from .conftest import PUBLISHED, example_features  # noqa: E402


def _export(model_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's exporter warns about its own deprecation
        return export_onnx(model_dir)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_onnx_matches_torch_and_tensorflow(name, imported_models, example_inputs):
    _export(imported_models[name])
    torch_scorer = Scorer(imported_models[name], device="cpu")
    onnx_scorer = Scorer(imported_models[name], backend="onnx", num_threads=2)
    features = example_features(example_inputs, torch_scorer.loaded.feature_names)
    a = torch_scorer.score_arrays(example_inputs["triplets"], features)
    b = onnx_scorer.score_arrays(example_inputs["triplets"], features)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    reference = example_inputs["reference"][PUBLISHED[name][1]].to_numpy()
    np.testing.assert_allclose(b, reference, rtol=0, atol=1e-5)


def test_onnx_metadata_carries_the_contract(tiny_model_dir):
    path = _export(tiny_model_dir)
    meta = open_onnx_session(tiny_model_dir).get_modelmeta().custom_metadata_map
    card = json.loads((tiny_model_dir / "model.json").read_text())
    assert path == tiny_model_dir / "model.onnx"
    assert meta["model_id"] == "mi_cnn.tiny"
    assert json.loads(meta["feature_order"]) == card["features"]["order"]
    assert meta["preprocessing_version"] == card["preprocessing_version"]


def test_stale_onnx_is_refused(tiny_model_dir):
    _export(tiny_model_dir)
    save_model(create_model("mi_cnn.tiny", seed=99, device="cpu"), tiny_model_dir, overwrite=True)
    with pytest.raises(ModelFileError, match="re-export"):
        Scorer(tiny_model_dir, backend="onnx")


def test_missing_onnx_says_how_to_make_it(tiny_model_dir):
    with pytest.raises(ModelFileError, match="export-onnx"):
        Scorer(tiny_model_dir, backend="onnx")


def test_onnx_runs_float32_only(tiny_model_dir):
    _export(tiny_model_dir)
    with pytest.raises(ConfigError, match="float32"):
        Scorer(tiny_model_dir, backend="onnx", precision="bfloat16")


def test_single_branch_model_exports_one_input(tmp_path):
    model_dir = save_model(create_model("mi_cnn.icml2023_features", device="cpu"), tmp_path / "f")
    _export(model_dir)
    session = open_onnx_session(model_dir)
    assert [i.name for i in session.get_inputs()] == ["features"]
    features = np.random.default_rng(0).normal(size=(3, 14)).astype(np.float32)
    a = Scorer(model_dir, device="cpu").score_arrays(None, features)
    b = Scorer(model_dir, backend="onnx").score_arrays(None, features)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
