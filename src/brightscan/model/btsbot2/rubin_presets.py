"""BTSbot 2 architectures on Rubin alerts: ``mm_cnn`` and ``mm_ConvNeXt`` at Rubin's 48 px.

Rubin stamps are cropped or padded to :data:`~brightscan.preprocess.rubin.RUBIN_STAMP_SIZE`
(48 px of 0.2", docs/rubin.md) and described by the 17 ``rubin_v1`` features; these presets are
btsbot 2's own classes with that input contract (``image_size``, ``feature_set``, ``n_features``),
so the model card states what they were trained on and a ZTF alert is refused by them.

- ``mm_cnn.rubin``: btsbot 2's custom CNN (two blocks of two 5x5 convolutions, 32 and 64 filters)
  beside its metadata branch; at 48 px the image branch ends at 6x6x64 = 2,304 values (63 px:
  7x7x64). The Rubin demo trains it.
- ``mm_cnn.rubin_tiny``: the same layers, narrow (8 and 16 filters of 3x3, 32-wide dense layers):
  trains in seconds a batch on a CPU, for the tests and ``brightscan demo --survey rubin --size tiny``.
- ``mm_convnext_pico.rubin``: ConvNeXt-pico (stride 32 in all) beside the metadata branch; at 48 px
  its last stage sees 1x1 (63 px: 1x1 too), so nothing is lost against ZTF's size.
"""

from __future__ import annotations

from collections.abc import Callable

from brightscan.model.btsbot2.config import Btsbot2Config
from brightscan.model.btsbot2.presets import CONVNEXT_KIND

__all__ = ["RUBIN_BTSBOT2_PRESETS"]

_RUBIN_INPUTS = {"image_size": 48, "feature_set": "rubin_v1", "n_features": 17}


def _rubin(preset: str, model_name: str, **fields) -> Callable[[], Btsbot2Config]:
    return lambda: Btsbot2Config(preset=preset, model_name=model_name, **_RUBIN_INPUTS, **fields)


#: Preset id -> zero-argument config factory (registered by :mod:`brightscan.model.registry`).
RUBIN_BTSBOT2_PRESETS: dict[str, Callable[[], Btsbot2Config]] = {
    "mm_cnn.rubin": _rubin("mm_cnn.rubin", "mm_cnn"),
    "mm_cnn.rubin_tiny": _rubin("mm_cnn.rubin_tiny", "mm_cnn", conv1_channels=8, conv2_channels=16, conv_kernel=3,
                                meta_fc1_neurons=32, meta_fc2_neurons=32, comb_fc1_neurons=32, comb_fc2_neurons=16),
    "mm_convnext_pico.rubin": _rubin("mm_convnext_pico.rubin", "mm_ConvNeXt", model_kind=CONVNEXT_KIND),
}
