"""From an alert table with scores to per-object, jd-sorted score histories; the paper's selection.

Object selection (the paper's "source" selection, section 3): keep objects with at least two alerts,
and drop bright (label 1) objects whose observed peak is fainter than 18.5 mag, since BTS would not have been
expected to save them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brightscan.errors import InputError
from brightscan.storage import read_csv_table
from brightscan.policy import BasePolicy, ObjectHistory, ScoredAlert, first_pass

log = logging.getLogger(__name__)

#: BTS magnitude limit: bright objects must peak brighter than this to be counted.
BRIGHT_PEAK_LIMIT = 18.5


def _opt(value: object) -> float | None:
    """A table cell as float, or None when missing/NaN."""
    if value is None:
        return None
    v = float(value)  # type: ignore[arg-type]
    return None if math.isnan(v) else v


def build_objects(
    table: pd.DataFrame, scores: Sequence[float], save_jd: Mapping[str, float] | None = None,
) -> list[ObjectHistory]:
    """Group alerts by ``objectId`` into jd-sorted :class:`ObjectHistory` records.

    Parameters
    ----------
    table : DataFrame
        One row per alert with ``candid, objectId, jd, magpsf, label``; optional
        ``peakmag_so_far``, ``age``, ``ndethist`` are carried into each :class:`ScoredAlert`.
    scores : array-like
        Score per row of ``table``.
    save_jd : mapping, optional
        ``objectId -> scanner save time`` (missing or NaN: not saved).

    Raises
    ------
    InputError
        Missing columns, a length mismatch, or an object with two different labels.
    """
    need = {"candid", "objectId", "jd", "magpsf", "label"}
    missing = need - set(table.columns)
    if missing:
        raise InputError(f"alert table lacks column(s) {', '.join(sorted(missing))}")
    scores = np.asarray(scores, dtype=float).ravel()
    if scores.size != len(table):
        raise InputError(f"{scores.size} scores for {len(table)} alerts")
    frame = table.assign(_score=scores).sort_values(["objectId", "jd", "candid"], kind="mergesort")
    optional = [c for c in ("peakmag_so_far", "age", "ndethist") if c in frame.columns]
    saves = save_jd or {}
    out: list[ObjectHistory] = []
    for object_id, group in frame.groupby("objectId", sort=True):
        labels = group["label"].unique()
        if len(labels) != 1:
            raise InputError(f"object {object_id} has alerts with different labels {sorted(labels.tolist())}")
        alerts = tuple(
            ScoredAlert(
                candid=int(row["candid"]), jd=float(row["jd"]), score=float(row["_score"]),
                magpsf=float(row["magpsf"]),
                peakmag_so_far=_opt(row["peakmag_so_far"]) if "peakmag_so_far" in optional else None,
                age=_opt(row["age"]) if "age" in optional else None,
                ndethist=None if "ndethist" not in optional or _opt(row["ndethist"]) is None
                else int(row["ndethist"]),
            )
            for row in group.to_dict("records")
        )
        peak = np.nanmin(group[["magpsf", *(["peakmag_so_far"] if "peakmag_so_far" in optional else [])]].to_numpy(float))
        out.append(ObjectHistory(str(object_id), int(labels[0]), alerts,
                                 save_jd=_opt(saves.get(str(object_id))), peak_mag=float(peak)))
    return out


def select_objects(
    objects: Sequence[ObjectHistory], min_alerts: int = 2, bright_peak_limit: float = BRIGHT_PEAK_LIMIT,
) -> list[ObjectHistory]:
    """The paper's selection: >= ``min_alerts`` alerts; label-1 objects must peak <= the limit."""
    kept = [s for s in objects if len(s.alerts) >= min_alerts
            and not (s.label == 1 and s.observed_peak > bright_peak_limit)]
    log.info("object selection: kept %d of %d objects", len(kept), len(objects))
    return kept


def read_scanner_saves(path: str | Path) -> dict[str, float]:
    """Read ``objectId,save_jd`` (empty ``save_jd``: never saved) into a mapping."""
    frame = read_csv_table(path, ("objectId", "save_jd"), "scanner saves")
    jd = pd.to_numeric(frame["save_jd"], errors="coerce")
    return {o: float(t) for o, t in zip(frame["objectId"], jd) if not math.isnan(t)}


def apply_policy(policy: BasePolicy, objects: Sequence[ObjectHistory]) -> tuple[np.ndarray, np.ndarray]:
    """Ask the decision core when each object first passed, replaying its jd-sorted alerts as
    autoscan decides them (:func:`brightscan.policy.first_pass`).

    Returns ``(passed, pass_jd)`` per object (``pass_jd`` NaN: never passed).
    """
    passed = np.zeros(len(objects), dtype=bool)
    pass_jd = np.full(len(objects), np.nan)
    for i, obj in enumerate(objects):
        index = first_pass(policy, obj.alerts)
        if index is not None:
            passed[i], pass_jd[i] = True, obj.alerts[index].jd
    return passed, pass_jd


def object_arrays(objects: Sequence[ObjectHistory]) -> dict[str, np.ndarray]:
    """Per-object ``label``, ``peak_mag`` and ``save_jd`` (NaN: not saved) as arrays."""
    return {
        "label": np.array([s.label for s in objects], dtype=int),
        "peak_mag": np.array([s.observed_peak for s in objects], dtype=float),
        "save_jd": np.array([np.nan if s.save_jd is None else s.save_jd for s in objects], dtype=float),
    }
