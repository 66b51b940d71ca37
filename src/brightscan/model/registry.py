"""Registry of named, versioned model presets: ``create_model("mi_cnn.icml2023")``.

A preset is a function returning a :class:`~brightscan.model.config.ModelConfig`, registered under
its id with :func:`register_preset`. Ablation variants (image only, features only) are derived
from each full preset by :func:`_register_ablations`, so nothing ever branches on a name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from brightscan.errors import ConfigError
from brightscan.model.config import ModelConfig
from brightscan.model.mi_cnn import MultiInputCNN

__all__ = ["register_preset", "list_presets", "get_config", "create_model", "default_device"]

_PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register_preset(preset_id: str) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    """Decorator registering a zero-argument function that returns a preset's config."""

    def decorate(factory: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        if preset_id in _PRESETS:
            raise ConfigError(f"model preset {preset_id!r} is already registered")
        _PRESETS[preset_id] = factory
        return factory

    return decorate


def list_presets() -> list[str]:
    """Ids of all registered presets, sorted."""
    return sorted(_PRESETS)


def get_config(preset_id: str, **overrides: Any) -> ModelConfig:
    """The config of a registered preset, optionally with some fields replaced.

    Raises
    ------
    ConfigError
        When the preset is unknown or an override is invalid.
    """
    try:
        factory = _PRESETS[preset_id]
    except KeyError:
        raise ConfigError(
            f"unknown model preset {preset_id!r}; known presets: {', '.join(list_presets())}"
        ) from None
    config = factory()
    return config.replace(**overrides) if overrides else config


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu`` (decided when called, never at import)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def create_model(
    preset: str | ModelConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> MultiInputCNN:
    """Build a freshly initialised model from a preset id or a config.

    Parameters
    ----------
    preset : str or ModelConfig
        A registered id (see :func:`list_presets`) or a full config.
    seed : int
        Seed of the weight initialisation (a private ``torch.Generator``; global RNG untouched).
    device : str or torch.device, optional
        Where to put the model; default :func:`default_device`.
    **overrides
        Config fields to replace (only with a preset id).

    Returns
    -------
    MultiInputCNN
        In eval mode.
    """
    if isinstance(preset, ModelConfig):
        config = preset.replace(**overrides) if overrides else preset
    else:
        config = get_config(preset, **overrides)
    model = MultiInputCNN(config)
    generator = torch.Generator().manual_seed(seed)
    model.reset_parameters(generator)
    return model.to(device or default_device()).eval()


# --- presets ----------------------------------------------------------------------------------


@register_preset("mi_cnn.icml2023")
def _icml2023() -> ModelConfig:
    """The paper's model (published as v03), 14 features fed raw, as in the paper.

    Raw means ``ra`` from 0 to 360, ``ndethist`` and ``age`` in the thousands and -999 sentinels
    reach the first dense layer as they are; kept so the published weights load and the paper's
    training can be reproduced. New work should use ``mi_cnn.icml2023_bn``.
    """
    return ModelConfig(preset="mi_cnn.icml2023", version="1", feature_batchnorm=False)


@register_preset("mi_cnn.icml2023_bn")
def _icml2023_bn() -> ModelConfig:
    """The paper's model with BatchNorm on its 14 features (as btsbot 2's metadata branch).

    The normalisation is part of the network (its running statistics are weights in the
    safetensors file), so scoring, ONNX export and every backend apply it the same way.
    """
    return ModelConfig(preset="mi_cnn.icml2023_bn", version="1", feature_batchnorm=True)


@register_preset("mi_cnn.v1")
def _v1() -> ModelConfig:
    """The production model (published as v1.0.1), 25 features with BatchNorm."""
    return ModelConfig(
        preset="mi_cnn.v1",
        version="1",
        conv_filters=((32, 32), (64, 64)),
        kernel_size=5,
        pool_sizes=(2, 4),
        conv_dropouts=(0.5, 0.55),
        feature_set="v1",
        n_features=25,
        feature_batchnorm=True,
        feature_units=(128, 128),
        feature_dropouts=(0.25,),
        head_units=(8,),
        head_dropout=0.2,
    )


@register_preset("mi_cnn.tiny")
def _tiny() -> ModelConfig:
    """A few-thousand-parameter model that trains in seconds on a CPU (tests, smoke runs)."""
    return ModelConfig(
        preset="mi_cnn.tiny",
        version="1",
        conv_filters=((4,), (8,)),
        kernel_size=3,
        pool_sizes=(4, 4),
        conv_dropouts=(0.1, 0.1),
        feature_set="icml2023",
        n_features=14,
        feature_batchnorm=True,
        feature_units=(8, 8),
        feature_dropouts=(0.1,),
        head_units=(8,),
        head_dropout=0.1,
    )


def _register_ablations(base_id: str) -> None:
    """Register ``<base>_image`` and ``<base>_features``: the same model with one branch."""
    for mode in ("image", "features"):
        variant_id = f"{base_id}_{mode}"
        register_preset(variant_id)(
            lambda base_id=base_id, mode=mode, variant_id=variant_id: get_config(base_id).replace(
                preset=variant_id, branches=mode
            )
        )


for _base in ("mi_cnn.icml2023", "mi_cnn.icml2023_bn", "mi_cnn.v1"):
    _register_ablations(_base)
