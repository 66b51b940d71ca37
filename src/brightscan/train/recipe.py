"""How a preset is trained: the paper's recipe, kept by the training package, not by the model.

The model's config (:class:`brightscan.model.ModelConfig`) describes the network only. Each preset
is trained with :data:`PAPER_RECIPE` unless a different recipe is registered for it with
:func:`register_recipe`; ``train --config`` overrides single fields in its ``[recipe]`` table.
The BTSbot 2 presets (``*.btsbot2``) are registered with :data:`BTSBOT2_RECIPE`, btsbot 2.0.7's
``train.py``: AdamW, linear warm-up then cosine decay, BCE with ``pos_weight``, early stopping that
needs a 0.5% relative improvement (docs/training.md lists which numbers are btsbot's and which ours).

``negative_weight`` multiplies the negative class's loss weight after the classes are balanced
(1 in every registered recipe: the paper and btsbot 2 weigh only to balance). A model that fits
its training data then scores 0.5 where the balanced model scores ``w / (1 + w)``, so it sets
the operating point of a fixed-threshold policy such as gt1, which otherwise lies wherever the
training set's class mix puts it (docs/training.md, *Where gt1's 0.5 lies*).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brightscan.errors import ConfigError

__all__ = ["BTSBOT2_RECIPE", "CLASS_WEIGHT_FORMS", "CLASS_WEIGHT_UNITS", "LR_SCHEDULES", "OPTIMIZERS",
           "PAPER_RECIPE", "TrainingRecipe", "check_negative_weight", "recipe_for", "register_recipe"]

#: What the class weights balance: alerts (Keras' "balanced", BTSbot's pos_weight) or objects.
CLASS_WEIGHT_UNITS = ("alert", "object")
#: How the two class weights are written: Keras' "balanced" ``n / (2 n_c)`` for both classes, or
#: ``pos_weight``: 1 for negatives and ``n_0 / n_1`` for positives (torch's BCEWithLogitsLoss).
CLASS_WEIGHT_FORMS = ("balanced", "pos_weight")
#: "adam" (Keras' epsilon 1e-7, no weight decay) or "adamw" (torch's AdamW, epsilon 1e-8).
OPTIMIZERS = ("adam", "adamw")
#: "plateau" (ReduceLROnPlateau on the validation loss) or "warmup_cosine" (per-epoch linear
#: warm-up from 1% of the rate, then cosine decay to ``cosine_floor`` times the rate).
LR_SCHEDULES = ("plateau", "warmup_cosine")
_CHOICES = {"class_weight_unit": CLASS_WEIGHT_UNITS, "class_weight_form": CLASS_WEIGHT_FORMS,
            "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}


@dataclass(frozen=True)
class TrainingRecipe:
    """The settings of the training loop for one preset."""

    learning_rate: float = 1e-4  # Adam step size
    betas: tuple[float, float] = (0.99, 0.999)  # Adam (beta_1, beta_2)
    batch_size: int = 16  # alerts per optimisation step
    nmax: int = 60  # at most this many alerts per object in the training set (paper: N_max)
    class_weighting: bool = True  # weight the loss by inverse class frequency
    class_weight_unit: str = "alert"  # balance the classes over "alert"s, or over "object"s (each object weighs the same)
    max_epochs: int = 200  # hard stop
    early_stopping_patience: int = 20  # epochs without validation-loss improvement before stop
    lr_plateau_factor: float = 0.5  # multiply the LR by this when validation loss plateaus
    lr_plateau_patience: int = 10  # epochs of plateau before the LR is reduced
    augment_rotations: bool = True  # random 0/90/180/270 degree rotations of the triplet
    augment_flips: bool = True  # random horizontal and vertical flips
    optimizer: str = "adam"  # "adam" or "adamw" (OPTIMIZERS)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (adam: must stay 0)
    lr_schedule: str = "plateau"  # "plateau" or "warmup_cosine" (LR_SCHEDULES)
    warmup_epochs: int = 0  # warmup_cosine: epochs of linear warm-up from 1% of learning_rate
    cosine_floor: float = 0.01  # warmup_cosine: the cosine ends at this fraction of learning_rate
    class_weight_form: str = "balanced"  # "balanced" or "pos_weight" (CLASS_WEIGHT_FORMS)
    weighted_val_loss: bool = False  # validation loss weighted as the training loss (btsbot 2) or plain
    min_relative_improvement: float = 0.0  # an epoch improves only if val_loss * (1 + this) < every earlier one
    negative_weight: float = 1.0  # extra factor on the negative class's loss weight (see below)

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainingRecipe:
        """A copy with some fields replaced; ``ConfigError`` names unknown keys."""
        changes = dict(overrides)
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown recipe keys: {sorted(unknown)}")
        if "betas" in changes:
            changes["betas"] = tuple(changes["betas"])
        recipe = dataclasses.replace(self, **changes)
        recipe.check()
        return recipe

    def check(self) -> None:
        """``ConfigError`` on a value outside its choices or range."""
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")
        if self.optimizer == "adam" and self.weight_decay:
            raise ConfigError("weight_decay needs optimizer = \"adamw\" (Adam's L2 penalty is not decoupled)")
        if self.warmup_epochs < 0 or not 0.0 <= self.cosine_floor <= 1.0 or self.min_relative_improvement < 0:
            raise ConfigError("warmup_epochs and min_relative_improvement must be >= 0, cosine_floor in [0, 1]")
        check_negative_weight(self.negative_weight)


def check_negative_weight(value: float) -> float:
    """``value`` when it can weigh the negatives (finite and positive), else ``ConfigError``."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"negative_weight must be a finite positive number, not {value}")
    return value


#: The paper's recipe (Adam 1e-4, batch 16, N_max 60, class weights, rotations and flips).
PAPER_RECIPE = TrainingRecipe()

#: btsbot 2.0.7's ``train.py``. Fixed in its code: AdamW (torch defaults: weight decay 0.01,
#: epsilon 1e-8), LinearLR from 0.01 over the warm-up then CosineAnnealingLR to 0.01 x the rate,
#: stepped per epoch; ``pos_weight = n_neg / n_pos`` in the training and validation losses;
#: random horizontal and vertical flips and right-angle rotations; an epoch improves only when
#: ``1.005 * val_loss`` is below every earlier one. Read by btsbot from ``train_config.json``
#: and chosen here (the wheel ships none; the Hub files were not readable here): the rate,
#: betas, batch size, epochs, warm-up epochs and patience.
BTSBOT2_RECIPE = TrainingRecipe(
    learning_rate=1e-4, betas=(0.9, 0.999), batch_size=64, max_epochs=100, early_stopping_patience=10,
    optimizer="adamw", weight_decay=0.01, lr_schedule="warmup_cosine", warmup_epochs=5,
    cosine_floor=0.01, class_weight_form="pos_weight", weighted_val_loss=True,
    min_relative_improvement=0.005,
)

_RECIPES: dict[str, TrainingRecipe] = {}


def register_recipe(preset_id: str, recipe: TrainingRecipe) -> None:
    """Train ``preset_id`` with ``recipe`` instead of :data:`PAPER_RECIPE`."""
    if preset_id in _RECIPES:
        raise ConfigError(f"a recipe for {preset_id!r} is already registered")
    _RECIPES[preset_id] = recipe


def recipe_for(preset_id: str) -> TrainingRecipe:
    """The recipe a preset is trained with (an ablation ``<base>_image`` follows ``<base>``)."""
    if preset_id in _RECIPES:
        return _RECIPES[preset_id]
    for suffix in ("_image", "_features"):  # the ablations of mi_cnn.* (model.registry)
        if preset_id.endswith(suffix):
            return _RECIPES.get(preset_id.removesuffix(suffix), PAPER_RECIPE)
    return PAPER_RECIPE


def _register_btsbot2() -> None:
    from brightscan.model.btsbot2 import BTSBOT2_PRESETS
    from brightscan.model.btsbot2.rubin_presets import RUBIN_BTSBOT2_PRESETS

    # the ``*_tiny`` smoke-test sizes keep the paper's constant rate: their 2-epoch demo runs
    # would spend half the run warming up (docs/rubin.md, "The Rubin demo")
    rubin = [p for p in RUBIN_BTSBOT2_PRESETS if not p.endswith("_tiny")]
    for preset_id in (*BTSBOT2_PRESETS, *rubin):
        register_recipe(preset_id, BTSBOT2_RECIPE)


_register_btsbot2()
