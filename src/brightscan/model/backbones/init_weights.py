"""Start a model's backbone from a local timm / Hugging Face checkpoint (``train --init-weights``).

The backbones keep timm's parameter names, so a timm state dict maps onto the trunk key for key.
The file is a state dict in ``.safetensors`` or a torch file (``.bin``, ``.pth``, ``.pt``) read
with ``torch.load(weights_only=True)``: tensors and plain containers only, no pickled code runs.
A ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper and a prefix before timm's names
(``module.``, ``model.``, btsbot's ``convnext.`` ...) are recognised. timm's classifier
(``head.fc``, ``head.pre_logits``) is not ours and is skipped; timm's ``head.norm`` is loaded
where the network keeps that LayerNorm (btsbot's single-input ConvNeXt, ``head.1``). Every trunk
tensor must be in the file with its shape, and nothing but the head may be left over; otherwise
:class:`~brightscan.errors.ModelFileError` lists what is missing and what is unexpected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from brightscan.errors import ConfigError, ModelFileError

__all__ = ["load_backbone_weights", "read_state_dict"]

_TORCH_SUFFIXES = (".bin", ".pth", ".pt")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``).

    Raises
    ------
    ModelFileError
        Another suffix, an unreadable file, or one that is not a mapping of names to tensors.
    """
    path = Path(path)
    if path.suffix not in (".safetensors", *_TORCH_SUFFIXES):
        raise ModelFileError(f"{path}: a checkpoint is .safetensors or a torch state dict "
                             f"({', '.join(_TORCH_SUFFIXES)})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many untyped errors for a bad file
        raise ModelFileError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path} is not a state dict (a mapping of names to tensors)")
    return state


def _backbone(model: nn.Module) -> tuple[str, nn.Module]:
    from brightscan.model.backbones import ConvNeXtBackbone, MaxViTBackbone

    found = [(name, m) for name, m in model.named_modules() if isinstance(m, (ConvNeXtBackbone, MaxViTBackbone))]
    if len(found) != 1:
        preset = getattr(getattr(model, "config", None), "preset", type(model).__name__)
        raise ConfigError(f"{preset} has no timm backbone to initialise (--init-weights is for the "
                          "ConvNeXt and MaxViT presets)")
    return found[0]


def _strip_prefix(state: dict[str, torch.Tensor], names: list[str], path: Path) -> dict[str, torch.Tensor]:
    """Remove the prefix before timm's names: the one under which most of ``names`` sit."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for name in names:
        counts.update({k[: -len(name)] for k in state
                       if k.endswith(name) and (k == name or k[-len(name) - 1] == ".")})
    if not counts:
        raise ModelFileError(f"{path} holds none of the backbone's timm names (e.g. {names[0]!r})")
    prefix = counts.most_common(1)[0][0]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_backbone_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Copy a timm checkpoint into ``model``'s backbone; return what was done (for the card).

    Raises
    ------
    ModelFileError
        Unreadable file, or tensors missing, unexpected or of another shape (all listed).
    ConfigError
        The model has no timm backbone.
    """
    from brightscan.model.io import sha256_file

    path = Path(path)
    where, trunk = _backbone(model)
    ours = {k: v for k, v in trunk.state_dict().items() if not k.startswith("head.")}
    state = _strip_prefix(read_state_dict(path), list(ours), path)
    head_norm = {f"head.norm.{p}": f"head.1.{p}" for p in ("weight", "bias")
                 if isinstance(getattr(trunk, "head", None), nn.Sequential) and len(trunk.head) > 1
                 and isinstance(trunk.head[1], nn.LayerNorm)}
    wanted = {**{k: k for k in ours}, **head_norm}
    missing = sorted(k for k in ours if k not in state)
    unexpected = sorted(k for k in state if k not in wanted and not k.startswith("head."))
    reshaped = sorted(f"{k} {tuple(state[k].shape)} (ours {tuple(trunk.state_dict()[t].shape)})"
                      for k, t in wanted.items() if k in state and state[k].shape != trunk.state_dict()[t].shape)
    if missing or unexpected or reshaped:
        raise ModelFileError(f"{path} does not fit the {type(trunk).__name__} of {where}: missing "
                             f"{missing or 'none'}; unexpected {unexpected or 'none'}; shapes differ {reshaped or 'none'}")
    loaded = {t: state[k].float() if state[k].is_floating_point() else state[k]
              for k, t in wanted.items() if k in state}
    trunk.load_state_dict(loaded, strict=False)
    return {"path": str(path), "sha256": sha256_file(path), "module": where, "tensors": len(loaded),
            "skipped": sorted(k for k in state if k not in wanted)}
