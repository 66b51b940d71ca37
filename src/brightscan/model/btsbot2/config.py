"""Typed configuration of the BTSbot 2 architectures, with the keys of btsbot's ``train_config.json``.

A :class:`Btsbot2Config` holds exactly the architecture keys btsbot 2.0.7 reads from a model's
``train_config.json`` (``model_name``, ``model_kind``, ``fc1_neurons``, ..., ``metadata_cols``),
so an imported btsbot model is rebuilt from its own file, plus brightscan's naming (preset id,
version, feature set). Training keys (``learning_rate``, ``epochs``...) are not architecture and
live in :mod:`brightscan.train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from brightscan.errors import ConfigError
from brightscan.model.config import _build as build_config

__all__ = ["ARCHITECTURES", "IMAGE_MODELS", "Btsbot2Config", "BTSBOT_FEATURE_NAMES", "feature_set_of"]

#: btsbot 2's class names (``train_config["model_name"]``).
ARCHITECTURES = ("mm_cnn", "um_cnn", "um_nn", "ConvNeXt", "mm_ConvNeXt", "MaxViT", "mm_MaxViT",
                 "frozen_fusion")
#: The image-only models a ``frozen_fusion`` can use as its image branch.
IMAGE_MODELS = ("um_cnn", "ConvNeXt", "MaxViT")
_USES_IMAGE = frozenset(ARCHITECTURES) - {"um_nn"}
_USES_FEATURES = frozenset({"mm_cnn", "um_nn", "mm_ConvNeXt", "mm_MaxViT", "frozen_fusion"})
#: btsbot spells two of brightscan's v1 features differently (the values are the same).
BTSBOT_FEATURE_NAMES = {"new_drb": "drb", "nnotdet": "nnondet"}


def feature_set_of(metadata_cols: tuple[str, ...] | list[str]) -> str:
    """The brightscan feature set whose order equals btsbot's ``metadata_cols``.

    Raises
    ------
    ConfigError
        When no feature set of :mod:`brightscan.preprocess` has these columns in this order.
    """
    from brightscan.preprocess import FEATURE_SETS

    names = tuple(BTSBOT_FEATURE_NAMES.get(c, c) for c in metadata_cols)
    for name, order in FEATURE_SETS.items():
        if tuple(order) == names:
            return name
    raise ConfigError(
        f"btsbot metadata_cols {list(metadata_cols)} match no brightscan feature set in order "
        f"(known: {', '.join(FEATURE_SETS)})"
    )


@dataclass(frozen=True)
class Btsbot2Config:
    """One BTSbot 2 network: btsbot's architecture keys plus brightscan's naming."""

    preset: str  # registry id, e.g. "mm_convnext_pico.btsbot2"
    model_name: str  # btsbot class: one of ARCHITECTURES
    version: str = "1"  # version of the preset's definition
    model_kind: str = ""  # timm backbone id, e.g. "convnext_pico.d1_in1k", "maxvit_tiny_rw_224.sw_in1k"
    image_size: int = 63  # cutout side fed to the model (MaxViT resizes it to its own size inside)
    image_channels: int = 3  # science, reference, difference
    feature_set: str = "v1"  # brightscan feature set equal to btsbot's metadata_cols
    n_features: int = 25  # len(metadata_cols)
    train_data_version: str = ""  # btsbot: mm_ConvNeXt keeps pool+norm only for "LS" data
    conv1_channels: int = 32  # mm_cnn / um_cnn: first conv block's filters
    conv2_channels: int = 64  # mm_cnn / um_cnn: second conv block's filters
    conv_kernel: int = 5  # mm_cnn / um_cnn: square kernel, 'same' padding
    conv_dropout1: float = 0.5  # mm_cnn / um_cnn: Dropout2d after the first block
    conv_dropout2: float = 0.55  # mm_cnn / um_cnn: Dropout2d after the second block
    fc1_neurons: int = 128  # single-input heads: first dense layer
    fc2_neurons: int = 32  # single-input heads: second dense layer
    dropout: float = 0.2  # single-input heads: dropout before the output layer
    meta_fc1_neurons: int = 128  # metadata branch: first dense layer
    meta_fc2_neurons: int = 128  # metadata branch: second dense layer
    meta_dropout: float = 0.25  # metadata branch: dropout between its layers
    comb_fc1_neurons: int = 128  # multi-input head: first dense layer
    comb_fc2_neurons: int = 32  # multi-input head: second dense layer
    comb_dropout: float = 0.2  # multi-input head: dropout before the output layer
    image_model: Btsbot2Config | None = None  # frozen_fusion: the image-only model it embeds
    meta_model: Btsbot2Config | None = None  # frozen_fusion: the um_nn it embeds

    def __post_init__(self) -> None:
        self.validate()

    @property
    def branches(self) -> str:
        """``both``, ``image`` or ``features``, as for :class:`~brightscan.model.ModelConfig`."""
        if self.uses_image and self.uses_features:
            return "both"
        return "image" if self.uses_image else "features"

    @property
    def uses_image(self) -> bool:
        """Whether the model reads the cutouts."""
        return self.model_name in _USES_IMAGE

    @property
    def feature_batchnorm(self) -> bool:
        """btsbot's metadata branches start with BatchNorm1d on the raw features."""
        return self.uses_features

    @property
    def uses_features(self) -> bool:
        """Whether the model reads the metadata features."""
        return self.model_name in _USES_FEATURES

    @property
    def backbone_size(self) -> int:
        """Side the backbone runs at: MaxViT's name fixes it (``..._224`` -> 224), else the cutout's."""
        if self.model_name in ("MaxViT", "mm_MaxViT"):
            digits = [part for part in self.model_kind.split(".")[0].split("_") if part.isdigit()]
            return int(digits[-1]) if digits else 224
        return self.image_size

    def validate(self) -> None:
        """Raise :class:`~brightscan.errors.ConfigError` when the config is inconsistent."""
        problems = []
        if self.model_name not in ARCHITECTURES:
            problems.append(f"model_name must be one of {ARCHITECTURES}, not {self.model_name!r}")
        if "ConvNeXt" in self.model_name and not self.model_kind.startswith("convnext_pico"):
            problems.append(f"{self.model_name} is implemented for convnext_pico, not {self.model_kind!r}")
        if "MaxViT" in self.model_name and not self.model_kind.startswith("maxvit_tiny_rw_224"):
            problems.append(f"{self.model_name} is implemented for maxvit_tiny_rw_224, not {self.model_kind!r}")
        if self.model_name == "frozen_fusion":
            if self.image_model is None or self.image_model.model_name not in IMAGE_MODELS:
                problems.append(f"frozen_fusion needs an image_model among {IMAGE_MODELS}")
            if self.meta_model is None or self.meta_model.model_name != "um_nn":
                problems.append("frozen_fusion needs a um_nn meta_model")
        rates = (self.conv_dropout1, self.conv_dropout2, self.dropout, self.meta_dropout, self.comb_dropout)
        if any(not 0.0 <= r < 1.0 for r in rates):
            problems.append("dropout rates must lie in [0, 1)")
        if self.n_features < 1:
            problems.append("n_features must be at least 1")
        if problems:
            raise ConfigError(f"invalid BTSbot 2 config {self.preset!r}: " + "; ".join(problems))

    # --- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``architecture`` tells a model card's reader which config class to use."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("image_model", "meta_model"):
            if data[key] is not None:
                data[key] = data[key].to_dict()
        return {"architecture": "btsbot2", **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Btsbot2Config:
        """Rebuild a config from :meth:`to_dict` output (:class:`ConfigError` on bad keys)."""
        data = {k: v for k, v in data.items() if k != "architecture"}
        for key in ("image_model", "meta_model"):
            if data.get(key) is not None:
                data[key] = cls.from_dict(data[key])
        return build_config(cls, data)

    def replace(self, **changes: Any) -> Btsbot2Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)
