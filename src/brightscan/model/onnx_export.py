"""Export a model directory to ONNX (``DIR/model.onnx``) and run it with ONNX Runtime.

The ONNX graph takes the same inputs as the torch model — ``triplet`` ``(N, 63, 63, 3)``
channels-last and ``features`` ``(N, F)``, float32, only those the model uses — and outputs
``logit`` ``(N,)``. The score's temperature is applied by the scorer from ``model.json``, so a
later :func:`~brightscan.model.io.set_temperature` needs no re-export. The ONNX metadata carries
the model id and version, the feature set and order, the preprocessing version and the sha256 of
the weights it was exported from, which :func:`open_onnx_session` checks against the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brightscan.errors import ModelFileError
from brightscan.model.io import load_model, read_card

__all__ = ["ONNX_NAME", "OPSET", "export_onnx", "open_onnx_session", "onnx_metadata"]

ONNX_NAME = "model.onnx"
OPSET = 17


class _OnnxWrapper(nn.Module):
    """Exposes only the inputs the model uses, so the ONNX graph has no dangling input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.uses_image = model.config.uses_image
        self.uses_features = model.config.uses_features

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        triplet = next(it) if self.uses_image else None
        features = next(it) if self.uses_features else None
        return self.model(triplet, features)


def export_onnx(model_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write ``model.onnx`` for a model directory.

    Parameters
    ----------
    model_dir : str or Path
        A model directory (see :func:`~brightscan.model.io.save_model`).
    out : str or Path, optional
        Output file; default ``model_dir/model.onnx``.

    Returns
    -------
    Path
        The ONNX file.
    """
    import onnx

    loaded = load_model(model_dir, device="cpu")
    config = loaded.config
    wrapper = _OnnxWrapper(loaded.model).eval()
    names, example, axes = [], [], {"logit": {0: "batch"}}
    if config.uses_image:
        names.append("triplet")
        example.append(torch.zeros(2, config.image_size, config.image_size, config.image_channels))
    if config.uses_features:
        names.append("features")
        example.append(torch.zeros(2, config.n_features))
    axes.update({name: {0: "batch"} for name in names})
    out = Path(out) if out is not None else Path(model_dir) / ONNX_NAME
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(example), str(out), input_names=names,
                          output_names=["logit"], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    proto = onnx.load(str(out))
    for key, value in onnx_metadata(loaded.card).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "brightscan"
    onnx.save(proto, str(out))
    return out


def onnx_metadata(card: dict[str, Any]) -> dict[str, str]:
    """The metadata props stored in ``model.onnx`` (all strings)."""
    return {
        "model_id": card["model_id"],
        "model_version": str(card["model_version"]),
        "feature_set": card["features"]["set"],
        "feature_order": json.dumps(card["features"]["order"]),
        "preprocessing_version": str(card.get("preprocessing_version")),
        "weights_sha256": card["weights"]["sha256"],
        "output": "logit; score = sigmoid(logit / temperature), temperature in model.json",
    }


def open_onnx_session(model_dir: str | Path, *, num_threads: int | None = None, name: str = ONNX_NAME) -> Any:
    """An ONNX Runtime session for ``model_dir/model.onnx`` (or ``name``, e.g. the int8 model),
    checked against ``model.json``.

    Raises
    ------
    ModelFileError
        When ``model.onnx`` is missing or was exported from other weights or another contract.
    """
    import onnxruntime as ort

    model_dir = Path(model_dir)
    path = model_dir / name
    if not path.is_file():
        how = "export-onnx" if name == ONNX_NAME else "quantize"
        raise ModelFileError(
            f"{path} not found; run `brightscan model {how} {model_dir}` first"
        )
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise ModelFileError(f"ONNX Runtime cannot open {path}: {exc}") from None
    stored = session.get_modelmeta().custom_metadata_map
    expected = onnx_metadata(read_card(model_dir))
    stale = [k for k in ("model_id", "feature_order", "preprocessing_version", "weights_sha256")
             if stored.get(k) != expected[k]]
    if stale:
        raise ModelFileError(
            f"{path} does not match {model_dir / 'model.json'} ({', '.join(stale)} differ); "
            f"re-export it with `brightscan model {'export-onnx' if name == ONNX_NAME else 'quantize'}`"
        )
    return session
