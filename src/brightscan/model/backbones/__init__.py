"""Image backbones written in brightscan with ``timm``'s module structure and parameter names.

``timm`` imports ``torchvision`` at import time, and PyPI's torchvision wheels do not load beside
the CPU build of torch these machines use (``operator torchvision::nms does not exist``). So the
two backbones BTSbot 2 uses (ConvNeXt-pico, MaxViT-tiny-rw) are written here, module for module,
so that a ``timm`` state dict (a BTSbot 2 checkpoint, or a timm / Hugging Face pre-trained
backbone) loads into them with ``strict=True``; ``tests/model/test_btsbot2_parity.py`` checks
them against timm and btsbot 2.0.7 themselves. Users with or without timm get the same model.
"""

from __future__ import annotations

from brightscan.model.backbones.convnext import ConvNeXtBackbone, convnext_pico
from brightscan.model.backbones.maxvit import MaxViTBackbone, maxvit_tiny_rw

__all__ = ["ConvNeXtBackbone", "MaxViTBackbone", "convnext_pico", "maxvit_tiny_rw"]
