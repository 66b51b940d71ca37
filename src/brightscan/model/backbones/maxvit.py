"""MaxViT (Tu et al. 2022) in ``timm``'s "rw" variant (``maxvit_tiny_rw_224``), as BTSbot 2 uses it.

Each block is an MBConv (pre-norm, 1x1 expand from the *input* width, depthwise 3x3 carrying the
stride, squeeze-excite, 1x1 project; SiLU; no biases in the convs) followed by window ("block")
attention and dilated grid attention, each with a 4x MLP, channels last. Module and parameter
names follow timm's ``MaxxVit`` (``stem.conv1``, ``stages.<i>.blocks.<k>.conv.conv2_kxk``,
``...attn_block.attn.rel_pos.relative_position_bias_table``, ``norm``), so timm's weights load
with ``strict=True``. The classifier head is left to the caller (``self.head``).

The partition (window and grid) size is ``img_size // 32`` = 7 at 224 pixels, so the input must
be ``img_size`` pixels: BTSbot 2 resizes the 63-pixel cutouts to 224 before the backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brightscan.model.backbones.layers import BatchNormAct2d, LayerNorm2d, Mlp, SqueezeExcite, init_backbone

__all__ = ["MaxViTBackbone", "maxvit_tiny_rw"]


class Stem(nn.Module):
    """3x3/2 conv -> BatchNorm + SiLU -> 3x3 conv (no biases)."""

    def __init__(self, in_chs: int, widths: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, widths[0], 3, stride=2, padding=1, bias=False)
        self.norm1 = BatchNormAct2d(widths[0], act=nn.SiLU())
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.norm1(self.conv1(x)))


class Downsample2d(nn.Module):
    """2x2/2 average pool, then a 1x1 conv (no bias) when the width changes: the strided shortcut."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2, stride=2)
        self.expand = nn.Conv2d(in_chs, out_chs, 1, bias=False) if in_chs != out_chs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.pool(x))


class MbConvBlock(nn.Module):
    """Pre-norm inverted bottleneck with squeeze-excite; the stride sits in the depthwise conv."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        mid = 4 * in_chs  # rw variant: expansion from the input width (a multiple of 8 here)
        self.shortcut = Downsample2d(in_chs, out_chs) if stride == 2 else nn.Identity()
        self.pre_norm = BatchNormAct2d(in_chs, act=None)
        self.down = nn.Identity()
        self.conv1_1x1 = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.norm1 = BatchNormAct2d(mid, act=nn.SiLU())
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.norm2 = BatchNormAct2d(mid, act=nn.SiLU())
        self.se = SqueezeExcite(mid, mid // 16)
        self.conv3_1x1 = nn.Conv2d(mid, out_chs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.conv1_1x1(self.down(self.pre_norm(x)))
        x = self.se(self.norm2(self.conv2_kxk(self.norm1(x))))
        return self.conv3_1x1(x) + shortcut


def _relative_position_index(size: int) -> torch.Tensor:
    """Index into the bias table for every (query, key) pair of a ``size`` x ``size`` window."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)  # (A, A, 2), >= 0
    return (rel[:, :, 0] * (2 * size - 1) + rel[:, :, 1]).reshape(-1)


class RelPosBias(nn.Module):
    """A learned bias per head for each relative offset inside a window."""

    def __init__(self, window: int, num_heads: int) -> None:
        super().__init__()
        self.area = window * window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)

    def get_bias(self) -> torch.Tensor:
        """``(1, heads, area, area)``."""
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.view(self.area, self.area, -1).permute(2, 0, 1).unsqueeze(0)


class AttentionCl(nn.Module):
    """Multi-head self-attention over ``(B, ..., C)`` tokens with a relative position bias."""

    def __init__(self, dim: int, window: int, dim_head: int = 32) -> None:
        super().__init__()
        self.num_heads, self.dim_head = dim // dim_head, dim_head
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rel_pos = RelPosBias(window, self.num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, shape = x.shape[0], x.shape[:-1]
        # heads first in the qkv channels: (B, T, heads, 3 * dim_head) -> three (B, heads, T, dh)
        q, k, v = (self.qkv(x).view(batch, -1, self.num_heads, 3 * self.dim_head)
                   .transpose(1, 2).chunk(3, dim=3))
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=self.rel_pos.get_bias())
        return self.proj(x.transpose(1, 2).reshape(*shape, -1))


def _partition(x: torch.Tensor, size: int, grid: bool) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B * windows, size, size, C)``: contiguous windows, or a strided grid."""
    b, h, w, c = x.shape
    if grid:
        x = x.view(b, size, h // size, size, w // size, c).permute(0, 2, 4, 1, 3, 5)
    else:
        x = x.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c)


def _reverse(windows: torch.Tensor, size: int, hw: tuple[int, int], grid: bool) -> torch.Tensor:
    """Inverse of :func:`_partition`."""
    h, w = hw
    c = windows.shape[-1]
    x = windows.view(-1, h // size, w // size, size, size, c)
    x = x.permute(0, 3, 1, 4, 2, 5) if grid else x.permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class PartitionAttentionCl(nn.Module):
    """Pre-norm attention within windows (or grid cells) and a pre-norm MLP, channels last."""

    def __init__(self, dim: int, window: int, grid: bool) -> None:
        super().__init__()
        self.window, self.grid = window, grid
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = AttentionCl(dim, window)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.shape[1], x.shape[2])
        parts = self.attn(_partition(self.norm1(x), self.window, self.grid))
        x = x + _reverse(parts, self.window, hw, self.grid)
        return x + self.mlp(self.norm2(x))


class MaxxVitBlock(nn.Module):
    """MBConv, then window attention, then grid attention."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, window: int) -> None:
        super().__init__()
        self.conv = MbConvBlock(in_chs, out_chs, stride)
        self.attn_block = PartitionAttentionCl(out_chs, window, grid=False)
        self.attn_grid = PartitionAttentionCl(out_chs, window, grid=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).permute(0, 2, 3, 1)  # (N, H, W, C) for the attention
        return self.attn_grid(self.attn_block(x)).permute(0, 3, 1, 2)


class MaxViTStage(nn.Module):
    """``depth`` MaxViT blocks, the first halving the side."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, window: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(
            MaxxVitBlock(in_chs if i == 0 else out_chs, out_chs, 2 if i == 0 else 1, window)
            for i in range(depth)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class MaxViTBackbone(nn.Module):
    """MaxViT trunk: stem, four stages, final LayerNorm2d, then ``head`` (set by the caller).

    Parameters
    ----------
    depths, dims : tuple of int
        Blocks and channels per stage.
    stem_widths : tuple of int
        Channels of the two stem convolutions.
    img_size : int
        Input side in pixels; fixes the window size ``img_size // 32``.
    """

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], stem_widths: tuple[int, int],
                 img_size: int = 224, in_chans: int = 3) -> None:
        super().__init__()
        self.img_size = img_size
        window = img_size // 32
        self.stem = Stem(in_chans, stem_widths)
        widths = (stem_widths[-1], *dims)
        self.stages = nn.Sequential(*(
            MaxViTStage(widths[i], widths[i + 1], depth, window) for i, depth in enumerate(depths)
        ))
        self.norm = LayerNorm2d(dims[-1])
        self.num_features = dims[-1]
        self.head: nn.Module = nn.Identity()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the trunk's weights and relative position biases from ``generator`` (not ``head``)."""
        for part in (self.stem, self.stages, self.norm):
            init_backbone(part, generator)
        for module in self.modules():
            if isinstance(module, RelPosBias):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02, a=-0.04, b=0.04,
                                      generator=generator)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, img_size, img_size)`` -> ``(N, num_features, img_size/32, img_size/32)``."""
        return self.norm(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def maxvit_tiny_rw(img_size: int = 224, in_chans: int = 3) -> MaxViTBackbone:
    """timm's ``maxvit_tiny_rw_224``: depths (2, 2, 5, 2), dims (64, 128, 256, 512), stem (32, 64)."""
    return MaxViTBackbone((2, 2, 5, 2), (64, 128, 256, 512), (32, 64), img_size=img_size, in_chans=in_chans)
