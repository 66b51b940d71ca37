"""The optimizer and learning-rate schedule a recipe names (no training loop here: see trainer).

``adam`` + ``plateau`` is the paper's (Keras) recipe; ``adamw`` + ``warmup_cosine`` is btsbot
2.0.7's: ``LinearLR(start_factor=0.01, total_iters=warmup)`` then ``CosineAnnealingLR(T_max=
max(1, epochs - warmup), eta_min=floor * lr)`` in a ``SequentialLR``, stepped once per epoch, so
the learning rates are torch's own numbers and the scheduler's state resumes with the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from brightscan.train.recipe import TrainingRecipe

__all__ = ["ADAM_EPS", "build_optimizer", "build_scheduler", "step_scheduler", "warmup_epochs"]

log = logging.getLogger(__name__)

#: Adam's epsilon as in Keras (torch's default is 1e-8), since the paper's recipe comes from Keras.
ADAM_EPS = 1e-7


def build_optimizer(recipe: TrainingRecipe, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam (Keras epsilon) or AdamW (torch's defaults but the recipe's rate, betas, weight decay)."""
    params = [p for p in parameters if p.requires_grad]  # frozen sub-models take no step
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.learning_rate, betas=recipe.betas,
                                 weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.learning_rate, betas=recipe.betas, eps=ADAM_EPS)


def build_scheduler(recipe: TrainingRecipe, optimizer: torch.optim.Optimizer, max_epochs: int,
                    warmup: int | None = None) -> Any:
    """The recipe's per-epoch schedule over a run of ``max_epochs`` (``warmup``: the run's warm-up
    epochs, :func:`warmup_epochs` when not given)."""
    if recipe.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=recipe.lr_plateau_factor, patience=recipe.lr_plateau_patience)
    warmup = warmup_epochs(recipe, max_epochs) if warmup is None else warmup
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, max_epochs - warmup), eta_min=recipe.learning_rate * recipe.cosine_floor)
    if warmup == 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[linear, cosine], milestones=[warmup])


def warmup_epochs(recipe: TrainingRecipe, max_epochs: int) -> int:
    """The run's warm-up: the recipe's, but at most half of ``max_epochs``.

    btsbot 2 warms up for 5 of up to 200 epochs. A short run (``--epochs 1`` to fit a budget)
    would otherwise spend every epoch near 1% of the learning rate and learn next to nothing
    (measured: ``mm_convnext_pico.btsbot2`` at 4,000 sources, one epoch at lr 1e-6, validation AUC
    0.66); halving keeps warm-up then decay in any run of two or more epochs.
    """
    warmup = min(recipe.warmup_epochs, max_epochs // 2)
    if warmup < recipe.warmup_epochs:
        log.warning("a run of %d epoch(s) warms up for %d, not the recipe's %d (at most half the run)",
                    max_epochs, warmup, recipe.warmup_epochs)
    return warmup


def step_scheduler(scheduler: Any, val_loss: float) -> None:
    """One epoch's step: the plateau schedule reads the validation loss, the others do not.

    A cosine's length is fixed when its run starts. A run resumed with a larger epoch limit holds
    the cosine's floor after that length, where torch's ``CosineAnnealingLR`` would climb back to
    the full rate (a warm restart the user did not ask for).
    """
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    elif scheduler.last_epoch < _cosine_end(scheduler):
        scheduler.step()


def _cosine_end(scheduler: Any) -> int:
    """The step at which a warm-up-and-cosine (or bare cosine) schedule reaches its floor."""
    if isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR):
        # torch keeps the milestones and the chained schedulers in these attributes (since 1.10)
        return scheduler._milestones[-1] + scheduler._schedulers[-1].T_max
    return scheduler.T_max
