"""ConvNeXt (Liu et al. 2022) as ``timm`` builds it with ``conv_mlp=True`` (the pico/nano sizes).

Module names follow timm's ``ConvNeXt`` (``stem.0``, ``stages.<i>.downsample.<j>``,
``stages.<i>.blocks.<k>.conv_dw`` / ``norm`` / ``mlp.fc1`` / ``mlp.fc2`` / ``gamma``), so timm's
weights load with ``strict=True``. The classifier head is left to the caller (``self.head``,
``nn.Identity`` until set): BTSbot 2 replaces timm's head with its own.

Shapes for a 63 x 63 cutout (NCHW): stem 4x4/4 -> 15 x 15, then each stage after the first halves
the side (floor): 7, 3, 1. So the last feature map of a 63-pixel input is ``(N, 512, 1, 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from brightscan.model.backbones.layers import ConvMlp, LayerNorm2d, init_backbone

__all__ = ["ConvNeXtBackbone", "convnext_pico"]


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 -> LayerNorm2d -> 1x1 MLP (x4) -> layer scale, plus the identity."""

    def __init__(self, channels: int, kernel_size: int = 7, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                                 groups=channels)
        self.norm = LayerNorm2d(channels)
        self.mlp = ConvMlp(channels, mlp_ratio * channels)
        self.gamma = nn.Parameter(torch.full((channels,), 1e-6))  # timm's layer-scale init
        self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x)))
        return y * self.gamma.reshape(1, -1, 1, 1) + self.shortcut(x)


class ConvNeXtStage(nn.Module):
    """Optional downsampling (LayerNorm2d then 2x2/2 conv) and ``depth`` blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, stride: int) -> None:
        super().__init__()
        if stride > 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(LayerNorm2d(in_chs),
                                            nn.Conv2d(in_chs, out_chs, stride, stride=stride))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*(ConvNeXtBlock(out_chs) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXtBackbone(nn.Module):
    """ConvNeXt trunk: patch stem, four stages, then ``head`` (set by the caller).

    Parameters
    ----------
    depths : tuple of int
        Blocks per stage.
    dims : tuple of int
        Channels per stage.
    in_chans : int
        Input channels (3: science, reference, difference).
    """

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        widths = (dims[0], *dims)
        self.stages = nn.Sequential(*(
            ConvNeXtStage(widths[i], widths[i + 1], depth, stride=1 if i == 0 else 2)
            for i, depth in enumerate(depths)
        ))
        self.norm_pre = nn.Identity()
        self.num_features = dims[-1]  # channels of the last feature map (timm's head.in_features)
        self.head: nn.Module = nn.Identity()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the trunk's weights from ``generator`` (the caller's ``head`` is left alone)."""
        init_backbone(self.stem, generator)
        init_backbone(self.stages, generator)
        for module in self.modules():
            if isinstance(module, ConvNeXtBlock):
                nn.init.constant_(module.gamma, 1e-6)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> last feature map ``(N, num_features, H/32, W/32)`` (floors)."""
        return self.norm_pre(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def convnext_pico(in_chans: int = 3) -> ConvNeXtBackbone:
    """timm's ``convnext_pico``: depths (2, 2, 6, 2), dims (64, 128, 256, 512), 9.1M parameters."""
    return ConvNeXtBackbone((2, 2, 6, 2), (64, 128, 256, 512), in_chans=in_chans)
