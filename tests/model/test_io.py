"""Model directories: safetensors + model.json, hash-checked, contract-checked, no pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brightscan.errors import ConfigError, ModelFileError
from brightscan.model import create_model, load_model, read_card, save_model, set_temperature
from brightscan.score.scorer import Scorer
from brightscan.preprocess import FEATURE_SETS, PREPROCESSING_VERSION


def _inputs(n=5, n_features=14):
    gen = np.random.default_rng(0)
    return (gen.normal(size=(n, 63, 63, 3)).astype(np.float32),
            gen.normal(size=(n, n_features)).astype(np.float32))


def test_round_trip_gives_identical_outputs(tmp_path):
    model = create_model("mi_cnn.tiny", seed=5, device="cpu")
    model.feature_norm.running_mean.fill_(0.25)  # buffers travel too
    path = save_model(model, tmp_path / "m", model_version="2024.1", provenance={"trained_on": "x"})
    loaded = load_model(path, device="cpu")
    triplets, features = (torch.from_numpy(a) for a in _inputs())
    with torch.no_grad():
        assert torch.equal(model(triplets, features), loaded.model(triplets, features))
    assert loaded.config == model.config
    assert (loaded.model_id, loaded.model_version) == ("mi_cnn.tiny", "2024.1")


def test_card_carries_the_input_contract(tiny_model_dir):
    card = read_card(tiny_model_dir)
    assert card["features"] == {"set": "icml2023", "order": list(FEATURE_SETS["icml2023"]),
                                "normalisation": "batchnorm"}
    assert card["preprocessing_version"] == PREPROCESSING_VERSION
    assert card["inputs"]["triplet"]["shape"] == [63, 63, 3]
    assert card["temperature"] == 1.0
    assert {"trained_on", "date", "code_version"} <= set(card["provenance"])
    assert len(card["weights"]["sha256"]) == 64
    # safetensors, not pickle: an 8-byte header length then a JSON header
    raw = (tiny_model_dir / "weights.safetensors").read_bytes()
    assert raw[8:9] == b"{" and b"__reduce__" not in raw


def test_tampered_weights_are_refused(tiny_model_dir):
    path = tiny_model_dir / "weights.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(tiny_model_dir, device="cpu")


def _edit_card(model_dir, **changes):
    card = json.loads((model_dir / "model.json").read_text())
    card.update(changes)
    (model_dir / "model.json").write_text(json.dumps(card))


def test_unknown_preset_is_refused(tiny_model_dir):
    _edit_card(tiny_model_dir, model_id="mi_cnn.from_the_future")
    with pytest.raises(ModelFileError, match="unknown model preset 'mi_cnn.from_the_future'"):
        load_model(tiny_model_dir, device="cpu")


def test_feature_set_mismatch_is_refused(tiny_model_dir):
    with pytest.raises(ModelFileError, match="takes feature set 'icml2023', not the requested 'v1'"):
        load_model(tiny_model_dir, feature_set="v1", device="cpu")
    order = list(FEATURE_SETS["icml2023"])
    order[0], order[1] = order[1], order[0]
    _edit_card(tiny_model_dir, features={"set": "icml2023", "order": order})
    with pytest.raises(ModelFileError, match="feature order"):
        load_model(tiny_model_dir, device="cpu")


def test_missing_or_broken_directory_is_refused(tmp_path, tiny_model_dir):
    with pytest.raises(ModelFileError, match="not a model directory"):
        load_model(tmp_path / "nothing", device="cpu")
    (tiny_model_dir / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(tiny_model_dir, device="cpu")


def test_existing_model_is_not_overwritten_silently(tiny_model_dir):
    model = create_model("mi_cnn.tiny", device="cpu")
    with pytest.raises(ModelFileError, match="already holds a model"):
        save_model(model, tiny_model_dir)
    save_model(model, tiny_model_dir, overwrite=True)


def test_temperature_divides_the_logit(tiny_model_dir):
    triplets, features = _inputs()
    plain = Scorer(tiny_model_dir, device="cpu")
    logits = plain.predict_logits(triplets, features).astype(np.float64)
    set_temperature(tiny_model_dir, 2.5)
    scaled = Scorer(tiny_model_dir, device="cpu")
    assert scaled.temperature == 2.5
    np.testing.assert_allclose(scaled.score_arrays(triplets, features),
                               1 / (1 + np.exp(-logits / 2.5)), rtol=1e-12)
    load_model(tiny_model_dir, device="cpu")  # weights hash still valid
    with pytest.raises(ConfigError, match="temperature"):
        set_temperature(tiny_model_dir, 0.0)


def test_scorer_checks_array_shapes(tiny_model_dir):
    scorer = Scorer(tiny_model_dir, device="cpu", batch_size=2)
    triplets, features = _inputs(n=5)
    assert scorer.score_arrays(triplets, features).shape == (5,)  # batches of 2, 2, 1
    with pytest.raises(ConfigError, match="features must have shape"):
        scorer.score_arrays(triplets, features[:, :3])
