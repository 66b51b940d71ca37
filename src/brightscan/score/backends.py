"""Inference backends behind one small interface: ``backend(triplets, features) -> logits``.

A backend is built from a loaded model, a precision and a thread count, and called with float32
arrays ``(n, 63, 63, 3)`` and ``(n, F)`` (either may be None for a single-branch model); it
returns ``(n,)`` logits. :data:`BACKENDS` maps each name to its constructor; a new engine
(TensorRT, OpenVINO, ...) is one class and one entry.
"""

from __future__ import annotations

import contextlib

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from brightscan.errors import ConfigError
from brightscan.model.io import LoadedModel

__all__ = ["BACKENDS", "PRECISIONS", "TORCH_PRECISIONS", "Backend", "OnnxBackend", "TorchBackend"]

#: Precisions of the torch backend (the dtype of the convolutions).
TORCH_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: Precisions of the onnx backend (the model file it runs).
ONNX_PRECISIONS = {"float32": "model.onnx", "int8": "model.int8.onnx"}
#: Every precision, and the backend that runs its reduced form (``auto`` chooses one per CPU,
#: see :mod:`brightscan.score.precision`).
PRECISIONS = {"float32": None, "bfloat16": "torch", "int8": "onnx"}


class Backend(Protocol):
    """What the scorer needs of an inference engine."""

    def __call__(self, triplets: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        """Logits ``(n,)`` for ``(n, 63, 63, 3)`` triplets and ``(n, F)`` features."""


class TorchBackend:
    """The torch model; ``bfloat16`` runs the convolutions in bf16 (fp32 accumulation) and the
    feature branch and head in fp32, because raw features (ra ~ 100s of degrees) lose too much in
    bf16."""

    #: On CPU, a batch is run in chunks of this many alerts: a 32-alert chunk's activations stay
    #: in L2, which makes oneDNN ~1.4x faster per alert than one 256-alert call (see
    #: docs/benchmarks-model.md). Results are identical; GPUs take the whole batch.
    cpu_chunk = 32

    def __init__(self, loaded: LoadedModel, precision: str, num_threads: int | None = None) -> None:
        if precision not in TORCH_PRECISIONS:
            raise ConfigError(f"the torch backend runs {', '.join(TORCH_PRECISIONS)}; {precision} runs on onnx")
        self.model = loaded.model
        self.device = next(self.model.parameters()).device
        dtype = TORCH_PRECISIONS[precision]
        # The multi-input CNN casts its convolutions; other networks (BTSbot 2's backbones, with
        # LayerNorms and attention) run under autocast instead, which keeps those in fp32.
        self.autocast = None
        if hasattr(self.model, "convs"):
            self.model.convs.to(dtype)
        elif dtype != torch.float32:
            self.autocast = (self.device.type, dtype)
        self.chunk = self.cpu_chunk if self.device.type == "cpu" else None

    def __call__(self, triplets: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        def tensor(array: np.ndarray | None) -> torch.Tensor | None:
            return None if array is None else torch.from_numpy(array).to(self.device)

        n = len(triplets if triplets is not None else features)
        step = self.chunk or n
        parts = []
        autocast = (torch.autocast(self.autocast[0], dtype=self.autocast[1]) if self.autocast
                     else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            for start in range(0, n, step):
                part = slice(start, start + step)
                parts.append(self.model(tensor(None if triplets is None else triplets[part]),
                                        tensor(None if features is None else features[part])))
        return torch.cat(parts).float().cpu().numpy()


class OnnxBackend:
    """``model.onnx`` (float32) or ``model.int8.onnx`` (int8, from ``brightscan model quantize``)
    through ONNX Runtime."""

    def __init__(self, loaded: LoadedModel, precision: str, num_threads: int | None = None) -> None:
        from brightscan.model.onnx_export import open_onnx_session

        if precision not in ONNX_PRECISIONS:
            raise ConfigError(f"the onnx backend runs {', '.join(ONNX_PRECISIONS)}; use --backend torch for bf16")
        self.session = open_onnx_session(loaded.path, num_threads=num_threads, name=ONNX_PRECISIONS[precision])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, triplets: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        feeds = {"triplet": triplets, "features": features}
        return self.session.run(["logit"], {name: feeds[name] for name in self.names})[0]


#: Backend name -> constructor ``(loaded, precision, num_threads) -> Backend``.
BACKENDS: dict[str, Callable[[LoadedModel, str, int | None], Backend]] = {
    "torch": TorchBackend,
    "onnx": OnnxBackend,
}
