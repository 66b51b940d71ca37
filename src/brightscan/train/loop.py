"""One epoch of training and one pass of evaluation (no files, no scheduling: see trainer)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brightscan.train.augment import augment_batch

__all__ = ["Batch", "EpochStats", "train_epoch", "evaluate", "autocast"]

#: (triplets (N, 63, 63, 3), features (N, F), labels (N,)[, loss weights (N,)]) as numpy float32
#: arrays; without the weights, each alert weighs its class's weight.
Batch = tuple[np.ndarray, ...]


@dataclass
class EpochStats:
    """What one training epoch did."""

    loss: float  # mean weighted loss over alerts
    alerts: int  # alerts seen
    seconds: float  # wall time

    @property
    def alerts_per_s(self) -> float:
        return self.alerts / self.seconds if self.seconds > 0 else float("nan")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device for ``precision == "bf16"``, else a no-op."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device, non_blocking=True) for a in batch)


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    *,
    class_weights: tuple[float, float],
    device: torch.device,
    augment: torch.Generator | None,
    precision: str = "fp32",
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """Train over ``batches`` once with class-weighted BCE-with-logits.

    A batch's fourth array, when present, holds each alert's loss weight (per-object class
    weights); otherwise ``class_weights`` ``(w0, w1)`` weighs each alert by its label.

    ``augment`` is the generator of the random rotations/flips (None: no augmentation);
    ``on_step`` receives the batch size after each step (progress bars).
    """
    model.train()
    total, count, start = 0.0, 0, time.perf_counter()
    w0, w1 = class_weights
    for batch in batches:
        triplets, features, labels, *given = _to_device(batch, device)
        if augment is not None:
            triplets = augment_batch(triplets, augment)
        weights = given[0].float() if given else torch.where(labels > 0.5, w1, w0)
        with autocast(device, precision):
            logits = model(triplets, features)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(labels)
        count += len(labels)
        if on_step is not None:
            on_step(len(labels))
    return EpochStats(total / max(count, 1), count, time.perf_counter() - start)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[Batch], *, device: torch.device,
    class_weights: tuple[float, float] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean BCE, scores and labels over ``batches`` (eval mode, float32).

    The BCE is unweighted, or with ``class_weights`` ``(w0, w1)`` weighted per alert by its label
    as the training loss (btsbot 2 judges its validation loss with the training ``pos_weight``).
    """
    model.eval()
    scores, labels, total = [], [], 0.0
    for batch in batches:
        triplets, features, y = _to_device(batch[:3], device)
        logits = model(triplets, features).float()
        weight = None if class_weights is None else torch.where(y > 0.5, class_weights[1], class_weights[0])
        total += float(F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="sum"))
        scores.append(torch.sigmoid(logits).cpu().numpy())
        labels.append(batch[2])
    if not scores:
        return float("nan"), np.empty(0, np.float32), np.empty(0, np.float32)
    y_all = np.concatenate(labels)
    return total / len(y_all), np.concatenate(scores), y_all
