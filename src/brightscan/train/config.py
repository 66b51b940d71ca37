"""Typed training configuration, and its TOML form (``--config FILE.toml``).

A TOML file may hold three tables, each optional::

    [train]            # TrainConfig fields: preset, epochs, seed, precision, compile, ...
    [recipe]           # TrainingRecipe fields overriding the preset's recipe (learning_rate, ...)
    [model]            # ModelConfig fields overriding the preset's architecture (dropouts, feature_set)

``brightscan tune`` writes its best trial in this form, so ``train --config best.toml`` retrains it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError
from brightscan.train.recipe import TrainingRecipe, recipe_for

__all__ = ["PRECISIONS", "TrainConfig", "load_train_config", "dump_toml"]

#: Arithmetic of the forward/backward passes; weights and optimizer state stay float32.
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run besides the dataset."""

    preset: str = "mi_cnn.icml2023"  # model registry id; its recipe is the default recipe
    epochs: int | None = None  # maximum epochs (None: the recipe's max_epochs)
    seed: int = 0  # weights, shuffling, augmentation and dropout all derive from it
    precision: str = "auto"  # "auto" (bf16 only where native and measured faster), "fp32" or "bf16"
    compile: bool = False  # torch.compile the model (slow first epoch, faster after)
    max_steps_per_epoch: int | None = None  # cap on optimisation steps per epoch (smoke runs)
    num_threads: int | None = None  # torch intra-op threads (None: torch's default)
    device: str | None = None  # torch device: "cpu", "cuda", "cuda:1" (None: cuda when present, else cpu)
    init_weights: str | None = None  # timm / Hugging Face checkpoint the backbone starts from (None: seeded init)
    recipe: Mapping[str, Any] = field(default_factory=dict)  # TrainingRecipe overrides
    model: Mapping[str, Any] = field(default_factory=dict)  # ModelConfig overrides

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, not {self.epochs}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError("max_steps_per_epoch must be at least 1")
        if self.device is not None and not (self.device == "cpu" or self.device.split(":")[0] == "cuda"):
            raise ConfigError(f"device must be cpu, cuda or cuda:N, not {self.device!r}")

    def training_recipe(self) -> TrainingRecipe:
        """The preset's recipe (:func:`~brightscan.train.recipe.recipe_for`) with the overrides applied."""
        return recipe_for(self.preset).with_overrides(self.recipe)

    def model_config(self) -> Any:
        """The preset's :class:`~brightscan.model.ModelConfig` with the overrides applied."""
        from brightscan.model import get_config
        from brightscan.preprocess import feature_names

        base = get_config(self.preset)
        model = dict(self.model)
        if "feature_set" in model and "n_features" not in model:
            try:
                model["n_features"] = len(feature_names(model["feature_set"]))
            except KeyError as exc:
                raise ConfigError(str(exc.args[0])) from None
        for key in ("conv_dropouts", "feature_dropouts", "pool_sizes", "feature_units", "head_units"):
            if key in model:
                model[key] = tuple(model[key])
        self.training_recipe()  # unknown recipe keys fail here too, before any work
        try:
            return base.replace(**model)
        except TypeError as exc:
            raise ConfigError(f"invalid model override: {exc}") from None

    def schedule(self, n_train: int) -> tuple[int, int]:
        """``(maximum epochs, training alerts per epoch)`` on ``n_train`` alerts (progress totals)."""
        recipe = self.training_recipe()
        per_epoch = n_train
        if self.max_steps_per_epoch:
            per_epoch = min(n_train, self.max_steps_per_epoch * recipe.batch_size)
        return self.epochs or recipe.max_epochs, per_epoch

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready dict."""
        data = dataclasses.asdict(self)
        data["recipe"], data["model"] = dict(self.recipe), dict(self.model)
        return data


def load_train_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a TOML config (optional) and apply keyword overrides that are not None.

    Raises
    ------
    ConfigError
        Unreadable TOML, unknown tables or keys, invalid values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        unknown = set(raw) - {"train", "recipe", "model"}
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {sorted(unknown)} (use [train], [recipe], [model])")
        data = dict(raw.get("train", {}))
        data["recipe"] = raw.get("recipe", {})
        data["model"] = raw.get("model", {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if set(data) - names:
        raise ConfigError(f"unknown [train] keys: {sorted(set(data) - names)}")
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid training config: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def dump_toml(config: TrainConfig) -> str:
    """The TOML text that :func:`load_train_config` reads back into ``config``."""
    data = config.to_dict()
    lines = ["[train]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in ("recipe", "model") and v is not None]
    for table in ("recipe", "model"):
        lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in data[table].items()]
    return "\n".join(lines) + "\n"
