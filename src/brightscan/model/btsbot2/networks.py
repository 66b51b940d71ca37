"""The BTSbot 2 networks (btsbot 2.0.7's ``architectures.py``), with btsbot's module structure.

Every class has btsbot's attribute names and layer order (``convnext_backbone``,
``metadata_branch``, ``combined_head``, ``image_branch``...), so a btsbot ``state_dict`` loads
with ``strict=True``. Two entry points:

- ``forward(triplet, features)``: brightscan's model interface (as :class:`~brightscan.model.
  MultiInputCNN`): ``triplet`` ``(N, 63, 63, 3)`` channels last, ``features`` ``(N, F)`` in the
  order of ``config.feature_set``; returns logits ``(N,)``.
- ``forward_btsbot(*inputs)``: btsbot's own call, images ``(N, 3, H, W)`` channels first and/or
  metadata ``(N, F)``; returns ``(N, 1)`` logits (an embedding once :func:`strip_head` ran).
  ONNX export in the btsbot-v2 convention traces this one.

The backbones come from :mod:`brightscan.model.backbones` (timm's names, no timm needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brightscan.model.backbones import ConvNeXtBackbone, MaxViTBackbone, convnext_pico, maxvit_tiny_rw
from brightscan.model.backbones.layers import GlobalAvgPool, LayerNorm2d
from brightscan.model.btsbot2.config import Btsbot2Config

__all__ = ["Btsbot2Model", "build_network"]


def _dense_head(width: int, fc1: int, fc2: int, dropout: float, act: type[nn.Module]) -> list[nn.Module]:
    """btsbot's head: Linear, act, Linear, act, Dropout, Linear(1)."""
    return [nn.Linear(width, fc1), act(), nn.Linear(fc1, fc2), act(), nn.Dropout(dropout),
            nn.Linear(fc2, 1)]


def _metadata_branch(c: Btsbot2Config, act: type[nn.Module]) -> nn.Sequential:
    """BatchNorm1d on the raw features, Linear, act, Dropout, Linear, act."""
    return nn.Sequential(
        nn.BatchNorm1d(c.n_features), nn.Linear(c.n_features, c.meta_fc1_neurons), act(),
        nn.Dropout(c.meta_dropout), nn.Linear(c.meta_fc1_neurons, c.meta_fc2_neurons), act(),
    )


def _conv_layers(c: Btsbot2Config) -> nn.Sequential:
    """btsbot's custom CNN: two blocks of two 'same' convs + ReLU, max-pool 2 then 4, Dropout2d."""
    k = c.conv_kernel
    return nn.Sequential(
        nn.Conv2d(3, c.conv1_channels, k, padding="same"), nn.ReLU(),
        nn.Conv2d(c.conv1_channels, c.conv1_channels, k, padding="same"), nn.ReLU(),
        nn.MaxPool2d(2, 2), nn.Dropout2d(c.conv_dropout1),
        nn.Conv2d(c.conv1_channels, c.conv2_channels, k, padding="same"), nn.ReLU(),
        nn.Conv2d(c.conv2_channels, c.conv2_channels, k, padding="same"), nn.ReLU(),
        nn.MaxPool2d(4, 4), nn.Dropout2d(c.conv_dropout2), nn.Flatten(),
    )


def _conv_feature_dim(c: Btsbot2Config) -> int:
    # btsbot's formula: 63 // 8 = 7, the side after pooling by 2 then 4 (floors).
    return c.conv2_channels * (c.image_size // 8) ** 2


class Btsbot2Model(nn.Module):
    """Base of the BTSbot 2 networks: brightscan's call on top of btsbot's.

    Parameters
    ----------
    config : Btsbot2Config
        Architecture; stored as ``self.config``.
    """

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__()
        self.config = config

    def forward_btsbot(self, *inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def metadata_module(self) -> nn.Module:
        """The layers that read the raw metadata (only for models that read features)."""
        raise TypeError(f"{type(self).__name__} reads no metadata")

    def forward_features(self, metadata: torch.Tensor) -> torch.Tensor:
        """The metadata path, always in float32: autocast is switched off here, so bf16 training
        sees the features as float32 scoring does (bf16 rounds a magnitude near 18.5 to 0.125 mag
        steps). Its output joins the image branch's, promoted to float32 by ``torch.cat``."""
        with torch.autocast(metadata.device.type, enabled=False):
            return self.metadata_module()(metadata.float())

    def forward(self, triplet: torch.Tensor | None, features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)`` from channels-last triplets and/or features (unused input may be None)."""
        inputs = []
        if self.config.uses_image:
            inputs.append(triplet.permute(0, 3, 1, 2))  # (N, 3, 63, 63), as btsbot transposes
        if self.config.uses_features:
            inputs.append(features)
        return self.forward_btsbot(*inputs).squeeze(1)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight from ``generator``: torch's default scheme for btsbot's own layers,
        then timm's scheme for the backbones (their heads included), BatchNorm reset to identity."""
        backbones = []
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(module.weight, a=5 ** 0.5, generator=generator)
                if module.bias is not None:
                    bound = 1 / module.weight[0].numel() ** 0.5
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()
            elif isinstance(module, (ConvNeXtBackbone, MaxViTBackbone)):
                backbones.append(module)
        for backbone in backbones:
            backbone.reset_parameters(generator)


class _MultiInput(Btsbot2Model):
    """btsbot's multi-input networks: image features beside the metadata branch, into one head."""

    def image_features(self, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def metadata_module(self) -> nn.Module:
        return self.metadata_branch

    def forward_btsbot(self, image: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        joint = torch.cat((self.image_features(image), self.forward_features(metadata)), dim=1)
        return self.combined_head(joint)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (no-op at that size), as btsbot does for MaxViT."""
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


class UmCnn(Btsbot2Model):
    """btsbot ``um_cnn``: the custom CNN on the cutouts alone."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.conv_layers = _conv_layers(config)
        self.head = nn.Sequential(*_dense_head(_conv_feature_dim(config), config.fc1_neurons,
                                               config.fc2_neurons, config.dropout, nn.ReLU))

    def forward_btsbot(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_layers(image))


class MmCnn(_MultiInput):
    """btsbot ``mm_cnn``: the custom CNN and the metadata branch, concatenated."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.conv_layers = _conv_layers(config)
        self.metadata_branch = _metadata_branch(config, nn.ReLU)
        width = _conv_feature_dim(config) + config.meta_fc2_neurons
        self.combined_head = nn.Sequential(*_dense_head(width, config.comb_fc1_neurons,
                                                        config.comb_fc2_neurons, config.comb_dropout, nn.ReLU))

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv_layers(image)


class UmNn(Btsbot2Model):
    """btsbot ``um_nn``: the metadata alone (BatchNorm, two ReLU layers, one logit)."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        c = config
        self.network = nn.Sequential(
            nn.BatchNorm1d(c.n_features), nn.Linear(c.n_features, c.meta_fc1_neurons), nn.ReLU(),
            nn.Dropout(c.meta_dropout), nn.Linear(c.meta_fc1_neurons, c.meta_fc2_neurons), nn.ReLU(),
            nn.Linear(c.meta_fc2_neurons, 1),
        )

    def metadata_module(self) -> nn.Module:
        return self.network

    def forward_btsbot(self, metadata: torch.Tensor) -> torch.Tensor:
        return self.forward_features(metadata)


class ConvNeXtNet(Btsbot2Model):
    """btsbot ``ConvNeXt``: ConvNeXt-pico, its pool + LayerNorm, then a GELU head."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.convnext = convnext_pico()
        width = self.convnext.num_features
        self.convnext.head = nn.Sequential(
            GlobalAvgPool(flatten=False), LayerNorm2d(width), nn.Flatten(1),
            *_dense_head(width, config.fc1_neurons, config.fc2_neurons, config.dropout, nn.GELU))

    def forward_btsbot(self, image: torch.Tensor) -> torch.Tensor:
        return self.convnext(image)


class MmConvNeXt(_MultiInput):
    """btsbot ``mm_ConvNeXt``: ConvNeXt-pico features beside the metadata branch (GELU)."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.convnext_backbone = convnext_pico()
        width = self.convnext_backbone.num_features
        if "LS" in config.train_data_version:  # btsbot: larger Legacy Survey images keep pool + norm
            self.convnext_backbone.head = nn.Sequential(GlobalAvgPool(flatten=False), LayerNorm2d(width),
                                                        nn.Flatten(1))
        else:  # a 63-pixel cutout ends as (N, 512, 1, 1): flattened as is, no pool, no norm
            self.convnext_backbone.head = nn.Flatten(1)
        self.metadata_branch = _metadata_branch(config, nn.GELU)
        self.combined_head = nn.Sequential(*_dense_head(
            width + config.meta_fc2_neurons, config.comb_fc1_neurons, config.comb_fc2_neurons,
            config.comb_dropout, nn.GELU))

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.convnext_backbone(image)


class MaxViTNet(Btsbot2Model):
    """btsbot ``MaxViT``: MaxViT-tiny at 224 pixels (cutouts resized inside), then a GELU head."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.image_size = config.backbone_size
        self.maxvit = maxvit_tiny_rw(img_size=self.image_size)
        width = self.maxvit.num_features
        self.maxvit.head = nn.Sequential(
            GlobalAvgPool(flatten=True),
            *_dense_head(width, config.fc1_neurons, config.fc2_neurons, config.dropout, nn.GELU))

    def forward_btsbot(self, image: torch.Tensor) -> torch.Tensor:
        return self.maxvit(_resize(image, self.image_size))


class MmMaxViT(_MultiInput):
    """btsbot ``mm_MaxViT``: pooled MaxViT-tiny features beside the metadata branch (GELU)."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.image_size = config.backbone_size
        self.maxvit_backbone = maxvit_tiny_rw(img_size=self.image_size)
        width = self.maxvit_backbone.num_features
        self.maxvit_backbone.head = GlobalAvgPool(flatten=True)
        self.metadata_branch = _metadata_branch(config, nn.GELU)
        self.combined_head = nn.Sequential(*_dense_head(
            width + config.meta_fc2_neurons, config.comb_fc1_neurons, config.comb_fc2_neurons,
            config.comb_dropout, nn.GELU))

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.maxvit_backbone(_resize(image, self.image_size))


def strip_head(model: Btsbot2Model) -> int:
    """Cut a trained single-input model down to its embedding, as btsbot's frozen_fusion does.

    Returns the embedding width. ``um_nn`` loses its last ReLU and output layer (the embedding is
    the second layer's pre-activation); ConvNeXt keeps pool + norm + flatten; MaxViT keeps the
    pool; ``um_cnn`` keeps the flattened conv features.
    """
    if isinstance(model, UmNn):
        model.network = nn.Sequential(*list(model.network.children())[:-2])
        return model.network[-1].out_features
    if isinstance(model, MaxViTNet):
        width = model.maxvit.head[1].in_features
        model.maxvit.head = nn.Sequential(model.maxvit.head[0])
        return width
    if isinstance(model, ConvNeXtNet):
        model.convnext.head = nn.Sequential(*list(model.convnext.head.children())[:3])
        return model.convnext.head[1].normalized_shape[0]
    if isinstance(model, UmCnn):
        width = model.head[0].in_features
        model.head = nn.Identity()
        return width
    raise TypeError(f"{type(model).__name__} cannot be a frozen_fusion branch")


class FrozenFusion(Btsbot2Model):
    """btsbot ``frozen_fusion``: a trained image model and a trained ``um_nn``, heads removed,
    their embeddings concatenated into a small ReLU head (the only part trained last)."""

    def __init__(self, config: Btsbot2Config) -> None:
        super().__init__(config)
        self.image_branch = build_network(config.image_model)
        img_width = strip_head(self.image_branch)
        self.meta_branch = build_network(config.meta_model)
        meta_width = strip_head(self.meta_branch)
        self.combined_head = nn.Sequential(*_dense_head(
            img_width + meta_width, config.comb_fc1_neurons, config.comb_fc2_neurons,
            config.comb_dropout, nn.ReLU))

    def forward_btsbot(self, image: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        joint = torch.cat((self.image_branch.forward_btsbot(image),
                           self.meta_branch.forward_features(metadata)), dim=1)
        return self.combined_head(joint)

    def metadata_module(self) -> nn.Module:
        return self.meta_branch.metadata_module()

    def branches(self) -> tuple[nn.Module, nn.Module]:
        """The two pre-trained branches (frozen when the head is trained)."""
        return self.image_branch, self.meta_branch


_CLASSES: dict[str, type[Btsbot2Model]] = {
    "um_cnn": UmCnn, "mm_cnn": MmCnn, "um_nn": UmNn, "ConvNeXt": ConvNeXtNet,
    "mm_ConvNeXt": MmConvNeXt, "MaxViT": MaxViTNet, "mm_MaxViT": MmMaxViT,
    "frozen_fusion": FrozenFusion,
}


def build_network(config: Btsbot2Config) -> Btsbot2Model:
    """The network of a config (weights not yet drawn: call ``reset_parameters``)."""
    return _CLASSES[config.model_name](config)
