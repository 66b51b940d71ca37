"""Typed configuration of the multi-input CNN.

A :class:`ModelConfig` fully determines the network's architecture; it is what a preset in
:mod:`brightscan.model.registry` returns and what ``model.json`` stores, so a model directory can
be rebuilt without any other source of truth. How a preset is trained is the training package's
business (:mod:`brightscan.train.recipe`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from brightscan.errors import ConfigError

__all__ = ["BRANCH_MODES", "ModelConfig"]

#: Which inputs a model uses: both branches (the paper's model) or one alone (ablations).
BRANCH_MODES = ("both", "image", "features")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a multi-input CNN (image branch + feature branch + head).

    Image branch: for each block ``b``, convolutions ``conv_filters[b]`` (``kernel_size``, 'same'
    padding, ReLU), then max-pool ``pool_sizes[b]`` (floor), then dropout ``conv_dropouts[b]``;
    then flatten. Feature branch: optional BatchNorm, then dense layers ``feature_units`` (ReLU)
    with dropout ``feature_dropouts[i]`` after layer ``i`` except the last. Head: concatenate
    [image, features], dense ``head_units`` (ReLU) each followed by ``head_dropout``, then one
    output logit.
    """

    preset: str  # registry id this config came from, e.g. "mi_cnn.icml2023"
    version: str = "1"  # version of the preset's definition (bumped when the preset changes)
    branches: str = "both"  # "both" | "image" | "features"
    image_size: int = 63  # cutout height = width in pixels
    image_channels: int = 3  # science, reference, difference
    conv_filters: tuple[tuple[int, ...], ...] = ((16, 16), (32, 32))  # filters per conv, per block
    kernel_size: int = 3  # square convolution kernel, 'same' padding
    pool_sizes: tuple[int, ...] = (2, 4)  # max-pool size (= stride) after each block
    conv_dropouts: tuple[float, ...] = (0.2, 0.35)  # dropout after each block's pool
    feature_set: str = "icml2023"  # name in brightscan.preprocess.FEATURE_SETS
    n_features: int = 14  # length of that feature set
    feature_batchnorm: bool = True  # BatchNorm on the raw features (new presets; icml2023 alone feeds raw ones)
    batchnorm_eps: float = 1e-3  # Keras' default epsilon, not torch's 1e-5
    feature_units: tuple[int, ...] = (16, 32)  # dense layers of the feature branch
    feature_dropouts: tuple[float, ...] = (0.0,)  # dropout between feature dense layers
    head_units: tuple[int, ...] = (16,)  # dense layers after the concatenation
    head_dropout: float = 0.45  # dropout after each head dense layer

    def __post_init__(self) -> None:
        self.validate()

    # --- derived sizes -------------------------------------------------------------------------
    @property
    def uses_image(self) -> bool:
        """Whether the image branch exists."""
        return self.branches in ("both", "image")

    @property
    def uses_features(self) -> bool:
        """Whether the feature branch exists."""
        return self.branches in ("both", "features")

    @property
    def pooled_size(self) -> int:
        """Side of the last feature map (pooling floors: 63 -> 31 -> 7)."""
        side = self.image_size
        for pool in self.pool_sizes:
            side //= pool
        return side

    @property
    def image_out(self) -> int:
        """Length of the flattened image-branch output."""
        return self.conv_filters[-1][-1] * self.pooled_size**2 if self.uses_image else 0

    @property
    def features_out(self) -> int:
        """Length of the feature-branch output."""
        return self.feature_units[-1] if self.uses_features else 0

    def validate(self) -> None:
        """Raise :class:`~brightscan.errors.ConfigError` when the config is inconsistent."""
        problems = []
        if self.branches not in BRANCH_MODES:
            problems.append(f"branches must be one of {BRANCH_MODES}, not {self.branches!r}")
        if not (len(self.conv_filters) == len(self.pool_sizes) == len(self.conv_dropouts)):
            problems.append("conv_filters, pool_sizes and conv_dropouts need one entry per block")
        if any(len(block) == 0 for block in self.conv_filters):
            problems.append("every conv block needs at least one convolution")
        if self.kernel_size % 2 != 1:
            problems.append("kernel_size must be odd ('same' padding is symmetric)")
        if len(self.feature_dropouts) != max(len(self.feature_units) - 1, 0):
            problems.append("feature_dropouts needs one entry between each pair of feature layers")
        if not self.feature_units or self.n_features < 1:
            problems.append("the feature branch needs n_features >= 1 and at least one layer")
        rates = (*self.conv_dropouts, *self.feature_dropouts, self.head_dropout)
        if any(not 0.0 <= r < 1.0 for r in rates):
            problems.append("dropout rates must lie in [0, 1)")
        if self.uses_image and self.pooled_size < 1:
            problems.append("the pools shrink the image to nothing")
        if problems:
            raise ConfigError(f"invalid model config {self.preset!r}: " + "; ".join(problems))

    # --- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            On unknown or missing keys, or an inconsistent config.
        """
        data = dict(data)
        data.pop("recipe", None)  # model files written before the recipe moved to the training package
        for key in ("conv_filters",):
            if key in data:
                data[key] = tuple(tuple(int(v) for v in block) for block in data[key])
        for key in ("pool_sizes", "conv_dropouts", "feature_units", "feature_dropouts",
                    "head_units"):
            if key in data:
                data[key] = tuple(data[key])
        return _build(cls, data)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from None
