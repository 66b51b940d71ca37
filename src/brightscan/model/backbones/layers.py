"""Small layers shared by the backbones, named as ``timm`` names them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerNorm2d", "BatchNormAct2d", "SqueezeExcite", "ConvMlp", "Mlp", "GlobalAvgPool",
           "init_backbone"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor (timm's default eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (N, H, W, C): normalise the last dimension
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by an optional activation (timm's ``BatchNormAct2d``: same state keys)."""

    def __init__(self, channels: int, *, act: nn.Module | None, eps: float = 1e-5) -> None:
        super().__init__(channels, eps=eps)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class SqueezeExcite(nn.Module):
    """Channel gate: mean over space -> 1x1 conv -> act -> 1x1 conv -> sigmoid (timm's SEModule)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ConvMlp(nn.Module):
    """1x1 conv -> GELU -> 1x1 conv on ``(N, C, H, W)`` (timm's ``Mlp(use_conv=True)``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear on the last dimension (timm's ``Mlp``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GlobalAvgPool(nn.Module):
    """Average over space: ``(N, C, H, W)`` -> ``(N, C, 1, 1)``, or ``(N, C)`` with ``flatten``.

    Stands where timm's ``SelectAdaptivePool2d('avg')`` stands (it has no parameters).
    """

    def __init__(self, flatten: bool) -> None:
        super().__init__()
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3), keepdim=not self.flatten)
        return x


def init_backbone(module: nn.Module, generator: torch.Generator | None) -> None:
    """Truncated-normal (std 0.02) weights and zero biases, as timm initialises these backbones.

    Norm layers keep weight 1 and bias 0; drawn from ``generator`` so a seed fixes the model.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(sub.weight, std=0.02, a=-0.04, b=0.04, generator=generator)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, (nn.LayerNorm, nn.BatchNorm2d)):
            sub.reset_parameters()
