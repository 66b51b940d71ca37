"""Training runs on a tiny synthetic dataset: smoke, resume == uninterrupted, output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from brightscan.errors import ConfigError, InputError
from brightscan.model import load_model
from brightscan.train import TrainConfig, Trainer, class_weights

TINY = dict(preset="mi_cnn.tiny", precision="fp32", recipe={"batch_size": 16, "learning_rate": 3e-3})


def _tensors(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoint" / "last.safetensors"))


def test_smoke_two_steps_writes_a_loadable_model(synthetic_dataset: Path, tmp_path: Path) -> None:
    trainer = Trainer(TrainConfig(**TINY, epochs=1, max_steps_per_epoch=2)).fit(synthetic_dataset, tmp_path / "m")
    result = trainer.result_
    assert result.epochs_run == 1 and result.history[0]["alerts"] == 32
    loaded = load_model(tmp_path / "m", device="cpu")
    training = loaded.card["provenance"]["training"]
    assert training["best_epoch"] == 1 and loaded.card["provenance"]["dataset_card"]["kind"] == "synthetic"
    logits = loaded.model(torch.zeros(2, 63, 63, 3), torch.zeros(2, loaded.model.config.n_features))
    assert torch.isfinite(logits).all()
    rows = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert rows[0]["epoch"] == 1 and set(rows[0]) >= {"loss", "val_loss", "val_auc", "lr", "alerts_per_s"}
    assert (tmp_path / "m" / "metrics.csv").read_text().startswith("epoch,loss,val_loss,val_auc")


def test_a_batchnorm_model_trains_when_the_last_batch_would_hold_one_row(tmp_path: Path) -> None:
    """17 training rows in batches of 16 left a last batch of one, which BatchNorm refuses in
    training ("Expected more than 1 value per channel"): the Rubin demo stopped on one seed."""
    from train.conftest import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "ds", {"train": 17, "val": 16, "test": 8})
    config = TrainConfig(preset="um_nn.btsbot2", precision="fp32", epochs=2, recipe={"batch_size": 16})
    history = Trainer(config).fit(data, tmp_path / "m").result_.history
    assert [row["alerts"] for row in history] == [16, 16]  # another shuffled row left out each epoch
    with pytest.raises(ConfigError, match="batch_size 1 cannot train a model with BatchNorm"):
        Trainer(TrainConfig(**{**config.to_dict(), "recipe": {"batch_size": 1}})).fit(data, tmp_path / "m1")
    # a network without BatchNorm still trains on every row
    plain = TrainConfig(preset="mi_cnn.icml2023", precision="fp32", epochs=1, recipe={"batch_size": 16})
    assert Trainer(plain).fit(data, tmp_path / "m2").result_.history[0]["alerts"] == 17


@pytest.mark.slow
def test_resume_after_a_kill_reaches_the_same_weights(synthetic_dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(**TINY, epochs=3, seed=7)
    Trainer(config).fit(synthetic_dataset, tmp_path / "straight")

    class Killed(Exception):
        pass

    steps = []

    def kill_in_third_epoch(n: int) -> None:
        steps.append(n)
        if len(steps) == 2 * 12 + 5:  # 12 steps per epoch: die in the middle of epoch 3
            raise Killed

    with pytest.raises(Killed):
        Trainer(config).fit(synthetic_dataset, tmp_path / "killed", on_step=kill_in_third_epoch)
    assert json.loads((tmp_path / "killed" / "checkpoint" / "last.json").read_text())["trainer"]["epoch"] == 2
    resumed = Trainer(config).fit(synthetic_dataset, tmp_path / "killed", resume=True)
    straight, again = _tensors(tmp_path / "straight"), _tensors(tmp_path / "killed")
    assert straight.keys() == again.keys()
    for key in straight:
        assert torch.equal(straight[key], again[key]), key
    assert (tmp_path / "straight" / "weights.safetensors").read_bytes() == (
        tmp_path / "killed" / "weights.safetensors").read_bytes()
    history = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in resumed.result_.history]


@pytest.mark.slow
def test_resume_extends_a_finished_run_like_a_longer_one(synthetic_dataset: Path, tmp_path: Path) -> None:
    Trainer(TrainConfig(**TINY, epochs=2)).fit(synthetic_dataset, tmp_path / "a")
    Trainer(TrainConfig(**TINY, epochs=3)).fit(synthetic_dataset, tmp_path / "a", resume=True)
    Trainer(TrainConfig(**TINY, epochs=3)).fit(synthetic_dataset, tmp_path / "b")
    a, b = _tensors(tmp_path / "a"), _tensors(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_different_seed_gives_different_weights(synthetic_dataset: Path, tmp_path: Path) -> None:
    Trainer(TrainConfig(**TINY, epochs=1, seed=1)).fit(synthetic_dataset, tmp_path / "a")
    Trainer(TrainConfig(**TINY, epochs=1, seed=2)).fit(synthetic_dataset, tmp_path / "b")
    a, b = _tensors(tmp_path / "a"), _tensors(tmp_path / "b")
    assert not torch.equal(a["model.output.weight"], b["model.output.weight"])


def test_refuses_to_overwrite_or_resume_with_another_config(synthetic_dataset: Path, tmp_path: Path) -> None:
    Trainer(TrainConfig(**TINY, epochs=1, max_steps_per_epoch=1)).fit(synthetic_dataset, tmp_path / "m")
    with pytest.raises(InputError, match="--resume"):
        Trainer(TrainConfig(**TINY, epochs=1)).fit(synthetic_dataset, tmp_path / "m")
    with pytest.raises(ConfigError, match="another configuration"):
        Trainer(TrainConfig(**TINY, epochs=2, seed=3)).fit(synthetic_dataset, tmp_path / "m", resume=True)
    with pytest.raises(InputError, match="no checkpoint"):
        Trainer(TrainConfig(**TINY, epochs=1)).fit(synthetic_dataset, tmp_path / "fresh", resume=True)


def test_training_leaves_the_global_rng_alone(synthetic_dataset: Path, tmp_path: Path) -> None:
    before = torch.get_rng_state().clone()
    Trainer(TrainConfig(**TINY, epochs=1, max_steps_per_epoch=2)).fit(synthetic_dataset, tmp_path / "m")
    assert torch.equal(before, torch.get_rng_state())


def test_early_stopping_stops_before_the_epoch_limit(synthetic_dataset: Path, tmp_path: Path) -> None:
    # lr 0 and no BatchNorm: the validation loss can never improve after the first epoch.
    config = TrainConfig(preset="mi_cnn.tiny", epochs=30, max_steps_per_epoch=1, model={"feature_batchnorm": False},
                         recipe={"learning_rate": 0.0, "early_stopping_patience": 2})
    result = Trainer(config).fit(synthetic_dataset, tmp_path / "m").result_
    assert result.stopped_early and result.epochs_run < 30
    assert result.best_epoch == 1 and result.epochs_run == 3


def test_lr_is_reduced_on_plateau(synthetic_dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(preset="mi_cnn.tiny", epochs=4, max_steps_per_epoch=1, model={"feature_batchnorm": False},
                         recipe={"learning_rate": 1e-6, "lr_plateau_patience": 0, "lr_plateau_factor": 0.5,
                                 "early_stopping_patience": 10})
    lrs = [r["lr"] for r in Trainer(config).fit(synthetic_dataset, tmp_path / "m").result_.history]
    assert lrs[-1] < lrs[0]


def test_class_weights_balance_the_classes() -> None:
    w0, w1 = class_weights(np.array([0, 0, 0, 1]))
    assert w0 * 3 == pytest.approx(w1 * 1) and w0 * 3 + w1 == pytest.approx(4)
    with pytest.raises(InputError):
        class_weights(np.zeros(5))


def test_loss_weights_of_the_trainer_and_the_ceiling_come_from_one_rule() -> None:
    from brightscan.train.trainer import class_loss_weights

    labels = np.array([0, 0, 0, 1])
    w0, w1 = class_weights(labels)
    assert class_loss_weights(labels) == (w0, w1)
    assert class_loss_weights(labels, negative_weight=4.0) == (4.0 * w0, w1)  # only the negatives move
    assert class_loss_weights(labels, form="pos_weight", negative_weight=2.0) == (2.0, pytest.approx(3.0))
    assert class_loss_weights(labels, balanced=False, negative_weight=2.0) == (2.0, 1.0)
    with pytest.raises(ConfigError, match="negative_weight"):
        class_loss_weights(labels, negative_weight=float("inf"))


def test_object_class_weights_balance_objects_not_alerts() -> None:
    from brightscan.train import object_class_weights

    # class 1: one object of 8 alerts; class 0: three objects of 1, 1 and 2 alerts
    labels = np.array([1] * 8 + [0, 0, 0, 0])
    objects = np.array(["a"] * 8 + ["b", "c", "d", "d"])
    w = object_class_weights(labels, objects)
    assert w.dtype == np.float32 and np.isclose(w.sum(), len(labels))
    assert np.isclose(w[labels == 1].sum(), w[labels == 0].sum())  # each class carries half
    assert np.isclose(w[8], w[9]) and np.isclose(w[8], 2 * w[10])  # each object's share is equal
    with pytest.raises(InputError):
        object_class_weights(np.ones(3), np.array(["a", "b", "c"]))


def test_class_weights_over_objects_change_training_and_are_recorded(tmp_path: Path) -> None:
    from .conftest import write_synthetic_dataset

    # 196 training alerts: 24 objects of 8 and one of 4, so weighing objects differs from alerts
    synthetic_dataset = write_synthetic_dataset(tmp_path / "ds", {"train": 196, "val": 32})
    runs = {}
    for unit in ("alert", "object"):
        cfg = TrainConfig(**{**TINY, "recipe": {**TINY["recipe"], "class_weight_unit": unit}}, epochs=1,
                          max_steps_per_epoch=3)
        runs[unit] = Trainer(cfg).fit(synthetic_dataset, tmp_path / unit).result_
        card = load_model(tmp_path / unit, device="cpu").card["provenance"]["training"]
        assert card["class_weight_unit"] == unit
    assert runs["alert"].history[0]["loss"] != runs["object"].history[0]["loss"]
    with pytest.raises(ConfigError, match="class_weight_unit"):
        TrainConfig(preset="mi_cnn.tiny", recipe={"class_weight_unit": "source"}).training_recipe()


def test_negative_weight_moves_the_operating_point_down_and_is_recorded(tmp_path: Path) -> None:
    """Weighting negatives w times lowers the logits (a fitted model shifts by about -log w, so it
    gives 0.5 where the balanced one gives w / (1 + w)), and the model file records it."""
    import pandas as pd

    from brightscan.preprocess import feature_names
    from brightscan.score.scorer import Scorer

    from .conftest import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "ds", {"train": 192, "val": 64})
    table = pd.read_parquet(data / "val" / "alerts.parquet")
    triplets = np.load(data / "val" / "triplets.npy")
    logits, weights = {}, {}
    for w in (1.0, 9.0):
        cfg = TrainConfig(**{**TINY, "recipe": {**TINY["recipe"], "negative_weight": w}}, epochs=2)
        Trainer(cfg).fit(data, tmp_path / f"w{w:g}")
        training = load_model(tmp_path / f"w{w:g}", device="cpu").card["provenance"]["training"]
        assert training["negative_weight"] == w
        weights[w] = training["class_weights"]
        scorer = Scorer(tmp_path / f"w{w:g}")
        logits[w] = scorer.predict_logits(triplets, table[list(feature_names(scorer.feature_set))].to_numpy(np.float32))
    assert weights[9.0][0] == pytest.approx(9 * weights[1.0][0]) and weights[9.0][1] == weights[1.0][1]
    assert np.mean(logits[9.0]) < np.mean(logits[1.0]) - 1.0  # log 9 = 2.2 once fitted
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="negative_weight"):
            TrainConfig(preset="mi_cnn.tiny", recipe={"negative_weight": bad}).training_recipe()
