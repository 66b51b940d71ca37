"""Scoring alerts with a saved model: arrays in, scores out; or alerts in, a score table out.

consume -> process -> produce: alerts come from any iterable (``read_alerts`` over files, a Kafka
consumer, a list in memory); each chunk is prepared by the one preparation pipeline
(:class:`brightscan.preprocess.pipeline.Pipeline`, exactly as ``brightscan preprocess`` does),
run through a backend (:mod:`brightscan.score.backends`) while the next chunks are prepared in a
background thread (:mod:`brightscan.score.batching`), and every score is stamped with the model
id and version.

Errors: an alert that cannot be used becomes a rejection (see the pipeline) and the run goes on;
so does an alert whose score is not finite (stage ``score``): a score is never made up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brightscan.alerts import Alert, Rejection
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.errors import ConfigError
from brightscan.model.io import load_model
from brightscan.preprocess.history import History
from brightscan.preprocess.pipeline import Pipeline, PreparedChunk, reject
from brightscan.score.backends import BACKENDS, PRECISIONS
from brightscan.score.batching import prefetch
from brightscan.score.precision import choose_precision
from brightscan.score.results import ScoreResults

__all__ = ["Scorer", "reject_non_finite", "score_chunk"]

#: Earlier detections of each object: a History, or a mapping objectId -> detection records.
Earlier = History | Mapping[str, Iterable[Mapping[str, Any]]]


class Scorer:
    """Score arrays or alerts with a saved model.

    Parameters
    ----------
    model_dir : str or Path
        A model directory (``model.json`` + ``weights.safetensors``, plus ``model.onnx`` for
        the onnx backend).
    backend : {"torch", "onnx"}, optional
        Inference engine; default: the one that runs ``precision`` (torch for float32).
    precision : {"float32", "bfloat16", "int8", "auto"}
        ``bfloat16`` (torch) runs the image branch in bf16 — several times faster on CPUs with
        AMX/AVX-512-BF16, slower elsewhere; ``int8`` (onnx, ``model.int8.onnx`` from
        ``brightscan model quantize``) runs its convolutions in int8 (VNNI/AMX-INT8 CPUs). A
        reduced precision selects its backend. ``auto``: the one measured faster than float32 on
        this kind of CPU and harmless to decisions (:func:`brightscan.score.precision.choose_precision`),
        else float32.
    batch_size : int
        Alerts per model call (small batches are fastest on CPU: they stay in cache).
    num_threads : int, optional
        Native threads for the model; for the torch backend this sets the process-wide
        ``torch.set_num_threads``. Default: leave the runtime's choice.
    device : str or torch.device, optional
        Torch device; default cuda when available, else cpu.
    overflow : str
        Passed to preprocessing (how to treat overflowing cutout pixels).
    limits : ReadLimits, optional
        Bounds on reading (:meth:`score_files`) and on inflating cutouts.
    """

    def __init__(self, model_dir: str | Path, *, backend: str | None = None,
                 precision: str = "float32", batch_size: int = 32,
                 num_threads: int | None = None, device: str | torch.device | None = None,
                 overflow: str = "reject", limits: ReadLimits = DEFAULT_LIMITS) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if precision == "auto":
            precision = _auto_precision(model_dir, backend, device)
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose from auto, {', '.join(PRECISIONS)}")
        backend = backend or PRECISIONS[precision] or "torch"
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if num_threads and backend == "torch":
            torch.set_num_threads(num_threads)
        self.backend, self.precision, self.batch_size = backend, precision, batch_size
        self.overflow = overflow
        self.limits = limits
        self.loaded = load_model(model_dir, device="cpu" if backend == "onnx" else device)
        self._run = BACKENDS[backend](self.loaded, precision, num_threads)

    # --- the model's contract ------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Preset id stamped on every score."""
        return self.loaded.model_id

    @property
    def model_version(self) -> str:
        """Model version stamped on every score."""
        return self.loaded.model_version

    @property
    def feature_set(self) -> str:
        """Feature set the model takes."""
        return self.loaded.config.feature_set

    @property
    def temperature(self) -> float:
        """Calibration temperature from ``model.json``."""
        return self.loaded.temperature

    # --- arrays --------------------------------------------------------------------------------
    def predict_logits(self, triplets: np.ndarray | None,
                       features: np.ndarray | None = None) -> np.ndarray:
        """Raw logits ``(N,)`` float32 for ``(N, 63, 63, 3)`` triplets and ``(N, F)`` features."""
        config = self.loaded.config
        triplets = _as_input(triplets, "triplets", config.uses_image,
                             (config.image_size, config.image_size, config.image_channels))
        features = _as_input(features, "features", config.uses_features, (config.n_features,))
        n = len(triplets if triplets is not None else features)
        out = np.empty(n, np.float32)
        for start in range(0, n, self.batch_size):
            part = slice(start, start + self.batch_size)
            out[part] = self._run(None if triplets is None else triplets[part],
                                  None if features is None else features[part])
        return out

    def score_arrays(self, triplets: np.ndarray | None,
                     features: np.ndarray | None = None) -> np.ndarray:
        """Scores ``sigmoid(logit / temperature)`` as float64, shape ``(N,)``."""
        logits = self.predict_logits(triplets, features).astype(np.float64)
        # sigmoid as exp(-log(1 + e^-z)): exact, and no overflow warning for very negative logits
        return np.exp(-np.logaddexp(0.0, -logits / self.temperature))

    def predict_stored(self, n: int, read: Callable[[np.ndarray], tuple[np.ndarray | None, np.ndarray | None]],
                       *, rows_per_read: int = 256, on_rows: Callable[[int], None] | None = None) -> np.ndarray:
        """Raw logits ``(n,)`` of ``n`` stored alerts (a dataset split), read ``rows_per_read`` at a
        time by ``read(rows) -> (triplets or None, features)``, so memory stays bounded by one read.
        ``on_rows(k)`` is called after each read (progress bars). Non-finite logits are returned
        as they are: :func:`reject_non_finite` turns them into rejections."""
        logits = np.empty(n, dtype=np.float64)
        for start in range(0, n, rows_per_read):
            rows = np.arange(start, min(start + rows_per_read, n))
            logits[rows] = self.predict_logits(*read(rows))
            if on_rows is not None:
                on_rows(len(rows))
        return logits

    # --- alerts --------------------------------------------------------------------------------
    def pipeline(self, earlier: Earlier | None = None) -> Pipeline:
        """The preparation pipeline for this model's feature set, in chunks of ``batch_size``."""
        history = earlier if isinstance(earlier, History) or earlier is None else History(earlier)
        # a Rubin model states its stamp size; ZTF triplets are always 63 px
        image_size = self.loaded.config.image_size if self.loaded.survey == "rubin" else None
        return Pipeline(self.feature_set, overflow=self.overflow, history=history, chunk_size=self.batch_size,
                        image_size=image_size, limits=self.limits)

    def prepare(self, items: Iterable[Alert | Rejection], *,
                earlier: Earlier | None = None) -> Iterator[PreparedChunk]:
        """Prepare alerts into chunks of ``batch_size`` (runs in the caller's thread)."""
        return self.pipeline(earlier).chunks(items)

    def iter_scored(self, items: Iterable[Alert | Rejection], *, earlier: Earlier | None = None,
                    overlap: bool = True, prefetch_chunks: int = 4
                    ) -> Iterator[tuple[list[dict[str, Any]], np.ndarray, list[Rejection]]]:
        """Yield ``(rows, scores, rejections)`` per chunk, preparing ahead in a thread."""
        chunks = self.prepare(items, earlier=earlier)
        if overlap:
            chunks = prefetch(chunks, prefetch_chunks)
        for chunk in chunks:
            scores, bad = score_chunk(self, chunk)
            good = np.isfinite(scores)
            yield [r for r, ok in zip(chunk.rows, good) if ok], scores[good], [*chunk.rejections, *bad]

    def score_alerts(self, items: Iterable[Alert | Rejection], *,
                     earlier: Earlier | None = None, overlap: bool = True) -> ScoreResults:
        """Score alerts (and pass rejections through) into a :class:`ScoreResults`.

        Parameters
        ----------
        items : iterable of Alert or Rejection
            E.g. ``read_alerts(paths)`` (decoded lazily, in the background thread) or a list.
        earlier : History or mapping, optional
            Earlier detections of each object, for the history features: a
            :class:`~brightscan.preprocess.history.History` or a mapping objectId -> records.
        overlap : bool
            Prepare in a background thread while the model runs.
        """
        results = ScoreResults(self.model_id, self.model_version)
        for rows, scores, rejections in self.iter_scored(items, earlier=earlier, overlap=overlap):
            results.extend(rows, scores, rejections)
        return results

    def score_files(self, inputs: Iterable[str | Path] | str | Path, *, causal: bool = False,
                    overlap: bool = True) -> ScoreResults:
        """Read alert files exactly as ``brightscan preprocess`` does, and score them.

        With ``causal``, the candidates of each object's other alerts in the inputs are merged
        into its history (never later ones), as ``brightscan preprocess --causal``.
        """
        from brightscan.alerts import read_alerts

        inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        earlier = History.collect(inputs) if causal else None
        return self.score_alerts(read_alerts(inputs, limits=self.limits), earlier=earlier, overlap=overlap)


def _auto_precision(model_dir: str | Path, backend: str | None, device: Any) -> str:
    """What ``auto`` means here: measured per CPU among what ``backend`` runs; float32 on a GPU."""
    if str(device).startswith("cuda") or (device is None and backend != "onnx" and torch.cuda.is_available()):
        return "float32"
    available = {None: ("bfloat16", "int8"), "torch": ("bfloat16",), "onnx": ("int8",)}[backend]
    return choose_precision(model_dir, available=available)


def _as_input(array: np.ndarray | None, name: str, used: bool,
              shape: tuple[int, ...]) -> np.ndarray | None:
    if not used:
        return None
    if array is None:
        raise ConfigError(f"this model needs {name}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.shape[1:] != shape:
        raise ConfigError(f"{name} must have shape (N, {', '.join(map(str, shape))}), "
                          f"not {array.shape}")
    return array


def score_chunk(scorer: Any, chunk: PreparedChunk) -> tuple[np.ndarray, list[Rejection]]:
    """Scores of a prepared chunk (aligned with ``chunk.rows``), and a rejection (stage ``score``)
    for each alert whose score is not finite: callers keep ``np.isfinite(scores)``.

    ``scorer`` is anything with ``score_arrays(triplets, features)`` (a :class:`Scorer`).
    """
    if not chunk.rows:
        return np.zeros(0), []
    scores = np.asarray(scorer.score_arrays(chunk.triplet_array(), chunk.feature_array()), dtype=np.float64)
    return scores, reject_non_finite(chunk.rows, scores)[1]


def reject_non_finite(rows: Sequence[Mapping[str, Any]], values: np.ndarray) -> tuple[np.ndarray, list[Rejection]]:
    """Which ``values`` (scores or logits, aligned with identity ``rows``: ``candid``,
    ``objectId``, ``source``) are finite, and a rejection (stage ``score``) for each other one:
    a score is never made up, and one bad alert never stops a run."""
    finite = np.isfinite(values)
    return finite, [reject(rows[i], "score", "model score is not finite") for i in np.flatnonzero(~finite)]
