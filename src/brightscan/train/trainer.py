"""Fit a preset on a dataset: weighted BCE, the recipe's optimizer and LR schedule (Adam + LR on
plateau, or AdamW + warm-up and cosine), augmentation, early stopping, best model + resumable last
checkpoint.

Randomness is reproducible and resumable by construction: every epoch's shuffle, augmentation
and dropout streams are seeded from ``(seed, epoch)``, so resuming after epoch ``e`` replays
epoch ``e + 1`` exactly as an uninterrupted run would, and the global torch RNG is only used
inside :func:`torch.random.fork_rng` (the caller's RNG state is untouched).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brightscan.dataset import iter_batches, open_split, read_dataset_card
from brightscan.errors import ConfigError, InputError
from brightscan.metrics import roc_auc
from brightscan.train.checkpoint import has_checkpoint, load_checkpoint, read_trainer_state, save_checkpoint
from brightscan.train.config import TrainConfig
from brightscan.train.loop import evaluate, train_epoch
from brightscan.train.precision import resolve_precision
from brightscan.train.recipe import check_negative_weight
from brightscan.train.schedule import build_optimizer, build_scheduler, step_scheduler, warmup_epochs

log = logging.getLogger(__name__)

__all__ = ["Trainer", "TrainResult", "class_weights", "epoch_seeds", "improves", "object_class_weights",
           "pos_weights"]

#: Batch size of validation passes (no gradients, so larger than training batches).
EVAL_BATCH = 256


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    model_dir: Path  # where the best model was saved
    best_epoch: int  # 1-based epoch with the lowest validation loss
    best_val_loss: float
    best_val_auc: float
    epochs_run: int  # epochs completed in total (across resumes)
    stopped_early: bool  # patience ran out before the epoch limit
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per epoch


def class_weights(labels: np.ndarray) -> tuple[float, float]:
    """Balanced class weights ``n / (2 n_c)`` for labels 0 and 1 (Keras' "balanced")."""
    labels = np.asarray(labels) > 0.5
    n, n1 = len(labels), int(labels.sum())
    if n1 == 0 or n1 == n:
        raise InputError("the training split holds a single class; cannot train a classifier")
    return n / (2.0 * (n - n1)), n / (2.0 * n1)


def pos_weights(labels: np.ndarray) -> tuple[float, float]:
    """``(1, n_0 / n_1)``: torch's ``BCEWithLogitsLoss(pos_weight=n_0 / n_1)``, as btsbot 2 trains.

    The ratio is :func:`class_weights`'; only the scale differs (negatives weigh 1).
    """
    w0, w1 = class_weights(labels)
    return 1.0, w1 / w0


def class_loss_weights(labels: np.ndarray, *, balanced: bool = True, form: str = "class_weight",
                       negative_weight: float = 1.0) -> tuple[float, float]:
    """The loss weights of labels 0 and 1: balanced (:func:`class_weights`, or :func:`pos_weights`
    for ``form="pos_weight"``) or 1 and 1, then the negatives' weight times ``negative_weight``
    (the recipe's lever that moves a trained model's 0.5; the ceiling's booster uses it as well).

    Raises
    ------
    ConfigError
        ``negative_weight`` is not a finite positive number.
    """
    weigh = pos_weights if form == "pos_weight" else class_weights
    w0, w1 = weigh(labels) if balanced else (1.0, 1.0)
    return w0 * check_negative_weight(negative_weight), w1


def object_class_weights(labels: np.ndarray, object_ids: np.ndarray) -> np.ndarray:
    """Per-alert loss weights that balance the classes over *objects*, not alerts.

    Each class carries half the total weight (as :func:`class_weights`), shared equally among its
    objects, and each object's share equally among its alerts: ``n / (2 O_c k_o)`` for an alert of
    an object with ``k_o`` alerts in a class of ``O_c`` objects. Objects with many alerts (AGN,
    long SNe) no longer outweigh short-lived ones, and a class's first alerts are not pushed
    towards 0.5 by the other class's per-alert count.
    """
    labels = np.asarray(labels) > 0.5
    class_weights(labels)  # a single class is an error here too
    _, codes, per_object = np.unique(np.asarray(object_ids), return_inverse=True, return_counts=True)
    objects_of_class = {c: len(np.unique(codes[labels == c])) for c in (False, True)}
    n_objects = np.where(labels, objects_of_class[True], objects_of_class[False])
    return (len(labels) / (2.0 * n_objects * per_object[codes])).astype(np.float32)


def improves(val_loss: float, earlier: float, margin: float) -> bool:
    """Whether an epoch improves: ``val_loss * (1 + margin)`` below the lowest *earlier* loss.

    ``margin = 0`` is the paper's rule (any decrease); btsbot 2 uses 0.005, compared with every
    earlier epoch, including ones that were lower without counting as an improvement.
    """
    return val_loss * (1.0 + margin) < earlier


def epoch_seeds(seed: int, epoch: int) -> tuple[int, int, int]:
    """Seeds of an epoch's shuffle, augmentation and dropout streams."""
    a, b, c = np.random.SeedSequence([seed, epoch]).generate_state(3)
    return int(a), int(b), int(c)


class Trainer:
    """Train a model preset on a dataset directory.

    Parameters
    ----------
    config : TrainConfig
        Preset, recipe overrides, seed, precision, epochs.
    initialise : callable, optional
        Called with the freshly built model before the optimizer is made (and before a resumed
        checkpoint is read): loads starting weights and sets ``requires_grad`` (frozen parts take
        no optimizer step). It returns what it did, stored in the card's ``provenance.training``
        as ``initialised``.

    Attributes
    ----------
    result_ : TrainResult
        Set by :meth:`fit`.
    model_ : MultiInputCNN
        The model after the last epoch (the *best* model is on disk in ``result_.model_dir``).
    """

    def __init__(self, config: TrainConfig, *,
                 initialise: Callable[[torch.nn.Module], dict[str, Any]] | None = None) -> None:
        self.config = config
        self.initialise = initialise

    def fit(
        self,
        dataset_dir: str | Path,
        out_dir: str | Path,
        *,
        resume: bool = False,
        on_step: Callable[[int], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> Trainer:
        """Train; write the best model, metrics and a last checkpoint to ``out_dir``.

        Parameters
        ----------
        dataset_dir : path
            Built by ``brightscan dataset build`` (or imported).
        out_dir : path
            Model directory (``model.json``, ``weights.safetensors``), ``metrics.csv``,
            ``metrics.json`` and ``checkpoint/``.
        resume : bool
            Continue from ``out_dir/checkpoint`` (same config required).
        on_step, on_epoch : callable, optional
            Called with the alerts of each step, and with each epoch's metrics row (an
            exception raised there, e.g. Optuna's pruning, stops training after the checkpoint).

        Returns
        -------
        Trainer
            ``self``, with ``result_`` and ``model_`` set.
        """
        run = _Run(self.config, Path(dataset_dir), Path(out_dir), self.initialise)
        run.start(resume)
        while not run.finished():
            row = run.epoch(on_step)
            if on_epoch is not None:
                on_epoch(row)
        self.model_, self.result_ = run.model, run.result()
        return self


def _has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _Run:
    """The state of one training run (kept out of :class:`Trainer` so ``fit`` stays small)."""

    def __init__(self, config: TrainConfig, dataset_dir: Path, out: Path,
                 initialise: Callable[[torch.nn.Module], dict[str, Any]] | None = None) -> None:
        from brightscan.model import create_model
        from brightscan.model.registry import default_device
        from brightscan.preprocess import feature_set_names as feature_names

        self.config, self.dataset_dir, self.out = config, dataset_dir, out
        self.model_config = config.model_config()
        self.recipe = config.training_recipe()
        self.max_epochs = config.epochs or self.recipe.max_epochs
        self.card = read_dataset_card(dataset_dir)
        names = feature_names(self.model_config.feature_set)
        self.train = open_split(dataset_dir, "train", names)
        self.val = open_split(dataset_dir, "val", names)
        build = self.card.get("build") or {}
        self.train_idx = self.train.thinned_indices(self.recipe.nmax, build.get("thinning", "latest"),
                                                    int(self.card.get("seed") or 0))
        built = self.card.get("nmax")
        if built is not None and self.recipe.nmax > built:
            log.warning("recipe N_max %d exceeds the dataset's build N_max %d", self.recipe.nmax, built)
        if len(self.val) == 0:
            raise InputError(f"{dataset_dir}: the validation split is empty")
        labels = self.train.labels[self.train_idx]
        self.weights = class_loss_weights(labels, balanced=self.recipe.class_weighting,
                                          form=self.recipe.class_weight_form,
                                          negative_weight=self.recipe.negative_weight)
        self.row_weights = None  # per-alert weights, for class weights over objects
        if self.recipe.class_weighting and self.recipe.class_weight_unit == "object":
            rows = object_class_weights(labels, self.train.table["objectId"].to_numpy()[self.train_idx])
            self.row_weights = np.zeros(len(self.train), np.float32)
            self.row_weights[self.train_idx] = np.where(labels > 0.5, rows, rows * self.recipe.negative_weight)
        self.device = torch.device(config.device) if config.device else default_device()
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {config.device} asked for, but torch sees no CUDA device")
        with torch.random.fork_rng(devices=[]):  # nn.Linear/Conv2d draw a throwaway init globally
            self.model = create_model(self.model_config, seed=config.seed, device=self.device)
        self.initialised = initialise(self.model) if initialise is not None else None
        if config.init_weights:
            from brightscan.model.backbones.init_weights import load_backbone_weights

            self.initialised = {**(self.initialised or {}),
                                "init_weights": load_backbone_weights(self.model, config.init_weights)}
        self.forward = torch.compile(self.model) if config.compile else self.model
        # BatchNorm cannot train on a batch of one row; the shuffled epoch's last row is dropped
        # when it would make one (each epoch drops another row, so none is left out for good)
        batchnorm = _has_batchnorm(self.model)
        self.drop_single_last = batchnorm and len(self.train_idx) % self.recipe.batch_size == 1
        if batchnorm and self.recipe.batch_size == 1:
            raise ConfigError(f"{self.model_config.preset}: batch_size 1 cannot train a model with BatchNorm")
        self.optimizer = build_optimizer(self.recipe, self.model.parameters())
        self.scheduler: Any = None  # built by start(): a resumed run keeps the warm-up it began with
        self.state: dict[str, Any] = {"epoch": 0, "best_loss": math.inf, "min_val_loss": math.inf, "best_auc": math.nan,
                                      "best_epoch": 0, "bad_epochs": 0, "stopped_early": False,
                                      "history": [], "precision": None, "precision_rates": {}}

    def _identity(self) -> dict[str, Any]:
        data = self.config.to_dict()
        data.pop("epochs")  # a resumed run may extend the epoch limit
        data.pop("num_threads")
        data.pop("device")  # a run may resume on another device
        return data

    def start(self, resume: bool) -> None:
        if resume and has_checkpoint(self.out):
            # before the optimizer's state is loaded: building a scheduler sets its learning rates
            warmup = read_trainer_state(self.out).get("warmup_epochs", self.recipe.warmup_epochs)
        else:
            warmup = warmup_epochs(self.recipe, self.max_epochs)
        self.scheduler = build_scheduler(self.recipe, self.optimizer, self.max_epochs, warmup=warmup)
        if resume:
            saved = load_checkpoint(self.out, self.model, self.optimizer)
            if saved.trainer.get("config") != json.loads(json.dumps(self._identity())):
                raise ConfigError(f"{self.out}: the checkpoint was made with another configuration; "
                                  "resume with the same preset, seed and config file")
            self.scheduler.load_state_dict(saved.scheduler)
            self.state = {"precision": None, "precision_rates": {},
                          **{k: v for k, v in saved.trainer.items() if k != "config"}}
            log.info("resuming %s after epoch %d", self.out, self.state["epoch"])
        elif has_checkpoint(self.out) or (self.out / "model.json").exists():
            raise InputError(f"{self.out} already holds a training run; pass --resume or choose another --out")
        self.state["warmup_epochs"] = warmup  # saved with every checkpoint, for a later resume
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        if self.state["precision"] is None:  # a resumed run keeps the precision it started with
            self.state["precision"], self.state["precision_rates"] = resolve_precision(
                self.config.precision, self.model, self.recipe.batch_size, self.device)

    def finished(self) -> bool:
        return self.state["stopped_early"] or self.state["epoch"] >= self.max_epochs

    def epoch(self, on_step: Callable[[int], None] | None) -> dict[str, Any]:
        """Train one epoch, validate, schedule, save; return the metrics row."""
        epoch = self.state["epoch"] + 1
        shuffle_seed, augment_seed, dropout_seed = epoch_seeds(self.config.seed, epoch)
        batches = iter_batches(self.train, self.train_idx, self.recipe.batch_size,
                               rng=np.random.default_rng(shuffle_seed), weights=self.row_weights,
                               drop_last=self.drop_single_last)
        if self.config.max_steps_per_epoch:
            batches = (b for _, b in zip(range(self.config.max_steps_per_epoch), batches))
        augment = None
        if self.recipe.augment_rotations or self.recipe.augment_flips:
            augment = torch.Generator().manual_seed(augment_seed)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(dropout_seed)
            stats = train_epoch(self.forward, batches, self.optimizer, class_weights=self.weights,
                                device=self.device, augment=augment, precision=self.state["precision"],
                                on_step=on_step)
        val_loss, scores, labels = evaluate(
            self.model, iter_batches(self.val, np.arange(len(self.val)), EVAL_BATCH), device=self.device,
            class_weights=self.weights if self.recipe.weighted_val_loss else None)
        row = {"epoch": epoch, "loss": stats.loss, "val_loss": val_loss, "val_auc": roc_auc(labels, scores),
               "val_accuracy": float(np.mean((scores > 0.5) == (labels > 0.5))),
               "lr": self.optimizer.param_groups[0]["lr"], "alerts": stats.alerts,
               "seconds": stats.seconds, "alerts_per_s": stats.alerts_per_s}
        step_scheduler(self.scheduler, val_loss)
        self.val_scores = scores  # the reference distribution of the epoch, if it is the best
        self._track(row)
        return row

    def _track(self, row: dict[str, Any]) -> None:
        state = self.state
        state["epoch"] = row["epoch"]
        state["history"].append(row)
        earlier = min(state.get("min_val_loss", state["best_loss"]), state["best_loss"])
        if improves(row["val_loss"], earlier, self.recipe.min_relative_improvement):
            state.update(best_loss=row["val_loss"], best_auc=row["val_auc"], best_epoch=row["epoch"], bad_epochs=0)
            self._save_best()
        else:
            state["bad_epochs"] += 1
            state["stopped_early"] = state["bad_epochs"] >= self.recipe.early_stopping_patience
        state["min_val_loss"] = min(earlier, row["val_loss"])
        _write_metrics(self.out, state["history"])
        save_checkpoint(self.out, self.model, self.optimizer, self.scheduler,
                        {**state, "config": self._identity()})

    def _save_best(self) -> None:
        from brightscan.model import save_model

        provenance = {
            "trained_on": str(self.dataset_dir),
            "dataset_card": self.card,
            "training": {"config": self.config.to_dict(), "best_epoch": self.state["best_epoch"],
                         "val_loss": self.state["best_loss"], "val_auc": self.state["best_auc"],
                         "train_alerts": int(len(self.train_idx)), "class_weights": list(self.weights),
                         "class_weight_unit": self.recipe.class_weight_unit if self.recipe.class_weighting else None,
                         "negative_weight": self.recipe.negative_weight,
                         "device": str(self.device), "precision": self.state["precision"],
                         "precision_rates": self.state["precision_rates"],
                         **({"initialised": self.initialised} if self.initialised is not None else {})},
        }
        save_model(self.model, self.out, provenance=provenance, overwrite=True)
        self._save_reference()

    def _save_reference(self) -> None:
        """``reference.json``: the validation split's features and the best epoch's scores (drift)."""
        from brightscan.model.reference import build_reference, write_reference

        write_reference(self.out, build_reference(
            self.val.features, list(self.val.feature_names), self.val_scores, split="val",
            provenance={"dataset": str(self.dataset_dir), "epoch": self.state["best_epoch"]}))

    def result(self) -> TrainResult:
        s = self.state
        return TrainResult(self.out, s["best_epoch"], s["best_loss"], s["best_auc"], s["epoch"],
                           s["stopped_early"], list(s["history"]))


def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.json``, rewritten whole after every epoch."""
    with open(out / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (out / "metrics.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
