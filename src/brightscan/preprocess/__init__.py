"""Turning alerts into model inputs: the image triplet and the extracted features."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from brightscan.alerts.limits import DEFAULT_LIMITS
from brightscan.alerts.records import Alert
from brightscan.alerts.rubin import RubinAlert
from brightscan.errors import ConfigError
from brightscan.preprocess.crossmatch import StarGalaxyCatalog
from brightscan.preprocess.surveys import SURVEYS, check_survey, feature_set_names, feature_set_survey
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
from brightscan.preprocess.rubin import (
    RUBIN_FEATURE_SETS,
    RUBIN_STAMP_SIZE,
    compute_rubin_features,
    make_rubin_triplet,
)

#: Bumped whenever the triplet or feature computation changes; stored in model and dataset files.
PREPROCESSING_VERSION = "ztf-btsbot-1"
#: The same for Rubin alerts (src/brightscan/preprocess/rubin.py).
RUBIN_PREPROCESSING_VERSION = "rubin-1"


def preprocess_alert(
    alert: Alert | RubinAlert,
    feature_set: str = "v1",
    *,
    earlier: Iterable[Mapping[str, Any]] = (),
    overflow: str = "reject",
    max_cutout_bytes: int = DEFAULT_LIMITS.max_cutout_bytes,
    image_size: int | None = None,
    catalog: StarGalaxyCatalog | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Triplet and feature vector of one alert; raises an ``AlertError`` subclass.

    ZTF alerts give a (63, 63, 3) triplet; Rubin alerts one of ``image_size`` (default
    :data:`~brightscan.preprocess.rubin.RUBIN_STAMP_SIZE`). An alert whose survey is not the
    feature set's raises :class:`~brightscan.errors.SurveyMismatchError`, never a silent score.
    ``max_cutout_bytes`` bounds each ZTF stamp while it is inflated (:func:`make_triplet`).
    """
    check_survey(alert, feature_set)
    if isinstance(alert, RubinAlert):
        features = compute_rubin_features(alert, feature_set, earlier=earlier, catalog=catalog)
        return make_rubin_triplet(alert, image_size or RUBIN_STAMP_SIZE), features
    if image_size not in (None, STAMP_SIZE):
        raise ConfigError(f"ZTF triplets are {STAMP_SIZE} px; a model input size of {image_size} is for another survey")
    features = compute_features(alert, feature_set, earlier=earlier)
    return make_triplet(alert, overflow=overflow, max_cutout_bytes=max_cutout_bytes), features


__all__ = [
    "CUTOUT_ORDER",
    "FEATURE_SETS",
    "HISTORY_FEATURES",
    "OVERFLOW_MODES",
    "PAD_VALUE",
    "PREPROCESSING_VERSION",
    "RUBIN_FEATURE_SETS",
    "RUBIN_PREPROCESSING_VERSION",
    "RUBIN_STAMP_SIZE",
    "STAMP_SIZE",
    "SURVEYS",
    "StarGalaxyCatalog",
    "check_survey",
    "feature_set_names",
    "feature_set_survey",
    "make_rubin_triplet",
    "causal_detections",
    "compute_features",
    "feature_names",
    "make_triplet",
    "named_features",
    "preprocess_alert",
]
