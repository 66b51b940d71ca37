"""BTSbot 2 (btsbot 2.x on PyPI): ConvNeXt, MaxViT, the custom CNN and frozen fusion.

``presets.py`` lists the registered ids; ``networks.py`` holds the modules with btsbot's structure
(a btsbot state dict loads with ``strict=True``); ``config.py`` the typed config with btsbot's
``train_config.json`` keys.
"""

from __future__ import annotations

from brightscan.model.btsbot2.config import ARCHITECTURES, Btsbot2Config, feature_set_of
from brightscan.model.btsbot2.networks import Btsbot2Model, build_network, strip_head
from brightscan.model.btsbot2.presets import BTSBOT2_PRESETS

__all__ = ["ARCHITECTURES", "BTSBOT2_PRESETS", "Btsbot2Config", "Btsbot2Model", "build_network",
           "feature_set_of", "strip_head"]
