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


def _score_reference(model_dir, triplets, features):
    from brightscan.model.reference import build_reference, write_reference

    names = read_card(model_dir)["features"]["order"]
    write_reference(model_dir, build_reference(features, names, Scorer(model_dir, device="cpu")
                                               .score_arrays(triplets, features)))


@pytest.mark.parametrize("how", ["in place", "new version"])
def test_a_new_temperature_moves_drift_reference_with_the_scores(how, tiny_model_dir, tmp_path):
    from brightscan.model import write_calibrated
    from brightscan.model.reference import read_reference

    triplets, features = _inputs(n=200)
    set_temperature(tiny_model_dir, 0.5)
    _score_reference(tiny_model_dir, triplets, features)
    old = read_reference(tiny_model_dir).columns["score"]
    if how == "in place":
        set_temperature(tiny_model_dir, 2.0)
        out = tiny_model_dir
    else:
        out = write_calibrated(tiny_model_dir, 2.0, tmp_path / "cal", fitted_on="val")
        assert read_reference(tiny_model_dir).columns["score"].edges.tolist() == old.edges.tolist()  # untouched
    new = read_reference(out)
    assert new.provenance["temperature"] == 2.0
    # each edge where the new scores put it: logit(s) * 0.5 / 2.0, so the same alerts fall in the same bins
    np.testing.assert_allclose(new.columns["score"].edges,
                               1 / (1 + np.exp(-(_logit(old.edges) * 0.25))), rtol=1e-9)
    inner = slice(1, -1)  # the end edges are the extreme scores themselves, equal up to float rounding
    new_scores = Scorer(out, device="cpu").score_arrays(triplets, features)
    assert np.array_equal(new.columns["score"].bin_counts(new_scores)[inner], old.counts[inner])
    assert np.all(new.columns["score"].edges[inner] > 3 * old.edges[inner])  # an unmoved copy would fail here


def test_scorer_checks_array_shapes(tiny_model_dir):
    scorer = Scorer(tiny_model_dir, device="cpu", batch_size=2)
    triplets, features = _inputs(n=5)
    assert scorer.score_arrays(triplets, features).shape == (5,)  # batches of 2, 2, 1
    with pytest.raises(ConfigError, match="features must have shape"):
        scorer.score_arrays(triplets, features[:, :3])


def _logit(p):
    return np.log(p / (1 - p))


def test_operating_point_moves_the_score_half_to_the_threshold(tiny_model_dir, tmp_path):
    from brightscan.model import write_operating_point
    from brightscan.model.io import sha256_file
    from brightscan.model.reference import build_reference, read_reference, write_reference

    triplets, features = _inputs(n=64)
    set_temperature(tiny_model_dir, 2.0)
    before = Scorer(tiny_model_dir, device="cpu")
    logits = before.predict_logits(triplets, features).astype(np.float64)
    names = read_card(tiny_model_dir)["features"]["order"]
    write_reference(tiny_model_dir, build_reference(features, names, before.score_arrays(triplets, features)))
    weights = sha256_file(tiny_model_dir / "weights.safetensors")
    out = write_operating_point(tiny_model_dir, 0.7, tmp_path / "op", fitted_on="val")
    moved = Scorer(out, device="cpu")
    scores = moved.score_arrays(triplets, features)
    # the score is sigmoid(logit / T - logit(0.7)): 0.5 exactly where the model read scored 0.7
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-(logits / 2.0 - _logit(0.7)))), rtol=1e-5)
    assert np.array_equal(np.argsort(scores), np.argsort(logits))  # the ranking is the same
    card = read_card(out)
    assert card["model_version"] == f"{before.model_version}+op0.7" and moved.temperature == 2.0
    assert card["provenance"]["operating_point"] == {
        "model_dir": str(tiny_model_dir), "model_version": before.model_version, "threshold": 0.7,
        "logit_shift": pytest.approx(2.0 * _logit(0.7)), "fitted_on": "val"}
    assert sha256_file(tiny_model_dir / "weights.safetensors") == weights  # the model read is unchanged
    # drift's reference moves with the scores: each score edge where the new model puts it
    old, new = read_reference(tiny_model_dir).columns["score"], read_reference(out).columns["score"]
    np.testing.assert_allclose(new.edges, 1 / (1 + np.exp(-(_logit(old.edges) - _logit(0.7)))), rtol=1e-9)
    assert np.array_equal(new.counts, old.counts)
    with pytest.raises(ModelFileError, match="already holds a model"):
        write_operating_point(tiny_model_dir, 0.7, out)
    for bad in (0.0, 1.0, float("nan"), -0.2):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            write_operating_point(tiny_model_dir, bad, tmp_path / "bad")


@pytest.mark.parametrize("preset", ["mm_cnn.btsbot2", "frozen_fusion_convnext_pico.btsbot2", "um_nn.btsbot2",
                                    "mi_cnn.rubin_tiny"])
def test_operating_point_moves_every_architecture_logit(preset, tmp_path):
    from brightscan.model import write_operating_point
    from brightscan.model.io import _probe_logits

    source = save_model(create_model(preset, seed=1, device="cpu"), tmp_path / "m")
    out = write_operating_point(source, 0.2, tmp_path / "op")
    shift = _probe_logits(load_model(source, device="cpu").model) - _probe_logits(load_model(out, device="cpu").model)
    np.testing.assert_allclose(shift.numpy(), _logit(0.2), atol=1e-5)


def test_operating_point_refuses_a_layer_that_does_not_move_the_logit(tiny_model_dir, tmp_path, monkeypatch):
    from brightscan.model import io

    # a single-output layer outside the model's path to the logit: the check, not the search, is tested
    monkeypatch.setattr(io, "_output_layer", lambda model: torch.nn.Linear(1, 1))
    with pytest.raises(ModelFileError, match="did not move the logit"):
        io.write_operating_point(tiny_model_dir, 0.9, tmp_path / "op")
    assert not (tmp_path / "op" / "model.json").exists()
