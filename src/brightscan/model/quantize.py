"""int8 models: ONNX Runtime static quantization of the convolutions, calibrated on training alerts.

The image branch (four convolutions, almost all the arithmetic) is quantized — weights int8 per
output channel, activations uint8 with ranges calibrated on real inputs, the U8S8 scheme that
VNNI and AMX-INT8 CPUs run natively — and the feature branch and head stay float32, for the same
reason the bf16 path keeps them so: raw features (``ra`` in the hundreds of degrees) would lose
too much. The result is ``MODEL/model.int8.onnx``, stamped like ``model.onnx`` with the weights it
came from plus how it was calibrated; ``Scorer(..., precision="int8")`` runs it.

Whether int8 may be the default on a CPU is decided by its effect on decisions, not on scores:
see :mod:`brightscan.evaluate.precision`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.errors import ConfigError
from brightscan.model.onnx_export import ONNX_NAME, export_onnx, onnx_metadata
from brightscan.model.io import read_card

__all__ = ["INT8_NAME", "quantize_int8"]

INT8_NAME = "model.int8.onnx"


class _Calibration:
    """ONNX Runtime's ``CalibrationDataReader``: the calibration alerts in model batches."""

    def __init__(self, names: list[str], triplets: np.ndarray | None, features: np.ndarray | None,
                 batch_size: int) -> None:
        arrays = {"triplet": triplets, "features": features}
        n = len(triplets if triplets is not None else features)
        self._batches = iter([
            {name: np.ascontiguousarray(arrays[name][i:i + batch_size], np.float32) for name in names}
            for i in range(0, n, batch_size)
        ])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_int8(model_dir: str | Path, triplets: np.ndarray | None, features: np.ndarray | None, *,
                  description: str = "", batch_size: int = 32) -> Path:
    """Write ``model_dir/model.int8.onnx``, calibrated on the given (training) alerts.

    Parameters
    ----------
    model_dir : path
        A model directory; ``model.onnx`` is exported first when absent.
    triplets, features : ndarray
        ``(n, 63, 63, 3)`` and ``(n, F)`` float32 calibration inputs — training alerts, a few
        hundred suffice (the ranges of four layers' activations are calibrated).
    description : str
        Where the calibration alerts came from (stored in the model's metadata).

    Raises
    ------
    ConfigError
        Without calibration alerts.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_dir = Path(model_dir)
    n = len(triplets if triplets is not None else features if features is not None else [])
    if n == 0:
        raise ConfigError("int8 quantization needs calibration alerts")
    source = model_dir / ONNX_NAME
    if not source.is_file():
        export_onnx(model_dir)
    names = [i.name for i in onnx.load(str(source)).graph.input]
    out = model_dir / INT8_NAME
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), _Calibration(names, triplets, features, batch_size),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"], per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    _stamp(out, read_card(model_dir), {"precision": "int8", "calibration_alerts": str(n),
                                       "calibration": description})
    return out


def _stamp(path: Path, card: dict[str, Any], extra: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in {**onnx_metadata(card), **extra}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "brightscan"
    onnx.save(proto, str(path))
