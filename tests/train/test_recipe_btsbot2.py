"""btsbot 2's recipe, the default of the ``*.btsbot2`` presets: each element on a tiny seeded run.

AdamW; per-epoch linear warm-up from 1% then cosine decay to 1% (closed form, not torch's code);
``pos_weight = n_neg / n_pos`` in training and validation losses; early stopping that needs a
0.5% relative improvement over every earlier epoch; the schedule resumes with the checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from brightscan.model import list_presets
from brightscan.train import TrainConfig, Trainer
from brightscan.train.loop import evaluate
from brightscan.train.recipe import BTSBOT2_RECIPE, PAPER_RECIPE, recipe_for
from brightscan.train.trainer import improves, pos_weights
from train.conftest import write_synthetic_dataset

FAST = dict(preset="um_nn.btsbot2", precision="fp32", max_steps_per_epoch=2, seed=3)


def _expected_lr(epoch: int, lr: float, warmup: int, epochs: int, floor: float = 0.01) -> float:
    """btsbot 2.0.7's LinearLR(0.01 -> 1) then CosineAnnealingLR(eta_min = floor * lr), 0-based epoch."""
    if epoch < warmup:
        return lr * (0.01 + 0.99 * epoch / warmup)
    t, span = epoch - warmup, max(1, epochs - warmup)
    return lr * floor + (lr - lr * floor) * (1 + math.cos(math.pi * t / span)) / 2


def test_btsbot2_presets_default_to_btsbot2s_recipe_and_the_others_keep_the_papers():
    btsbot2_rubin = {"mm_cnn.rubin", "mm_convnext_pico.rubin"}  # btsbot 2's classes at 48 px; not the tiny one
    for preset in list_presets():
        expected = BTSBOT2_RECIPE if preset.endswith(".btsbot2") or preset in btsbot2_rubin else PAPER_RECIPE
        assert recipe_for(preset) == expected, preset
    assert BTSBOT2_RECIPE.optimizer == "adamw" and BTSBOT2_RECIPE.min_relative_improvement == 0.005
    assert PAPER_RECIPE.optimizer == "adam" and PAPER_RECIPE.lr_schedule == "plateau"


def test_lr_follows_warmup_then_cosine_and_the_optimizer_is_adamw(synthetic_dataset: Path, tmp_path: Path):
    recipe = {"warmup_epochs": 3, "learning_rate": 1e-3, "early_stopping_patience": 100}
    trainer = Trainer(TrainConfig(**FAST, epochs=9, recipe=recipe)).fit(synthetic_dataset, tmp_path / "m")
    lrs = [row["lr"] for row in trainer.result_.history]
    assert lrs == pytest.approx([_expected_lr(e, 1e-3, 3, 9) for e in range(9)], rel=1e-9)
    assert lrs[0] == pytest.approx(1e-5) and max(lrs) == pytest.approx(1e-3)
    groups = trainer_optimizer(tmp_path / "m")["param_groups"][0]
    assert groups["weight_decay"] == 0.01 and groups["eps"] == 1e-8 and groups["betas"] == [0.9, 0.999]


@pytest.mark.parametrize("epochs, warmup", [(1, 0), (4, 2)])
def test_a_short_run_warms_up_for_at_most_half_of_it(synthetic_dataset: Path, tmp_path: Path, caplog,
                                                     epochs: int, warmup: int):
    """The recipe's 5 warm-up epochs would keep a one-epoch run at 1% of the rate (lr 1e-6 at
    4,000 sources: validation AUC 0.66): a run warms up for at most half its epochs, and says so."""
    recipe = {"warmup_epochs": 5, "learning_rate": 1e-3, "early_stopping_patience": 100}
    with caplog.at_level("WARNING", logger="brightscan.train.schedule"):
        trainer = Trainer(TrainConfig(**FAST, epochs=epochs, recipe=recipe)).fit(synthetic_dataset, tmp_path / "m")
    lrs = [row["lr"] for row in trainer.result_.history]
    assert lrs == pytest.approx([_expected_lr(e, 1e-3, warmup, epochs) for e in range(epochs)], rel=1e-9)
    assert max(lrs) == pytest.approx(1e-3)  # the full rate is reached in either run
    assert f"warms up for {warmup}, not the recipe's 5" in caplog.text


def trainer_optimizer(out: Path) -> dict:
    return json.loads((out / "checkpoint" / "last.json").read_text())["optimizer"]


def test_resume_keeps_the_schedule(synthetic_dataset: Path, tmp_path: Path):
    config = TrainConfig(**FAST, epochs=6, recipe={"warmup_epochs": 2, "early_stopping_patience": 100})
    straight = Trainer(config).fit(synthetic_dataset, tmp_path / "straight").result_.history

    class Stop(Exception):
        pass

    def stop_after_third(row):
        if row["epoch"] == 3:
            raise Stop

    with pytest.raises(Stop):
        Trainer(config).fit(synthetic_dataset, tmp_path / "cut", on_epoch=stop_after_third)
    resumed = Trainer(config).fit(synthetic_dataset, tmp_path / "cut", resume=True).result_.history
    assert [r["lr"] for r in resumed] == [r["lr"] for r in straight]
    assert [r["val_loss"] for r in resumed] == [r["val_loss"] for r in straight]


def test_a_run_resumed_with_more_epochs_holds_the_cosine_floor(synthetic_dataset: Path, tmp_path: Path):
    """A finished 4-epoch run continued to 7 (``--resume --epochs 7``, or a learning curve asked
    for more epochs): the first 4 rates are the planned ones, the 3 new epochs stay at the floor
    instead of torch's cosine climbing back towards the full rate."""
    recipe = {"warmup_epochs": 2, "learning_rate": 1e-3, "early_stopping_patience": 100}
    Trainer(TrainConfig(**FAST, epochs=4, recipe=recipe)).fit(synthetic_dataset, tmp_path / "m")
    longer = Trainer(TrainConfig(**FAST, epochs=7, recipe=recipe)).fit(synthetic_dataset, tmp_path / "m",
                                                                        resume=True)
    lrs = [row["lr"] for row in longer.result_.history]
    assert len(lrs) == 7
    assert lrs[:4] == pytest.approx([_expected_lr(e, 1e-3, 2, 4) for e in range(4)], rel=1e-9)
    assert lrs[4:] == pytest.approx([1e-5] * 3, rel=1e-9)  # the floor: 1% of the rate


def test_pos_weight_is_applied_in_training_and_validation(tmp_path: Path):
    labels = np.array([0, 0, 0, 1], np.float32)
    assert pos_weights(labels) == (1.0, 3.0)
    # the weighted validation loss is torch's BCEWithLogitsLoss(pos_weight)
    model = torch.nn.Linear(2, 1)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))

    class Net(torch.nn.Module):
        def forward(self, triplets, features):
            return model(features)[:, 0]

    batch = (np.zeros((4, 1, 1, 1), np.float32), x.numpy(), labels)
    loss, _, _ = evaluate(Net(), [batch], device=torch.device("cpu"), class_weights=(1.0, 3.0))
    with torch.no_grad():
        reference = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0]))(model(x)[:, 0], torch.from_numpy(labels))
    assert loss == pytest.approx(float(reference), rel=1e-6)
    # and the trainer uses it: n_neg / n_pos of the training set (13 negative, 12 positive
    # 8-alert objects), recorded in the card; the paper's presets keep Keras' balanced weights
    dataset = write_synthetic_dataset(tmp_path / "ds", {"train": 200, "val": 48}, per_source=8)
    for preset, expected in (("um_nn.btsbot2", [1.0, 104 / 96]), ("mi_cnn.tiny", [200 / 208, 200 / 192])):
        Trainer(TrainConfig(**{**FAST, "preset": preset}, epochs=1)).fit(dataset, tmp_path / preset)
        card = json.loads((tmp_path / preset / "model.json").read_text())
        assert card["provenance"]["training"]["class_weights"] == pytest.approx(expected), preset


def test_half_a_percent_rule():
    # 0.4% better than the best so far: not an improvement under btsbot 2's rule, one under the paper's
    assert not improves(0.996, 1.0, 0.005) and improves(0.996, 1.0, 0.0)
    assert improves(0.99, 1.0, 0.005)
    # compared with every earlier epoch: 0.994 is 0.6% below 1.0 but only 0.2% below 0.996
    losses, margin, patience = [1.0, 0.996, 0.994, 0.990, 0.980], 0.005, 3
    stops, earlier, bad, best = None, math.inf, 0, None
    for epoch, loss in enumerate(losses, 1):
        if improves(loss, earlier, margin):
            bad, best = 0, epoch
        else:
            bad += 1
            if bad >= patience:
                stops = epoch
                break
        earlier = min(earlier, loss)
    assert (best, stops) == (1, 4)


def test_a_run_stops_exactly_where_the_rule_says(synthetic_dataset: Path, tmp_path: Path):
    """Replay the run's own validation losses through the rule: same best epoch, same stop."""
    for margin in (0.005, 0.0):
        config = TrainConfig(**FAST, epochs=12, recipe={"learning_rate": 3e-3, "warmup_epochs": 1,
                                                         "early_stopping_patience": 2,
                                                         "min_relative_improvement": margin})
        result = Trainer(config).fit(synthetic_dataset, tmp_path / f"m{margin}").result_
        earlier, bad, best, stop = math.inf, 0, 0, None
        for row in result.history:
            if improves(row["val_loss"], earlier, margin):
                bad, best = 0, row["epoch"]
            else:
                bad += 1
                if bad >= 2:
                    stop = row["epoch"]
                    break
            earlier = min(earlier, row["val_loss"])
        assert result.best_epoch == best and result.stopped_early == (stop is not None)
        assert result.epochs_run == (stop or 12)
