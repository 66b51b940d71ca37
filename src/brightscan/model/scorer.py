"""Scoring alerts with a saved model: arrays in, scores out; or alerts in, a score table out.

consume -> process -> produce: alerts come from any iterable (``read_alerts`` over files, a Kafka
consumer, a list in memory); each is preprocessed exactly as ``brightscan preprocess`` does;
batches go through the model; every score is stamped with the model id and version.

Decoding and preprocessing are pure Python under the GIL (~1.4 ms of one core per Avro alert),
while the model runs in native threads that release it. :meth:`Scorer.iter_batches` therefore
runs the consume/process half in a background thread, a few batches ahead of the model, so both
cores stay busy.

Errors: an alert that cannot be used (``AlertError``: bad cutout, missing feature) becomes a
rejection and the run goes on; so does an alert whose score is not finite (stage ``score``).
Any other exception is a bug: it is logged with the alert's ``candid`` and traceback and
re-raised, stopping the run (documented decision: no silent partial output).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from brightscan.alerts import Alert, Rejection
from brightscan.errors import AlertError, ConfigError
from brightscan.model.io import LoadedModel, load_model
from brightscan.model.results import ScoreResults

__all__ = ["BACKENDS", "PRECISIONS", "PreparedBatch", "Scorer"]

log = logging.getLogger(__name__)

#: Earlier detections of a source: by objectId, or a function of the alert.
Earlier = Union[Mapping[str, Iterable[Mapping[str, Any]]], Callable[[Alert], Iterable[Mapping[str, Any]]]]

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class _TorchBackend:
    """The torch model; ``bfloat16`` runs the convolutions in bf16 (fp32 accumulation) and the
    feature branch and head in fp32, because raw features (ra ~ 100s of degrees) lose too much in
    bf16."""

    #: On CPU, a batch is run in chunks of this many alerts: a 32-alert chunk's activations stay
    #: in L2, which makes oneDNN ~1.4x faster per alert than one 256-alert call (see
    #: docs/benchmarks-model.md). Results are identical; GPUs take the whole batch.
    cpu_chunk = 32

    def __init__(self, loaded: LoadedModel, precision: str) -> None:
        self.model = loaded.model
        self.device = next(self.model.parameters()).device
        self.model.convs.to(PRECISIONS[precision])
        self.chunk = self.cpu_chunk if self.device.type == "cpu" else None

    def __call__(self, triplets: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        def tensor(array: np.ndarray | None) -> torch.Tensor | None:
            return None if array is None else torch.from_numpy(array).to(self.device)

        n = len(triplets if triplets is not None else features)
        step = self.chunk or n
        parts = []
        with torch.inference_mode():
            for start in range(0, n, step):
                part = slice(start, start + step)
                parts.append(self.model(tensor(None if triplets is None else triplets[part]),
                                        tensor(None if features is None else features[part])))
        return torch.cat(parts).float().cpu().numpy()


class _OnnxBackend:
    """``model.onnx`` through ONNX Runtime (float32 only)."""

    def __init__(self, loaded: LoadedModel, precision: str, num_threads: int | None) -> None:
        from brightscan.model.onnx_export import open_onnx_session

        if precision != "float32":
            raise ConfigError("the onnx backend runs float32 only; use --backend torch for bf16")
        self.session = open_onnx_session(loaded.path, num_threads=num_threads)
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, triplets: np.ndarray | None, features: np.ndarray | None) -> np.ndarray:
        feeds = {"triplet": triplets, "features": features}
        return self.session.run(["logit"], {name: feeds[name] for name in self.names})[0]


BACKENDS = {
    "torch": lambda loaded, precision, threads: _TorchBackend(loaded, precision),
    "onnx": _OnnxBackend,
}


@dataclass
class PreparedBatch:
    """A batch of preprocessed alerts, ready for the model."""

    triplets: np.ndarray  # (n, 63, 63, 3) float32
    features: np.ndarray  # (n, F) float32
    rows: list[dict[str, Any]]  # candid, objectId, jd, magpsf, fid of each alert
    rejections: list[Rejection]  # alerts dropped while this batch was gathered


class Scorer:
    """Score arrays or alerts with a saved model.

    Parameters
    ----------
    model_dir : str or Path
        A model directory (``model.json`` + ``weights.safetensors``, plus ``model.onnx`` for
        the onnx backend).
    backend : {"torch", "onnx"}
        Inference engine.
    precision : {"float32", "bfloat16"}
        ``bfloat16`` (torch only) runs the image branch in bf16 — several times faster on CPUs
        with AMX/AVX-512-BF16; check its scores against float32 before trusting it.
    batch_size : int
        Alerts per model call (small batches are fastest on CPU: they stay in cache).
    num_threads : int, optional
        Native threads for the model; for the torch backend this sets the process-wide
        ``torch.set_num_threads``. Default: leave the runtime's choice.
    device : str or torch.device, optional
        Torch device; default cuda when available, else cpu.
    overflow : str
        Passed to preprocessing (how to treat overflowing cutout pixels).
    """

    def __init__(self, model_dir: str | Path, *, backend: str = "torch",
                 precision: str = "float32", batch_size: int = 32,
                 num_threads: int | None = None, device: str | torch.device | None = None,
                 overflow: str = "reject") -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if num_threads and backend == "torch":
            torch.set_num_threads(num_threads)
        self.backend, self.precision, self.batch_size = backend, precision, batch_size
        self.overflow = overflow
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

    # --- alerts --------------------------------------------------------------------------------
    def prepare(self, items: Iterable[Alert | Rejection], *,
                earlier: Earlier | None = None) -> Iterator[PreparedBatch]:
        """Preprocess alerts into batches (runs in the caller's thread)."""
        from brightscan.preprocess import preprocess_alert

        lookup = _earlier_lookup(earlier)
        trips, feats, rows, rejections = [], [], [], []
        for item in items:
            if isinstance(item, Rejection):
                rejections.append(item)
                continue
            try:
                triplet, features = preprocess_alert(item, self.feature_set,
                                                     earlier=lookup(item), overflow=self.overflow)
            except AlertError as exc:
                rejections.append(Rejection(item.candid, item.object_id, item.source,
                                            exc.stage, exc.reason))
                continue
            except Exception:
                log.exception("unexpected error preprocessing candid %s (%s); stopping",
                              item.candid, item.source)
                raise
            trips.append(triplet)
            feats.append(features)
            rows.append(_row(item))
            if len(rows) == self.batch_size:
                yield PreparedBatch(np.stack(trips), np.stack(feats), rows, rejections)
                trips, feats, rows, rejections = [], [], [], []
        if rows:
            yield PreparedBatch(np.stack(trips), np.stack(feats), rows, rejections)
        elif rejections:
            yield PreparedBatch(np.zeros(0, np.float32), np.zeros(0, np.float32), [], rejections)

    def iter_scored(self, items: Iterable[Alert | Rejection], *, earlier: Earlier | None = None,
                    overlap: bool = True, prefetch: int = 4
                    ) -> Iterator[tuple[list[dict[str, Any]], np.ndarray, list[Rejection]]]:
        """Yield ``(rows, scores, rejections)`` per batch, preprocessing ahead in a thread."""
        batches = self.prepare(items, earlier=earlier)
        if overlap:
            batches = _prefetch(batches, prefetch)
        for batch in batches:
            rejections = list(batch.rejections)
            if not batch.rows:
                yield [], np.zeros(0), rejections
                continue
            scores = self.score_arrays(batch.triplets, batch.features)
            good = np.isfinite(scores)
            for row in (r for r, ok in zip(batch.rows, good) if not ok):
                rejections.append(Rejection(row["candid"], row["objectId"], row["source"],
                                            "score", "model output is not finite"))
            yield [r for r, ok in zip(batch.rows, good) if ok], scores[good], rejections

    def score_alerts(self, items: Iterable[Alert | Rejection], *,
                     earlier: Earlier | None = None, overlap: bool = True) -> ScoreResults:
        """Score alerts (and pass rejections through) into a :class:`ScoreResults`.

        Parameters
        ----------
        items : iterable of Alert or Rejection
            E.g. ``read_alerts(paths)`` (decoded lazily, in the background thread) or a list.
        earlier : mapping or callable, optional
            Candidates of each source's earlier alerts, for the history features: a mapping
            objectId -> candidates, or a function alert -> candidates.
        overlap : bool
            Preprocess in a background thread while the model runs.
        """
        results = ScoreResults(self.model_id, self.model_version)
        for rows, scores, rejections in self.iter_scored(items, earlier=earlier, overlap=overlap):
            results.extend(rows, scores, rejections)
        return results

    def score_files(self, inputs: Iterable[str | Path] | str | Path, *, causal: bool = False,
                    overlap: bool = True) -> ScoreResults:
        """Read alert files exactly as ``brightscan preprocess`` does, and score them.

        With ``causal``, the candidates of each source's other alerts in the inputs are merged
        into its history (never later ones), as ``brightscan preprocess --causal``.
        """
        from brightscan.alerts import read_alerts

        inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        earlier = None
        if causal:
            from brightscan.preprocess.batch import collect_history

            earlier = collect_history(inputs)
        return self.score_alerts(read_alerts(inputs), earlier=earlier, overlap=overlap)


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


def _row(alert: Alert) -> dict[str, Any]:
    cand = alert.candidate
    fid = cand.get("fid")
    return {"candid": alert.candid, "objectId": alert.object_id, "jd": float(cand["jd"]),
            "magpsf": cand.get("magpsf"), "fid": None if fid is None else int(fid),
            "source": alert.source}


def _earlier_lookup(earlier: Earlier | None) -> Callable[[Alert], Iterable[Mapping[str, Any]]]:
    if earlier is None:
        return lambda alert: ()
    if callable(earlier):
        return earlier
    return lambda alert: earlier.get(alert.object_id, ())


_DONE = object()


def _prefetch(iterator: Iterator[Any], size: int) -> Iterator[Any]:
    """Run ``iterator`` in a daemon thread, ``size`` items ahead; re-raise its exceptions here."""
    box: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            box.put(exc)

    thread = threading.Thread(target=produce, name="brightscan-prefetch", daemon=True)
    thread.start()
    try:
        while (item := box.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
