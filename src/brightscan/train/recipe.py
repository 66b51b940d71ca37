"""How a preset is trained: the paper's recipe, kept by the training package, not by the model.

The model's config (:class:`brightscan.model.ModelConfig`) describes the network only. Each preset
is trained with :data:`PAPER_RECIPE` unless a different recipe is registered for it with
:func:`register_recipe`; ``train --config`` overrides single fields in its ``[recipe]`` table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brightscan.errors import ConfigError

__all__ = ["CLASS_WEIGHT_UNITS", "PAPER_RECIPE", "TrainingRecipe", "recipe_for", "register_recipe"]

#: What the class weights balance: alerts (Keras' "balanced", BTSbot's pos_weight) or objects.
CLASS_WEIGHT_UNITS = ("alert", "object")


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

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainingRecipe:
        """A copy with some fields replaced; ``ConfigError`` names unknown keys."""
        changes = dict(overrides)
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown recipe keys: {sorted(unknown)}")
        if "betas" in changes:
            changes["betas"] = tuple(changes["betas"])
        if changes.get("class_weight_unit", "alert") not in CLASS_WEIGHT_UNITS:
            raise ConfigError(f"class_weight_unit must be one of {CLASS_WEIGHT_UNITS}, "
                              f"not {changes['class_weight_unit']!r}")
        return dataclasses.replace(self, **changes)


#: The paper's recipe (Adam 1e-4, batch 16, N_max 60, class weights, rotations and flips).
PAPER_RECIPE = TrainingRecipe()

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
