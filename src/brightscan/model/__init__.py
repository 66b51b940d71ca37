"""The multi-input CNN: presets, model files, Keras import and ONNX export (scoring: brightscan.score).

Typical use::

    from brightscan.model import create_model, list_presets, load_model

    model = create_model("mi_cnn.icml2023", seed=0)        # fresh weights
    loaded = load_model("models/btsbot-v1.0.1")            # a saved model directory

Optional heavy pieces (ONNX export and the ONNX Runtime backend) import their dependencies
only when used.
"""

from __future__ import annotations

from brightscan.model.config import BRANCH_MODES, ModelConfig
from brightscan.model.io import (LoadedModel, load_model, read_card, save_model, set_temperature, write_calibrated,
                                 write_operating_point)
from brightscan.model.keras_import import import_keras
from brightscan.model.mi_cnn import MultiInputCNN
from brightscan.model.onnx_export import export_onnx
from brightscan.model.registry import create_model, get_config, list_presets, register_preset

__all__ = [
    "BRANCH_MODES",
    "LoadedModel",
    "ModelConfig",
    "MultiInputCNN",
    "create_model",
    "export_onnx",
    "get_config",
    "import_keras",
    "list_presets",
    "load_model",
    "read_card",
    "register_preset",
    "save_model",
    "set_temperature",
    "write_calibrated",
    "write_operating_point",
]
