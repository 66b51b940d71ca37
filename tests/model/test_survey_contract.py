"""Every model states what it was trained on; ZTF and Rubin models never score the other's alerts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brightscan.alerts import Alert, read_alerts
from brightscan.errors import ConfigError, ModelFileError
from brightscan.model import create_model, load_model, save_model
from brightscan.model.io import read_card
from brightscan.score.scorer import Scorer
from tests.preprocess.test_rubin_inputs import rubin_alert


@pytest.fixture
def rubin_model_dir(tmp_path):
    return save_model(create_model("mi_cnn.rubin_tiny", seed=1, device="cpu"), tmp_path / "rubin",
                      provenance={"trained_on": "nothing (test fixture)"})


def test_cards_state_survey_feature_set_and_input_size(rubin_model_dir, tiny_model_dir):
    assert read_card(rubin_model_dir)["trained_on"] == {
        "survey": "rubin", "feature_set": "rubin_v1", "input_size": [48, 48, 3]}
    assert read_card(rubin_model_dir)["preprocessing_version"] == "rubin-1"
    assert read_card(tiny_model_dir)["trained_on"] == {
        "survey": "ztf", "feature_set": "icml2023", "input_size": [63, 63, 3]}


def test_published_ztf_models_are_ztf_models(imported_models):
    for directory in imported_models.values():
        loaded = load_model(directory, device="cpu")
        assert loaded.survey == "ztf" and loaded.card["trained_on"]["input_size"] == [63, 63, 3]
        with pytest.raises(ModelFileError, match="trained on ZTF alerts and cannot score RUBIN alerts"):
            load_model(directory, survey="rubin", device="cpu")


def test_a_ztf_model_refuses_rubin_alerts(imported_models):
    scorer = Scorer(imported_models["v03"], device="cpu")
    scored, rejected = _score(scorer, [rubin_alert(), rubin_alert(seed=1)])
    assert not scored and len(rejected) == 2
    assert all(r.stage == "survey" and "a RUBIN alert cannot be scored by a model of ZTF alerts" in r.reason
               for r in rejected)


def test_a_rubin_model_scores_rubin_alerts_and_refuses_ztf_ones(rubin_model_dir, real_avro_dir):
    ztf = [a for a in read_alerts(sorted(real_avro_dir.glob("*.avro"))[:2]) if isinstance(a, Alert)]
    scorer = Scorer(rubin_model_dir, device="cpu")
    scored, rejected = _score(scorer, [*ztf, rubin_alert()])
    assert len(scored) == 1 and 0.0 < scored[0] < 1.0
    assert len(rejected) == len(ztf) and all("a ZTF alert cannot be scored by a model of RUBIN" in r.reason
                                             for r in rejected)


def test_a_card_that_contradicts_its_config_is_refused(rubin_model_dir):
    card_path = rubin_model_dir / "model.json"
    card = json.loads(card_path.read_text())
    card["trained_on"]["survey"] = "ztf"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="its card says it was trained on"):
        load_model(rubin_model_dir, device="cpu")


def test_a_ztf_model_at_another_stamp_size_cannot_be_saved(tmp_path):
    with pytest.raises(ConfigError, match="a ZTF model takes 63 px triplets"):
        save_model(create_model("mi_cnn.tiny", device="cpu", image_size=48), tmp_path / "bad")


def _score(scorer, alerts):
    scores, rejections = [], []
    for chunk in scorer.prepare(alerts):
        rejections.extend(chunk.rejections)
        if len(chunk):
            scores.extend(np.asarray(scorer.score_arrays(chunk.triplet_array(), chunk.feature_array())).tolist())
    return scores, rejections
