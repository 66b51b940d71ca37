"""Registered BTSbot 2 presets: ``<architecture>.btsbot2``, one per btsbot 2 class.

The backbones are the ones the published models use (``convnext_pico.d1_in1k``,
``maxvit_tiny_rw_224.sw_in1k``: the timm ids btsbot records as ``model_kind``; weights are only
fetched when a user asks, see ``brightscan train --init-weights``). The head widths are
brightscan's choice for training from scratch; an imported model keeps the numbers of its own
``train_config.json``.
"""

from __future__ import annotations

from collections.abc import Callable

from brightscan.model.btsbot2.config import Btsbot2Config

__all__ = ["BTSBOT2_PRESETS"]

CONVNEXT_KIND = "convnext_pico.d1_in1k"
MAXVIT_KIND = "maxvit_tiny_rw_224.sw_in1k"


def _make(preset: str, model_name: str, **fields) -> Callable[[], Btsbot2Config]:
    return lambda: Btsbot2Config(preset=preset, model_name=model_name, **fields)


def _fusion(preset: str, image: Btsbot2Config) -> Callable[[], Btsbot2Config]:
    meta = Btsbot2Config(preset="um_nn.btsbot2", model_name="um_nn")
    return lambda: Btsbot2Config(preset=preset, model_name="frozen_fusion", model_kind=image.model_kind,
                                 image_model=image, meta_model=meta,
                                 comb_fc1_neurons=64, comb_fc2_neurons=16)


_CONVNEXT = Btsbot2Config(preset="convnext_pico.btsbot2", model_name="ConvNeXt", model_kind=CONVNEXT_KIND)
_MAXVIT = Btsbot2Config(preset="maxvit_tiny.btsbot2", model_name="MaxViT", model_kind=MAXVIT_KIND)

#: Preset id -> zero-argument config factory (registered by :mod:`brightscan.model.registry`).
BTSBOT2_PRESETS: dict[str, Callable[[], Btsbot2Config]] = {
    "mm_cnn.btsbot2": _make("mm_cnn.btsbot2", "mm_cnn"),
    "um_cnn.btsbot2": _make("um_cnn.btsbot2", "um_cnn"),
    "um_nn.btsbot2": _make("um_nn.btsbot2", "um_nn"),
    "convnext_pico.btsbot2": lambda: _CONVNEXT,
    "mm_convnext_pico.btsbot2": _make("mm_convnext_pico.btsbot2", "mm_ConvNeXt", model_kind=CONVNEXT_KIND),
    "maxvit_tiny.btsbot2": lambda: _MAXVIT,
    "mm_maxvit_tiny.btsbot2": _make("mm_maxvit_tiny.btsbot2", "mm_MaxViT", model_kind=MAXVIT_KIND),
    "frozen_fusion_convnext_pico.btsbot2": _fusion("frozen_fusion_convnext_pico.btsbot2", _CONVNEXT),
    "frozen_fusion_maxvit_tiny.btsbot2": _fusion("frozen_fusion_maxvit_tiny.btsbot2", _MAXVIT),
}
