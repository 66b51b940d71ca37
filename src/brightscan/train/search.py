"""Hyperparameter search with Optuna (TPE sampler, median pruning).

Searched: learning rate, batch size, the dropout rates of the preset, N_max (by re-thinning the
stored training split, so values above the dataset's build N_max are not offered) and the
feature set (only sets whose columns the dataset stores; a v1 dataset stores both). Each trial
is a normal training run in ``OUT/trials/<number>``; the pruner sees every epoch's validation
loss. Optuna is an optional dependency (``pip install brightscan[tune]``) imported on use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brightscan.dataset import read_dataset_card
from brightscan.errors import ConfigError
from brightscan.preprocess import FEATURE_SETS
from brightscan.train.config import TrainConfig, dump_toml
from brightscan.train.trainer import Trainer

log = logging.getLogger(__name__)

__all__ = ["SearchConfig", "tune"]


@dataclass(frozen=True)
class SearchConfig:
    """The search space and budget."""

    trials: int = 20  # trials to run
    seed: int = 0  # seed of the TPE sampler (each trial trains with the base config's seed)
    learning_rate: tuple[float, float] = (1e-5, 3e-3)  # log-uniform range
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128)  # categorical
    dropout: tuple[float, float] = (0.0, 0.6)  # uniform range of every dropout rate
    nmax: tuple[int, ...] = (10, 20, 40, 60, 100)  # categorical, capped at the build N_max
    feature_sets: tuple[str, ...] = ("icml2023", "v1")  # categorical, those the dataset stores
    startup_trials: int = 3  # trials before pruning starts
    warmup_epochs: int = 2  # epochs of a trial before it can be pruned

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError("trials must be at least 1")
        unknown = set(self.feature_sets) - set(FEATURE_SETS)
        if unknown:
            raise ConfigError(f"unknown feature sets {sorted(unknown)}")


def _space(search: SearchConfig, card: dict[str, Any]) -> tuple[list[int], list[str]]:
    built = card.get("nmax")
    nmax = [n for n in search.nmax if built is None or n <= built] or [built]
    stored = set(card.get("features", []))
    sets = [s for s in search.feature_sets if set(FEATURE_SETS[s]) <= stored]
    if not sets:
        raise ConfigError(f"the dataset stores none of the feature sets {search.feature_sets}")
    return nmax, sets


def _suggest(trial: Any, base: TrainConfig, search: SearchConfig, nmax: list[int], sets: list[str]) -> TrainConfig:
    model_config = base.model_config()
    recipe = {**base.recipe,
              "learning_rate": trial.suggest_float("learning_rate", *search.learning_rate, log=True),
              "batch_size": trial.suggest_categorical("batch_size", list(search.batch_sizes)),
              "nmax": trial.suggest_categorical("nmax", nmax)}
    lo, hi = search.dropout
    model = {**base.model,
             "feature_set": trial.suggest_categorical("feature_set", sets),
             "conv_dropouts": [trial.suggest_float(f"conv_dropout_{i}", lo, hi)
                               for i in range(len(model_config.conv_dropouts))],
             "feature_dropouts": [trial.suggest_float(f"feature_dropout_{i}", lo, hi)
                                  for i in range(len(model_config.feature_dropouts))],
             "head_dropout": trial.suggest_float("head_dropout", lo, hi)}
    model.pop("n_features", None)
    return dataclasses.replace(base, recipe=recipe, model=model)


def tune(
    dataset_dir: str | Path, out_dir: str | Path, base: TrainConfig, search: SearchConfig = SearchConfig()
) -> dict[str, Any]:
    """Run the search; write ``trials.csv``, ``best.toml`` and ``best.json`` to ``out_dir``.

    Parameters
    ----------
    dataset_dir : path
        A dataset built with the largest N_max to search and with ``--features v1``.
    out_dir : path
        Trials train in ``out_dir/trials/<n>``.
    base : TrainConfig
        Preset, epochs per trial, seed, precision; the searched fields override it.
    search : SearchConfig

    Returns
    -------
    dict
        ``best_value`` (validation loss), ``best_params``, ``best_trial``, counts of trials by state.
    """
    try:
        import optuna
    except ImportError:
        raise ConfigError("brightscan tune needs Optuna: pip install 'brightscan[tune]'") from None
    out = Path(out_dir)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    nmax, sets = _space(search, read_dataset_card(dataset_dir))
    configs: dict[int, TrainConfig] = {}

    def objective(trial: Any) -> float:
        config = _suggest(trial, base, search, nmax, sets)
        configs[trial.number] = config

        def report(row: dict[str, Any]) -> None:
            trial.report(row["val_loss"], row["epoch"] - 1)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = Trainer(config).fit(dataset_dir, out / "trials" / f"{trial.number:04d}", on_epoch=report).result_
        trial.set_user_attr("val_auc", result.best_val_auc)
        return result.best_val_loss

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=search.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials,
                                           n_warmup_steps=search.warmup_epochs),
    )
    study.optimize(objective, n_trials=search.trials)
    return _write_results(study, configs, out)


def _write_results(study: Any, configs: dict[int, TrainConfig], out: Path) -> dict[str, Any]:
    study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError("no trial completed; increase --trials or the epochs per trial") from None
    (out / "best.toml").write_text(dump_toml(configs[best.number]), encoding="utf-8")
    summary = {"best_trial": best.number, "best_value": best.value, "best_params": best.params,
               "best_val_auc": best.user_attrs.get("val_auc"), "states": states,
               "best_model": str(out / "trials" / f"{best.number:04d}")}
    (out / "best.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
