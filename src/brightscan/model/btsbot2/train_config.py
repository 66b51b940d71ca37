"""btsbot's ``train_config.json`` <-> :class:`Btsbot2Config`.

btsbot rebuilds a model from the architecture keys of its ``train_config.json`` (the training keys
beside them are ignored here). Reading one names the brightscan preset of the same architecture;
writing one gives a file btsbot 2.0.7's own ``load_HF_model`` rebuilds the network from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from brightscan.errors import ConfigError
from brightscan.model.btsbot2.config import BTSBOT_FEATURE_NAMES, Btsbot2Config, feature_set_of

__all__ = ["from_train_config", "to_train_config", "preset_for"]

_ARCH_KEYS = ("conv1_channels", "conv2_channels", "conv_kernel", "conv_dropout1", "conv_dropout2",
              "fc1_neurons", "fc2_neurons", "dropout", "meta_fc1_neurons", "meta_fc2_neurons",
              "meta_dropout", "comb_fc1_neurons", "comb_fc2_neurons", "comb_dropout", "image_size",
              "train_data_version", "model_kind")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Btsbot2Config)}
_TO_BTSBOT = {ours: theirs for theirs, ours in BTSBOT_FEATURE_NAMES.items()}
_BASE_IDS = {"mm_cnn": "mm_cnn", "um_cnn": "um_cnn", "um_nn": "um_nn", "ConvNeXt": "convnext_pico",
             "mm_ConvNeXt": "mm_convnext_pico", "MaxViT": "maxvit_tiny", "mm_MaxViT": "mm_maxvit_tiny"}


def preset_for(model_name: str, image_model: str | None = None) -> str:
    """The registered preset id of a btsbot architecture (frozen fusion: by its image model)."""
    if model_name == "frozen_fusion":
        return f"frozen_fusion_{_BASE_IDS.get(image_model or '', 'unknown')}.btsbot2"
    if model_name not in _BASE_IDS:
        raise ConfigError(f"btsbot model_name {model_name!r} is not one brightscan implements "
                          f"({', '.join((*_BASE_IDS, 'frozen_fusion'))})")
    return f"{_BASE_IDS[model_name]}.btsbot2"


def from_train_config(data: dict[str, Any]) -> Btsbot2Config:
    """The config of a btsbot ``train_config.json`` (its architecture keys only).

    Raises
    ------
    ConfigError
        On an unknown ``model_name``, a backbone brightscan does not implement, metadata columns
        that match no brightscan feature set, or a missing key btsbot itself requires.
    """
    if not isinstance(data, dict) or "model_name" not in data:
        raise ConfigError("a btsbot train_config needs a 'model_name'")
    name = data["model_name"]
    fields: dict[str, Any] = {k: data[k] for k in _ARCH_KEYS if k in data}
    cols = data.get("metadata_cols") or []
    if cols:
        fields.update(feature_set=feature_set_of(cols), n_features=len(cols))
    elif name in ("um_nn", "mm_cnn", "mm_ConvNeXt", "mm_MaxViT"):
        raise ConfigError(f"btsbot {name} train_config lists no metadata_cols")
    if name == "frozen_fusion":
        image = from_train_config(_required(data, "image_model_config"))
        meta = from_train_config(_required(data, "meta_model_config"))
        fields.update(image_model=image, meta_model=meta, model_kind=image.model_kind,
                      feature_set=meta.feature_set, n_features=meta.n_features)
        preset = preset_for(name, image.model_name)
    else:
        preset = preset_for(name)
    return Btsbot2Config(preset=preset, model_name=name, **fields)


def _required(data: dict[str, Any], key: str) -> dict[str, Any]:
    if not isinstance(data.get(key), dict):
        raise ConfigError(f"btsbot frozen_fusion train_config lacks {key!r}")
    return data[key]


def to_train_config(config: Btsbot2Config) -> dict[str, Any]:
    """A btsbot ``train_config`` dict that rebuilds this network with btsbot 2.0.7's classes.

    ``pretrained`` is false (the weights come from the state dict beside it); a frozen fusion
    carries its branches' configs and ``skip_load_state`` (no branch directories are needed).
    """
    from brightscan.preprocess import FEATURE_SETS

    out: dict[str, Any] = {"model_name": config.model_name, "pretrained": False}
    out.update({k: getattr(config, k) for k in _ARCH_KEYS})
    out["metadata_cols"] = [_TO_BTSBOT.get(n, n) for n in FEATURE_SETS[config.feature_set]]
    if config.model_name == "frozen_fusion":
        out.update(image_model_config=to_train_config(config.image_model),
                   meta_model_config=to_train_config(config.meta_model),
                   image_model_dir="", meta_model_dir="", skip_load_state=True)
    return out
