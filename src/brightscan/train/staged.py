"""btsbot 2's staged ``frozen_fusion`` training: image model, metadata model, then the head.

btsbot 2.0.7 builds a ``frozen_fusion`` from two *trained* model directories (``image_model_dir``,
``meta_model_dir``), cuts their heads off, freezes their parameters and trains only the combined
head. Here each stage is an ordinary training run with its own checkpoint:

=========  ===============================  ===========================================
stage      directory                        what is trained
=========  ===============================  ===========================================
image      ``OUT/stages/image``             the fusion's image model (e.g. ConvNeXt-pico)
metadata   ``OUT/stages/metadata``          its ``um_nn``
head       ``OUT``                          ``combined_head`` only; both branches frozen
=========  ===============================  ===========================================

A stage given as a directory (``image_model=`` / ``metadata_model=``, ``--image-model`` /
``--metadata-model``) is not trained: its model is used as it is, as btsbot does. Every stage
trains with its own preset's recipe, the ``[recipe]`` overrides and the same epoch limit and seed.
``resume=True`` resumes the unfinished stage; a stage is final once a later stage has a checkpoint
(so a resume with a higher ``--epochs`` trains only the stage in progress further). The fused model's card
records every stage (``provenance.training.initialised.stages``).

As in btsbot (whose training never calls ``model.eval()`` on the frozen branches), the frozen
branches take no optimizer step but run in training mode during the head's epochs, so their
dropout is active and their BatchNorm statistics keep updating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from brightscan.errors import ConfigError, InputError
from brightscan.train.checkpoint import has_checkpoint
from brightscan.train.config import TrainConfig
from brightscan.train.trainer import Trainer

__all__ = ["STAGES", "has_run", "is_staged", "train_frozen_fusion", "train_preset"]

#: Stage name -> the fusion config's field holding that stage's model config.
STAGES = {"image": "image_model", "metadata": "meta_model"}


def is_staged(config: TrainConfig) -> bool:
    """Whether ``config``'s preset trains in stages (a ``frozen_fusion``)."""
    return getattr(config.model_config(), "model_name", None) == "frozen_fusion"


def _train_stage(config: TrainConfig, sub_preset: str, dataset_dir: Path, stage_dir: Path,
                 hooks: dict[str, Callable | None], init_weights: str | None) -> Path:
    stage = TrainConfig(**{**config.to_dict(), "preset": sub_preset, "model": {}, "init_weights": init_weights})
    Trainer(stage).fit(dataset_dir, stage_dir, resume=has_checkpoint(stage_dir), **hooks)
    return stage_dir


def _stage_record(name: str, model_dir: Path, trained: bool) -> dict[str, Any]:
    from brightscan.model import read_card

    card = read_card(model_dir)
    training = (card.get("provenance") or {}).get("training") or {}
    return {"stage": name, "model_dir": str(model_dir), "trained_here": trained,
            "model_id": card["model_id"], "model_version": card["model_version"],
            "weights_sha256": card["weights"]["sha256"],
            "best_epoch": training.get("best_epoch"), "val_loss": training.get("val_loss")}


def _freeze_branches(model_dirs: dict[str, Path], stages: list[dict[str, Any]]) -> Callable[[torch.nn.Module], dict]:
    """The head stage's initialiser: load both trained branches (heads cut as btsbot), freeze them."""
    from brightscan.model import load_model
    from brightscan.model.btsbot2 import strip_head

    def initialise(model: torch.nn.Module) -> dict[str, Any]:
        for name, branch in zip(STAGES, model.branches()):
            loaded = load_model(model_dirs[name], device="cpu").model
            wanted = getattr(model.config, STAGES[name])
            if loaded.config.to_dict() != wanted.to_dict():
                raise ConfigError(f"{model_dirs[name]} holds a {loaded.config.preset} that is not this "
                                  f"fusion's {name} model ({wanted.preset} with the same settings)")
            strip_head(loaded)
            branch.load_state_dict(loaded.state_dict(), strict=True)
            branch.requires_grad_(False)
        return {"stages": stages, "frozen": ["image_branch", "meta_branch"], "trained": ["combined_head"]}

    return initialise


def train_frozen_fusion(
    config: TrainConfig,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    image_model: str | Path | None = None,
    metadata_model: str | Path | None = None,
    on_step: Callable[[int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Trainer:
    """Train a ``frozen_fusion`` preset in btsbot 2's three stages.

    Parameters
    ----------
    config : TrainConfig
        Its preset must be a ``frozen_fusion`` (e.g. ``frozen_fusion_convnext_pico.btsbot2``).
    dataset_dir, out_dir : path
        The dataset; the fused model's directory (stages under ``out_dir/stages``).
    resume : bool
        Continue an interrupted run: finished stages are kept, the current one resumes.
    image_model, metadata_model : path, optional
        Trained model directories to use instead of training that stage.
    on_step, on_epoch : callable, optional
        As :meth:`Trainer.fit`, for every stage.

    Returns
    -------
    Trainer
        The head stage's trainer (``result_``: the fused model's run).

    Raises
    ------
    ConfigError
        Not a ``frozen_fusion`` preset, or a given model that is not the fusion's branch.
    InputError
        ``out_dir`` already holds a run and ``resume`` is False.
    """
    fusion = config.model_config()
    if not is_staged(config):
        raise ConfigError(f"{config.preset} is not a frozen_fusion preset; train it with `brightscan train`")
    dataset_dir, out = Path(dataset_dir), Path(out_dir)
    if not resume and (has_run(out) or (out / "model.json").exists()):
        raise InputError(f"{out} already holds a training run; pass --resume or choose another --out")
    hooks = {"on_step": on_step, "on_epoch": on_epoch}
    given = {"image": image_model, "metadata": metadata_model}
    model_dirs, stages = {}, []
    later = {"image": [out / "stages" / "metadata", out], "metadata": [out]}
    for name, field in STAGES.items():
        stage_dir = out / "stages" / name
        if given[name] is not None:
            model_dirs[name] = Path(given[name])
        elif any(has_checkpoint(d) for d in later[name]):
            model_dirs[name] = stage_dir  # a later stage has started: this one is final, as it is
        else:
            init = config.init_weights if name == "image" else None  # the um_nn has no backbone
            model_dirs[name] = _train_stage(config, getattr(fusion, field).preset, dataset_dir, stage_dir, hooks, init)
        stages.append(_stage_record(name, model_dirs[name], trained=given[name] is None))
    head = Trainer(replace(config, init_weights=None), initialise=_freeze_branches(model_dirs, stages))
    return head.fit(dataset_dir, out, resume=has_checkpoint(out), **hooks)


def has_run(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds an interrupted or finished run of any preset (a checkpoint, or a
    staged run's ``stages``), i.e. whether training there must resume."""
    out = Path(out_dir)
    return has_checkpoint(out) or (out / "stages").exists()


def train_preset(config: TrainConfig, dataset_dir: str | Path, out_dir: str | Path, **options: Any) -> Trainer:
    """Train ``config``'s preset the way it trains: a ``frozen_fusion`` in its three stages
    (:func:`train_frozen_fusion`), any other with :meth:`Trainer.fit`. The one entry point of
    ``brightscan train`` and the learning curve.

    Parameters
    ----------
    config, dataset_dir, out_dir
        As :func:`train_frozen_fusion`.
    **options
        ``resume``, ``on_step``, ``on_epoch``; for a ``frozen_fusion`` also ``image_model`` and
        ``metadata_model`` (given as None for any other preset).

    Raises
    ------
    ConfigError
        ``image_model`` or ``metadata_model`` given for a preset that is not a ``frozen_fusion``.
    """
    if is_staged(config):
        return train_frozen_fusion(config, dataset_dir, out_dir, **options)
    given = [options.pop(name, None) for name in ("image_model", "metadata_model")]
    if any(path is not None for path in given):
        raise ConfigError("--image-model and --metadata-model are for frozen_fusion presets only")
    return Trainer(config).fit(dataset_dir, out_dir, **options)
