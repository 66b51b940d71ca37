"""The one alert-preparation pipeline: alerts in; identity rows, triplets, features and rejections out.

Every path that turns alerts into model inputs goes through :class:`Pipeline` — ``brightscan
preprocess``, ``dataset build``, scoring and autoscan — so training and serving prepare an alert
identically, and a fix here reaches all of them. It is the only caller of the per-alert
preprocessing (:func:`brightscan.preprocess.preprocess_alert`), the only place that turns its
errors into rejection records (:func:`reject`), and the only builder of the identity row that
names an alert in every table we write (:func:`identity_row`).

Work comes out in *chunks* (:class:`PreparedChunk`) of at most ``chunk_size`` accepted alerts,
each carrying the rejections met while it was gathered, so memory is bounded by the chunk.

Errors: an :class:`~brightscan.errors.AlertError` (bad cutout, missing feature) rejects that alert
and the run goes on. Any other exception is a bug: it is logged with the alert's ``candid`` and a
traceback and re-raised (documented decision: no silent partial output).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.records import Alert, Rejection
from brightscan.errors import AlertError, ConfigError
from brightscan.preprocess import PREPROCESSING_VERSION, preprocess_alert
from brightscan.preprocess.cutouts import OVERFLOW_MODES, STAMP_SIZE
from brightscan.preprocess.crossmatch import StarGalaxyCatalog
from brightscan.preprocess.surveys import feature_set_names
from brightscan.preprocess.history import History

__all__ = [
    "IDENTITY_COLUMNS", "Pipeline", "PreparedChunk", "feature_table_schema", "identity_row", "reject",
    "table_row",
]

log = logging.getLogger(__name__)

#: Identity columns of every alert table we write (preprocess output, dataset splits, scores).
IDENTITY_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("candid", pa.int64()),
    ("objectId", pa.string()),
    ("jd", pa.float64()),
    ("magpsf", pa.float64()),
    ("fid", pa.int32()),
)


def identity_row(alert: Alert) -> dict[str, Any]:
    """``candid``, ``objectId``, ``jd``, ``magpsf``, ``fid`` and ``source`` (the file) of an alert.

    ``magpsf`` and ``fid`` are None when absent or not numbers (a rejection would say why).
    """
    cand = alert.candidate
    return {
        "candid": alert.candid,
        "objectId": alert.object_id,
        "jd": float(cand["jd"]),
        "magpsf": _number_or_none(cand.get("magpsf"), float),
        "fid": _number_or_none(cand.get("fid"), int),
        "source": alert.source,
    }


def table_row(identity: dict[str, Any], names: Iterable[str], features: np.ndarray) -> dict[str, Any]:
    """An identity row followed by the named features (an identity column keeps its own value)."""
    row = dict(identity)
    for name, value in zip(names, features):
        row.setdefault(name, float(value))
    return row


def feature_table_schema(id_columns: tuple[tuple[str, pa.DataType], ...], feature_set: str) -> pa.Schema:
    """Identity columns, then the feature set's columns (float32) in model order.

    A feature that is also an identity column (``magpsf``) is stored once, in full precision.
    """
    fields = [pa.field(name, dtype) for name, dtype in id_columns]
    id_names = {name for name, _ in id_columns}
    fields += [pa.field(name, pa.float32()) for name in feature_set_names(feature_set) if name not in id_names]
    return pa.schema(fields, metadata={"preprocessing_version": PREPROCESSING_VERSION, "feature_set": feature_set})


def reject(alert: Alert | dict[str, Any], stage: str, reason: str) -> Rejection:
    """The rejection record of an alert (or of its identity row) at ``stage``."""
    if not isinstance(alert, dict):  # an Alert or a RubinAlert
        return Rejection(alert.candid, alert.object_id, alert.source, stage, reason)
    return Rejection(alert["candid"], alert["objectId"], alert["source"], stage, reason)


@dataclass
class PreparedChunk:
    """Up to ``chunk_size`` prepared alerts, and the rejections met while gathering them."""

    alerts: list[Alert] = field(default_factory=list)  # accepted alerts, input order
    rows: list[dict[str, Any]] = field(default_factory=list)  # identity_row of each accepted alert
    triplets: list[np.ndarray] = field(default_factory=list)  # (63, 63, 3) float32 each
    features: list[np.ndarray] = field(default_factory=list)  # (F,) float32 each
    rejections: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def triplet_array(self) -> np.ndarray:
        """``(n, 63, 63, 3)`` float32."""
        if not self.triplets:
            return np.zeros((0, STAMP_SIZE, STAMP_SIZE, 3), np.float32)
        return np.stack(self.triplets)

    def feature_array(self) -> np.ndarray:
        """``(n, F)`` float32."""
        if not self.features:
            return np.zeros((0, 0), np.float32)
        return np.stack(self.features)


class Pipeline:
    """Prepare alerts for one feature set.

    Parameters
    ----------
    feature_set : str
        ``"v1"`` or ``"icml2023"`` (see :data:`brightscan.preprocess.FEATURE_SETS`).
    overflow : {"reject", "production"}
        How cutouts with float32 overflow sentinels are treated (:func:`~brightscan.preprocess.make_triplet`).
    history : History, optional
        Earlier detections of each object, for the history features; default: the packet's own
        ``prv_candidates`` only, as production.
    chunk_size : int, optional
        Accepted alerts per chunk; default: the whole input in one chunk.
    limits : ReadLimits, optional
        Its ``max_cutout_bytes`` bounds each stamp while it is inflated (the readers take the rest).
    image_size : int, optional
        Triplet side for Rubin alerts (a model's ``image_size``); ZTF's is always 63.
    catalog : StarGalaxyCatalog, optional
        For the Rubin feature sets that cross-match a star/galaxy catalogue.
    """

    def __init__(self, feature_set: str, *, overflow: str = "reject", history: History | None = None,
                 chunk_size: int | None = None, image_size: int | None = None,
                 catalog: StarGalaxyCatalog | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        try:
            self.names = feature_set_names(feature_set)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        if overflow not in OVERFLOW_MODES:
            raise ConfigError(f"overflow must be one of {OVERFLOW_MODES}, not {overflow!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError("chunk_size must be at least 1")
        self.feature_set = feature_set
        self.overflow = overflow
        self.history = history if history is not None else History()
        self.chunk_size = chunk_size
        self.limits = limits
        self.image_size = image_size
        self.catalog = catalog

    def chunks(self, items: Iterable[Alert | Rejection], *,
               on_item: Callable[[], None] | None = None) -> Iterator[PreparedChunk]:
        """Prepare ``items`` (alerts, and rejections from the readers, passed through) in chunks.

        The last chunk may hold rejections only; nothing is yielded for an empty input.
        """
        chunk = PreparedChunk()
        for item in items:
            if on_item is not None:
                on_item()
            if isinstance(item, Rejection):
                chunk.rejections.append(item)
                continue
            self._add(chunk, item)
            if self.chunk_size is not None and len(chunk) >= self.chunk_size:
                yield chunk
                chunk = PreparedChunk()
        if chunk.rows or chunk.rejections:
            yield chunk

    def prepare(self, items: Iterable[Alert | Rejection]) -> PreparedChunk:
        """All of ``items`` as one chunk (autoscan's unit of work)."""
        merged = PreparedChunk()
        for chunk in self.chunks(items):
            for name in ("alerts", "rows", "triplets", "features", "rejections"):
                getattr(merged, name).extend(getattr(chunk, name))
        return merged

    def _add(self, chunk: PreparedChunk, alert: Alert) -> None:
        try:
            triplet, features = preprocess_alert(alert, self.feature_set, earlier=self.history.earlier(alert),
                                                 overflow=self.overflow, image_size=self.image_size,
                                                 catalog=self.catalog, max_cutout_bytes=self.limits.max_cutout_bytes)
        except AlertError as exc:
            log.info("rejected %s (%s): %s", alert.candid, alert.source, exc.reason)
            chunk.rejections.append(reject(alert, exc.stage, exc.reason))
            return
        except Exception:
            log.exception("unexpected error preparing candid %s (%s); stopping", alert.candid, alert.source)
            raise
        self.history.add(alert)
        chunk.alerts.append(alert)
        chunk.rows.append(identity_row(alert))
        chunk.triplets.append(triplet)
        chunk.features.append(features)


def _number_or_none(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return kind(value)
