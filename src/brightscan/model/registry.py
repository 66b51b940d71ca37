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
from brightscan.model.btsbot2 import BTSBOT2_PRESETS, Btsbot2Config, Btsbot2Model, build_network
from brightscan.model.btsbot2.rubin_presets import RUBIN_BTSBOT2_PRESETS
from brightscan.model.config import ModelConfig
from brightscan.model.mi_cnn import MultiInputCNN

__all__ = ["register_preset", "list_presets", "get_config", "create_model", "default_device",
           "build_model", "config_from_dict", "AnyConfig", "AnyModel"]

#: A model's typed config: the multi-input CNN's, or a BTSbot 2 network's.
AnyConfig = ModelConfig | Btsbot2Config
#: A model built from an :data:`AnyConfig`; both take ``(triplet, features)`` and return logits.
AnyModel = MultiInputCNN | Btsbot2Model

_PRESETS: dict[str, Callable[[], AnyConfig]] = {}
#: Config class -> the network it builds (no branching on preset names).
_BUILDERS: dict[type, Callable[[Any], AnyModel]] = {ModelConfig: MultiInputCNN, Btsbot2Config: build_network}
#: ``architecture`` key of a stored config -> its class (configs without the key are ModelConfig).
_CONFIG_CLASSES: dict[str, type] = {"mi_cnn": ModelConfig, "btsbot2": Btsbot2Config}


def register_preset(preset_id: str) -> Callable[[Callable[[], AnyConfig]], Callable[[], AnyConfig]]:
    """Decorator registering a zero-argument function that returns a preset's config."""

    def decorate(factory: Callable[[], AnyConfig]) -> Callable[[], AnyConfig]:
        if preset_id in _PRESETS:
            raise ConfigError(f"model preset {preset_id!r} is already registered")
        _PRESETS[preset_id] = factory
        return factory

    return decorate


def list_presets() -> list[str]:
    """Ids of all registered presets, sorted."""
    return sorted(_PRESETS)


def get_config(preset_id: str, **overrides: Any) -> AnyConfig:
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


def build_model(config: AnyConfig) -> AnyModel:
    """The (uninitialised) network of a config, whatever its family."""
    try:
        builder = _BUILDERS[type(config)]
    except KeyError:
        raise ConfigError(f"no network is registered for {type(config).__name__}") from None
    return builder(config)


def config_from_dict(data: dict[str, Any]) -> AnyConfig:
    """Rebuild a stored config; its ``architecture`` key names the family (none: the multi-input CNN).

    Raises
    ------
    ConfigError
        On an unknown family or invalid keys.
    """
    family = data.get("architecture", "mi_cnn")
    try:
        cls = _CONFIG_CLASSES[family]
    except KeyError:
        raise ConfigError(f"unknown model architecture {family!r} (known: {', '.join(_CONFIG_CLASSES)})") from None
    return cls.from_dict(data)


def create_model(
    preset: str | AnyConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> AnyModel:
    """Build a freshly initialised model from a preset id or a config.

    Parameters
    ----------
    preset : str, ModelConfig or Btsbot2Config
        A registered id (see :func:`list_presets`) or a full config.
    seed : int
        Seed of the weight initialisation (a private ``torch.Generator``; global RNG untouched).
    device : str or torch.device, optional
        Where to put the model; default :func:`default_device`.
    **overrides
        Config fields to replace (only with a preset id).

    Returns
    -------
    MultiInputCNN or Btsbot2Model
        In eval mode.
    """
    if isinstance(preset, (ModelConfig, Btsbot2Config)):
        config = preset.replace(**overrides) if overrides else preset
    else:
        config = get_config(preset, **overrides)
    model = build_model(config)
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


@register_preset("mi_cnn.rubin")
def _rubin() -> ModelConfig:
    """The paper's architecture on Rubin alerts: 48 px stamps (docs/rubin.md), 17 Rubin features.

    The input contract is the config's (``image_size``, ``feature_set``); a later architecture
    (BTSbot 2's ``mm_cnn``) plugs in by registering a config with the same two fields.
    """
    return ModelConfig(preset="mi_cnn.rubin", version="1", image_size=48, feature_set="rubin_v1",
                       n_features=17, feature_batchnorm=True)


@register_preset("mi_cnn.rubin_tiny")
def _rubin_tiny() -> ModelConfig:
    """``mi_cnn.tiny`` on Rubin alerts (tests, the tiny Rubin demo)."""
    return get_config("mi_cnn.tiny").replace(preset="mi_cnn.rubin_tiny", image_size=48,
                                             feature_set="rubin_v1", n_features=17)


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


for _preset_id, _factory in BTSBOT2_PRESETS.items():
    register_preset(_preset_id)(_factory)


# BTSbot 2 architectures at Rubin's 48 px on the rubin_v1 features (issue 24; the Rubin demo's model).
for _preset_id, _factory in RUBIN_BTSBOT2_PRESETS.items():
    register_preset(_preset_id)(_factory)
