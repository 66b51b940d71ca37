"""Training: augmentation, the epoch loop, the trainer with resumable checkpoints, and the
hyperparameter search (Optuna, optional)."""

from __future__ import annotations

from brightscan.train.augment import augment_batch
from brightscan.train.config import TrainConfig, dump_toml, load_train_config
from brightscan.train.loop import evaluate, train_epoch
from brightscan.train.trainer import Trainer, TrainResult, class_weights, object_class_weights

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "augment_batch",
    "class_weights",
    "dump_toml",
    "evaluate",
    "load_train_config",
    "object_class_weights",
    "train_epoch",
]
