"""End to end on the built-in simulator: simulate, build a dataset, train, beat chance widely."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from brightscan import simulate
from brightscan.dataset import BuildConfig, build_dataset, open_split
from brightscan.train import TrainConfig, Trainer



@pytest.mark.slow
def test_training_on_a_simulated_survey_beats_chance(tmp_path: Path) -> None:
    simulate.simulate_survey(simulate.SurveyConfig(n_sources=80, seed=1, n_nights=120, n_workers=1), tmp_path / "sim")
    card = build_dataset([tmp_path / "sim" / "alerts"], tmp_path / "sim" / "labels.csv", tmp_path / "ds",
                         BuildConfig(nmax=30, fractions=(0.6, 0.2, 0.2), seed=0))
    labels = pd.read_csv(tmp_path / "sim" / "labels.csv")
    n_sources = sum(card["splits"][s]["sources"] for s in ("train", "val", "test"))
    assert 0.8 * len(labels) <= n_sources <= len(labels)  # a few simulated sources are never detected
    val = open_split(tmp_path / "ds", "val")
    assert 0 < val.labels.mean() < 1
    config = TrainConfig(preset="mi_cnn.tiny", epochs=3, precision="fp32", recipe={"learning_rate": 3e-3, "batch_size": 32, "nmax": 30})
    result = Trainer(config).fit(tmp_path / "ds", tmp_path / "model").result_
    # with observed labels (a few noisy-bright dim SNe are positives) the lowest validation loss of
    # this 16-source validation split can come at epoch 1, so the AUC is judged by the last epoch
    assert max(r["val_auc"] for r in result.history) > 0.8
    assert result.history[-1]["val_auc"] > 0.8
