"""Which survey each feature set belongs to: the contract that keeps ZTF and Rubin models apart.

Every feature set is defined for one survey's packets (ZTF's ``candidate`` fields, or Rubin's
``diaSource``), and a model trained on one set is a model of that survey. An alert of the other
survey is refused with :class:`~brightscan.errors.SurveyMismatchError` (a rejection record naming
both surveys), never scored: a ZTF model's image branch has never seen 0.2" nJy stamps, and its
features (``sgscore1``, ``drb``) do not exist in Rubin packets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brightscan.errors import SurveyMismatchError
from brightscan.preprocess.features import FEATURE_SETS
from brightscan.preprocess.rubin import RUBIN_FEATURE_SETS

__all__ = ["SURVEYS", "check_survey", "feature_set_names", "feature_set_survey", "input_size", "preprocessing_version"]

#: Feature sets by survey.
SURVEYS: Mapping[str, Mapping[str, tuple[str, ...]]] = {"ztf": FEATURE_SETS, "rubin": RUBIN_FEATURE_SETS}


def feature_set_survey(feature_set: str) -> str:
    """The survey a feature set is defined for; ``KeyError`` naming the known sets otherwise."""
    for survey, sets in SURVEYS.items():
        if feature_set in sets:
            return survey
    known = ", ".join(name for sets in SURVEYS.values() for name in sets)
    raise KeyError(f"unknown feature set {feature_set!r} (known: {known})")


def feature_set_names(feature_set: str) -> tuple[str, ...]:
    """The ordered feature names of any survey's feature set."""
    return SURVEYS[feature_set_survey(feature_set)][feature_set]


def input_size(feature_set: str) -> int:
    """The triplet side a dataset of this feature set stores: 63 for ZTF, Rubin's default for Rubin."""
    from brightscan.preprocess.cutouts import STAMP_SIZE
    from brightscan.preprocess.rubin import RUBIN_STAMP_SIZE

    return RUBIN_STAMP_SIZE if feature_set_survey(feature_set) == "rubin" else STAMP_SIZE


def preprocessing_version(feature_set: str) -> str:
    """The preprocessing version stamped on datasets and models of this feature set's survey."""
    from brightscan.preprocess import PREPROCESSING_VERSION, RUBIN_PREPROCESSING_VERSION

    return RUBIN_PREPROCESSING_VERSION if feature_set_survey(feature_set) == "rubin" else PREPROCESSING_VERSION


def check_survey(alert: Any, feature_set: str) -> None:
    """Raise :class:`SurveyMismatchError` when ``alert`` is not of ``feature_set``'s survey."""
    wanted = feature_set_survey(feature_set)
    survey = getattr(alert, "survey", "ztf")
    if survey != wanted:
        raise SurveyMismatchError(
            f"a {survey.upper()} alert cannot be scored by a model of {wanted.upper()} alerts "
            f"(feature set {feature_set!r}); use a model trained on {survey.upper()} alerts",
            candid=alert.candid, object_id=alert.object_id)
