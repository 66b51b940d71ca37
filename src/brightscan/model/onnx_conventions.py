"""ONNX export in the BTSbot conventions the brokers load (BOOM's ``BtsBotModel``).

=============  ==========================================  ====================  =========
convention     inputs                                      output                value
=============  ==========================================  ====================  =========
``btsbot-v2``  ``image`` (N, 3, 63, 63) channels first,    ``logits`` (N, 1)     logit
               ``metadata`` (N, F)
``btsbot-v1``  ``triplet`` (N, 63, 63, 3) channels last,   ``fc_out`` (N, 1)     sigmoid
               ``metadata`` (N, F)
=============  ==========================================  ====================  =========

Channels are (science, reference, difference) in both; a model that uses one input only has that
input only (as btsbot's own ``to_onnx``). The file's metadata properties carry the model id and
version, the input feature names in order, the preprocessing version, the calibration temperature
(v2: the loader divides the logit by it; v1: already applied inside, before the sigmoid) and the
SHA-256 of the weights exported, and the architecture's config (what ``brightscan model import``
reads back, see :mod:`brightscan.model.onnx_import`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from brightscan.errors import ConfigError
from brightscan.model.io import load_model

__all__ = ["CONVENTIONS", "export_btsbot_onnx"]

CONVENTIONS = ("btsbot-v2", "btsbot-v1")


class _BtsbotV2(nn.Module):
    """``(image NCHW, metadata)`` -> ``(N, 1)`` logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        image = next(it).permute(0, 2, 3, 1) if self.config.uses_image else None  # to brightscan's NHWC
        metadata = next(it) if self.config.uses_features else None
        return self.model(image, metadata).unsqueeze(1)


class _BtsbotV1(nn.Module):
    """``(triplet NHWC, metadata)`` -> ``(N, 1)`` calibrated sigmoid scores."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.config, self.temperature = model, model.config, temperature

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        triplet = next(it) if self.config.uses_image else None
        metadata = next(it) if self.config.uses_features else None
        return torch.sigmoid(self.model(triplet, metadata) / self.temperature).unsqueeze(1)


def export_btsbot_onnx(model_dir: str | Path, convention: str, *, out: str | Path | None = None) -> Path:
    """Write ``model_dir/model.<convention>.onnx`` (or ``out``) in a BTSbot broker convention.

    Raises
    ------
    ConfigError
        On an unknown convention.
    """
    import onnx

    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown ONNX convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    loaded = load_model(model_dir, device="cpu")
    config = loaded.config
    side, channels = config.image_size, config.image_channels
    v2 = convention == "btsbot-v2"
    wrapper = (_BtsbotV2(loaded.model) if v2 else _BtsbotV1(loaded.model, loaded.temperature)).eval()
    names, example = [], []
    if config.uses_image:
        names.append("image" if v2 else "triplet")
        example.append(torch.zeros(2, channels, side, side) if v2 else torch.zeros(2, side, side, channels))
    if config.uses_features:
        names.append("metadata")
        example.append(torch.zeros(2, config.n_features))
    output = "logits" if v2 else "fc_out"
    axes = {name: {0: "batch"} for name in (*names, output)}
    out = Path(out) if out is not None else Path(model_dir) / f"model.{convention}.onnx"
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(example), str(out), input_names=names, output_names=[output],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    proto = onnx.load(str(out))
    card = loaded.card
    props = {
        "convention": convention,
        "model_id": card["model_id"],
        "model_version": str(card["model_version"]),
        "metadata_columns": json.dumps(card["features"]["order"]),
        "image_channels": json.dumps(card["inputs"]["triplet"]["channels"]),
        "preprocessing_version": str(card.get("preprocessing_version")),
        "calibration_temperature": repr(loaded.temperature),
        "temperature_applied": "no: score = sigmoid(logits / temperature)" if v2 else "yes: fc_out is the score",
        "weights_sha256": card["weights"]["sha256"],
        # the architecture, so `brightscan model import` rebuilds this network without guessing
        "config": json.dumps(card["config"]),
    }
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "brightscan"
    onnx.save(proto, str(out))
    return out
