"""Turning alerts into model inputs: the image triplet and the extracted features."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from brightscan.alerts.limits import DEFAULT_LIMITS
from brightscan.alerts.records import Alert
from brightscan.preprocess.cutouts import (
    CUTOUT_ORDER,
    OVERFLOW_MODES,
    PAD_VALUE,
    STAMP_SIZE,
    make_triplet,
)
from brightscan.preprocess.features import (
    FEATURE_SETS,
    HISTORY_FEATURES,
    causal_detections,
    compute_features,
    feature_names,
    named_features,
)

#: Bumped whenever the triplet or feature computation changes; stored in model and dataset files.
PREPROCESSING_VERSION = "ztf-btsbot-1"


def preprocess_alert(
    alert: Alert,
    feature_set: str = "v1",
    *,
    earlier: Iterable[Mapping[str, Any]] = (),
    overflow: str = "reject",
    max_cutout_bytes: int = DEFAULT_LIMITS.max_cutout_bytes,
) -> tuple[np.ndarray, np.ndarray]:
    """Triplet (63, 63, 3) and feature vector of one alert; raises an ``AlertError`` subclass.

    ``max_cutout_bytes`` bounds each stamp while it is inflated (:func:`make_triplet`).
    """
    features = compute_features(alert, feature_set, earlier=earlier)
    return make_triplet(alert, overflow=overflow, max_cutout_bytes=max_cutout_bytes), features


__all__ = [
    "CUTOUT_ORDER",
    "FEATURE_SETS",
    "HISTORY_FEATURES",
    "OVERFLOW_MODES",
    "PAD_VALUE",
    "PREPROCESSING_VERSION",
    "STAMP_SIZE",
    "causal_detections",
    "compute_features",
    "feature_names",
    "make_triplet",
    "named_features",
    "preprocess_alert",
]
