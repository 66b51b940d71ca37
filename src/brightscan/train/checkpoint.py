"""The last-epoch checkpoint: tensors in safetensors, everything else in JSON. No pickle.

``checkpoint/last.safetensors`` holds the model's state dict (``model.<name>``) and the
optimizer's per-parameter tensors (``optim.<param index>.<name>``, e.g. Adam's ``exp_avg``);
``checkpoint/last.json`` holds the optimizer's hyperparameters and scalar state, the LR
scheduler's state, the trainer's state (epoch, early-stopping counters, metrics history) and the
sha256 of the tensor file, so a tensor file from another save is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brightscan.errors import InputError

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_DIR = "checkpoint"
_TENSORS = "last.safetensors"
_STATE = "last.json"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` restores besides the module and optimizer."""

    scheduler: dict[str, Any]  # the LR scheduler's state_dict
    trainer: dict[str, Any]  # epoch, early-stopping state, history, config


def _sha256(path: Path) -> str:
    from brightscan.model.io import sha256_file

    return sha256_file(path)


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
) -> Path:
    """Write ``directory/checkpoint/last.{safetensors,json}`` (each replaced atomically)."""
    from safetensors.torch import save_file

    folder = Path(directory) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    tmp = folder / (_TENSORS + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / _TENSORS)
    meta = {
        "tensors_sha256": _sha256(folder / _TENSORS),
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars,
                      "tensor_params": sorted({int(k.split(".")[1]) for k in tensors if k.startswith("optim.")})},
        "scheduler": scheduler.state_dict(),
        "trainer": trainer_state,
    }
    tmp = folder / (_STATE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / _STATE)
    return folder


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a last checkpoint."""
    folder = Path(directory) / CHECKPOINT_DIR
    return (folder / _STATE).is_file() and (folder / _TENSORS).is_file()


def read_trainer_state(directory: str | Path) -> dict[str, Any]:
    """The trainer state of the checkpoint in ``directory`` (epoch, early stopping, the run's
    warm-up...), read without loading any tensor: what a resumed run must build the same way."""
    return json.loads((Path(directory) / CHECKPOINT_DIR / _STATE).read_text(encoding="utf-8"))["trainer"]


def load_checkpoint(
    directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> Checkpoint:
    """Restore ``model`` and ``optimizer`` in place; return the scheduler and trainer state.

    Raises
    ------
    InputError
        No checkpoint, or a tensor file that does not belong to the JSON state.
    """
    from safetensors.torch import load_file

    folder = Path(directory) / CHECKPOINT_DIR
    if not has_checkpoint(directory):
        raise InputError(f"no checkpoint to resume from in {folder}")
    meta = json.loads((folder / _STATE).read_text(encoding="utf-8"))
    if _sha256(folder / _TENSORS) != meta["tensors_sha256"]:
        raise InputError(f"{folder / _TENSORS} does not match {_STATE} (interrupted save?)")
    tensors = load_file(str(folder / _TENSORS))
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value.to(device) if name != "step" else value
    for pid, values in meta["optimizer"]["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    return Checkpoint(scheduler=meta["scheduler"], trainer=meta["trainer"])
