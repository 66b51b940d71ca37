"""``brightscan model import SRC``: one entry point for every model format brightscan reads.

- a Keras SavedModel directory (the published BTSbot v03 / v1.0.1): :func:`~brightscan.model.
  keras_import.import_keras`;
- a btsbot 2 model directory, as on the Hugging Face Hub: ``train_config.json`` beside
  ``pytorch_model.bin`` (a state dict, read with ``torch.load(weights_only=True)``: no pickled
  code runs) or ``model.safetensors``;
- an ONNX file in a BTSbot broker convention (``btsbot-v2``: ``image`` + ``metadata`` ->
  ``logits``; ``btsbot-v1``: ``triplet`` + ``metadata`` -> ``fc_out``): converted back into the
  registered architecture it holds, see :mod:`brightscan.model.onnx_import`.

Anything else is refused with a :class:`~brightscan.errors.ModelFileError` that says what was
found and what is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError, ModelFileError

__all__ = ["import_model", "import_btsbot2", "detect_format"]

_BTSBOT2_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_ACCEPTED = ("a Keras SavedModel directory (keras_metadata.pb, variables/), a btsbot 2 model "
             "directory (train_config.json with pytorch_model.bin or model.safetensors), or an ONNX file "
             "in a BTSbot convention (btsbot-v2: image, metadata -> logits; btsbot-v1: triplet, "
             "metadata -> fc_out)")


def detect_format(src: Path) -> str:
    """``"keras"``, ``"btsbot2"`` or ``"onnx"``; :class:`ModelFileError` naming what is accepted otherwise."""
    if src.is_dir():
        if (src / "train_config.json").is_file() and any((src / w).is_file() for w in _BTSBOT2_WEIGHTS):
            return "btsbot2"
        if (src / "keras_metadata.pb").is_file() or (src / "saved_model.pb").is_file():
            return "keras"
    if src.suffix == ".onnx" and src.is_file():
        return "onnx"
    raise ModelFileError(f"{src} is not a model brightscan can import; it takes {_ACCEPTED}")


def import_model(src: str | Path, out: str | Path, *, model_version: str | None = None,
                 overwrite: bool = False) -> Path:
    """Import ``src`` (any accepted format) into the model directory ``out``.

    Returns
    -------
    Path
        ``out``, a directory :func:`~brightscan.model.io.load_model` reads.
    """
    src = Path(src)
    kind = detect_format(src)
    if kind == "keras":
        from brightscan.model.keras_import import import_keras

        return import_keras(src, out, model_version=model_version, overwrite=overwrite)
    if kind == "onnx":
        from brightscan.model.onnx_import import import_onnx

        return import_onnx(src, out, model_version=model_version, overwrite=overwrite)
    return import_btsbot2(src, out, model_version=model_version, overwrite=overwrite)


def _read_train_config(src: Path) -> dict[str, Any]:
    path = src / "train_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} holds no JSON object")
    return data


def _read_state(src: Path) -> tuple[dict[str, Any], Path]:
    import torch

    safetensors_path, bin_path = src / "model.safetensors", src / "pytorch_model.bin"
    try:
        if safetensors_path.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_path)), safetensors_path
        # weights_only: tensors and plain containers only; a file carrying code is refused.
        state = torch.load(bin_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many untyped errors for a bad file
        raise ModelFileError(f"cannot read the weights in {src}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{bin_path} is not a state dict (a mapping of names to tensors)")
    return state, bin_path


def import_btsbot2(src: str | Path, out: str | Path, *, model_version: str | None = None,
                   overwrite: bool = False) -> Path:
    """Import a btsbot 2 model directory (``train_config.json`` + weights).

    The network is rebuilt from the file's own architecture keys and the state dict must match
    it exactly (``strict=True``; a ``module.`` prefix from DataParallel is removed, as btsbot does).

    Raises
    ------
    ModelFileError
        Unreadable config or weights, an architecture brightscan does not implement, or weights
        that do not fit the network.
    """
    from brightscan.model.btsbot2.train_config import from_train_config
    from brightscan.model.io import save_model, sha256_file
    from brightscan.model.registry import build_model

    src = Path(src)
    try:
        config = from_train_config(_read_train_config(src))
    except ConfigError as exc:
        raise ModelFileError(f"{src / 'train_config.json'}: {exc}") from None
    state, weights_path = _read_state(src)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{weights_path} does not fit a btsbot {config.model_name}: {exc}") from None
    provenance = {"imported_from": str(src), "format": "btsbot2",
                  "source_weights_sha256": sha256_file(weights_path)}
    return save_model(model.eval(), out, model_version=model_version or src.name,
                      provenance=provenance, overwrite=overwrite)
