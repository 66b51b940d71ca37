"""Feature normalisation lives in the network, so every backend applies it the same way.

``mi_cnn.icml2023_bn`` is the paper's model with BatchNorm on its raw features; its running
statistics (here set to the scale of real raw features: ``ra`` ~ 180 +- 100, ``ndethist`` in the
hundreds) are weights in the safetensors file. Scoring with torch (float32, bf16) and ONNX must
equal a hand-standardised input fed to the same network without its BatchNorm.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from brightscan.model import create_model, get_config, load_model, save_model
from brightscan.preprocess import feature_names
from brightscan.score.scorer import Scorer


def test_new_presets_normalise_and_icml2023_stays_raw() -> None:
    assert not get_config("mi_cnn.icml2023").feature_batchnorm
    assert get_config("mi_cnn.icml2023_bn").feature_batchnorm
    assert get_config("mi_cnn.v1").feature_batchnorm
    assert get_config("mi_cnn.icml2023_bn").replace(preset="x").feature_set == "icml2023"


def _trained_looking_bn(tmp_path):
    model = create_model("mi_cnn.icml2023_bn", seed=4, device="cpu")
    rng = np.random.default_rng(0)
    n = model.config.n_features
    mean = torch.from_numpy(rng.uniform(-50, 300, n).astype(np.float32))
    var = torch.from_numpy(rng.uniform(0.5, 1e4, n).astype(np.float32))
    with torch.no_grad():
        model.feature_norm.running_mean.copy_(mean)
        model.feature_norm.running_var.copy_(var)
        model.feature_norm.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, n).astype(np.float32)))
        model.feature_norm.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, n).astype(np.float32)))
    return model, save_model(model, tmp_path / "bn")


def test_every_backend_applies_the_stored_normalisation(tmp_path) -> None:
    model, model_dir = _trained_looking_bn(tmp_path)
    rng = np.random.default_rng(1)
    triplets = rng.normal(0, 1, (40, 63, 63, 3)).astype(np.float32)
    features = (model.feature_norm.running_mean.numpy()
                + rng.normal(0, 1, (40, model.config.n_features)) * np.sqrt(model.feature_norm.running_var.numpy())
                ).astype(np.float32)
    # by hand: standardise with the stored statistics, then the network without its BatchNorm
    bn = model.feature_norm
    standardised = ((torch.from_numpy(features) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
                    * bn.weight + bn.bias).detach()
    bare = copy.deepcopy(model).eval()
    bare.feature_norm = None
    with torch.no_grad():
        expected = bare(torch.from_numpy(triplets), standardised).numpy()
    torch_logits = Scorer(model_dir, device="cpu").predict_logits(triplets, features)
    np.testing.assert_allclose(torch_logits, expected, rtol=0, atol=1e-5)
    assert load_model(model_dir, device="cpu").card["features"]["normalisation"] == "batchnorm"
    bf16 = Scorer(model_dir, device="cpu", precision="bfloat16").predict_logits(triplets, features)
    np.testing.assert_allclose(bf16, expected, rtol=0, atol=0.1)  # convs in bf16; features in fp32
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from brightscan.model.onnx_export import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model_dir)
    onnx = Scorer(model_dir, backend="onnx", num_threads=1).predict_logits(triplets, features)
    np.testing.assert_allclose(onnx, expected, rtol=0, atol=1e-5)


def test_icml2023_bn_reads_the_icml2023_features() -> None:
    assert get_config("mi_cnn.icml2023_bn").n_features == len(feature_names("icml2023"))
