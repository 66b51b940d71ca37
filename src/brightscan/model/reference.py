"""Reference distributions: what a model's inputs and scores looked like on its validation split.

``brightscan train`` writes ``reference.json`` beside ``model.json`` and lists it, with its sha256,
in the card (``"reference": {"file", "sha256"}``), so the drift check of a night
(:mod:`brightscan.autoscan.drift`) compares the night's alerts with the data the model was chosen
on. One histogram per column is kept: bin edges at the 101 percentiles (ties merged, so a discrete
feature has few bins) and the count of validation alerts in each bin. From it come both statistics:

- the **Kolmogorov-Smirnov statistic** ``max |F_ref - F_night|``, evaluated at every edge (so it
  is exact at the percentiles and at most 1% below the continuous statistic between them);
- the **population stability index** ``sum (p_night - p_ref) ln(p_night / p_ref)``, over the
  edges merged into :data:`PSI_BINS` bins of about equal reference mass (the usual 10 deciles:
  finer bins make PSI grow with sampling noise alone, about ``(bins - 1) / n_night``).

JSON only (no pickle); a model directory without a reference keeps working, and the drift check
then says the reference is missing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.errors import ModelFileError

__all__ = ["REFERENCE_NAME", "ColumnReference", "Reference", "build_reference", "ks_statistic",
           "psi", "read_reference", "write_reference"]

REFERENCE_NAME = "reference.json"
FORMAT_VERSION = 1
_FORMAT = "brightscan-reference"
#: Percentiles kept per column (edges of the fine histogram).
N_QUANTILES = 101
#: Bins PSI is computed over (fine bins merged to about equal reference mass).
PSI_BINS = 10
#: Floor of a bin's share in PSI (an empty bin would make the logarithm infinite).
PSI_FLOOR = 1e-4
SCORE = "score"  # the column name of the scores in a reference


@dataclass(frozen=True)
class ColumnReference:
    """The reference histogram of one column."""

    edges: np.ndarray  # (k + 1,) increasing bin edges (the unique percentiles)
    counts: np.ndarray  # (k,) reference values per bin (below/above the edges fall in the end bins)
    n_nonfinite: int  # NaN / inf values left out

    @property
    def n(self) -> int:
        """Finite reference values."""
        return int(self.counts.sum())

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of finite ``values`` in this column's bins (out-of-range values in the end bins)."""
        values = values[np.isfinite(values)]
        k = len(self.counts)
        index = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, k - 1)
        return np.bincount(index, minlength=k)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [float(e) for e in self.edges], "counts": [int(c) for c in self.counts],
                "n_nonfinite": self.n_nonfinite}


@dataclass(frozen=True)
class Reference:
    """Reference histograms of a model's input features and of its scores."""

    columns: dict[str, ColumnReference]  # feature name (and "score") -> histogram
    split: str  # which data: "val" for the validation split
    n_alerts: int  # alerts the reference was computed from
    provenance: dict[str, Any]  # where the data came from (dataset, epoch...)

    @property
    def features(self) -> list[str]:
        """The feature columns (every column but the scores)."""
        return [c for c in self.columns if c != SCORE]

    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, "format_version": FORMAT_VERSION, "split": self.split,
                "n_alerts": self.n_alerts, "provenance": self.provenance, "score_column": SCORE,
                "columns": {name: col.to_dict() for name, col in self.columns.items()}}


def _column(values: np.ndarray) -> ColumnReference:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        edges = np.array([0.0, 0.0])
    else:
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, N_QUANTILES)))
        if edges.size == 1:  # a constant column: one bin
            edges = np.array([edges[0], edges[0]])
    column = ColumnReference(edges, np.zeros(len(edges) - 1, dtype=np.int64), int(values.size - finite.size))
    return ColumnReference(edges, column.bin_counts(finite), column.n_nonfinite)


def build_reference(features: np.ndarray, names: list[str] | tuple[str, ...], scores: np.ndarray, *,
                    split: str = "val", provenance: dict[str, Any] | None = None) -> Reference:
    """Histograms of each feature column and of the scores.

    Parameters
    ----------
    features : ndarray, shape (n, n_features)
        Model input features, in the order of ``names``.
    names : sequence of str
        Feature names (the model card's order).
    scores : ndarray, shape (n,)
        The model's scores of the same alerts.
    split, provenance
        Recorded in the file.
    """
    features = np.asarray(features)
    scores = np.asarray(scores).reshape(-1)
    if features.ndim != 2 or features.shape[1] != len(names) or features.shape[0] != scores.size:
        raise ValueError(f"features {features.shape} do not match {len(names)} names and {scores.size} scores")
    if SCORE in names:
        raise ValueError(f"a feature may not be called {SCORE!r}")
    columns = {name: _column(features[:, i]) for i, name in enumerate(names)}
    columns[SCORE] = _column(scores)
    return Reference(columns, split, int(scores.size), dict(provenance or {}))


def ks_statistic(reference: ColumnReference, values: np.ndarray) -> float:
    """Two-sample KS statistic between the reference histogram and ``values``, at the bin edges."""
    night = reference.bin_counts(np.asarray(values, dtype=np.float64))
    if night.sum() == 0 or reference.n == 0:
        return math.nan
    ref_cdf = np.cumsum(reference.counts) / reference.n
    night_cdf = np.cumsum(night) / night.sum()
    return float(np.max(np.abs(ref_cdf - night_cdf)))


def _psi_groups(counts: np.ndarray, bins: int) -> np.ndarray:
    """Group index of each fine bin: consecutive bins merged to about ``1 / bins`` of the mass."""
    cum = np.cumsum(counts) / max(int(counts.sum()), 1)
    return np.minimum((np.concatenate([[0.0], cum[:-1]]) * bins).astype(int), bins - 1)


def psi(reference: ColumnReference, values: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``values`` against the reference, over ~``bins`` equal-mass bins."""
    night = reference.bin_counts(np.asarray(values, dtype=np.float64))
    if night.sum() == 0 or reference.n == 0:
        return math.nan
    groups = _psi_groups(reference.counts, bins)
    p_ref = np.bincount(groups, weights=reference.counts) / reference.n
    p_night = np.bincount(groups, weights=night, minlength=len(p_ref)) / night.sum()
    p_ref, p_night = np.maximum(p_ref, PSI_FLOOR), np.maximum(p_night, PSI_FLOOR)
    return float(np.sum((p_night - p_ref) * np.log(p_night / p_ref)))


def write_reference(directory: str | Path, reference: Reference) -> Path:
    """Write ``reference.json`` into a model directory and record its sha256 in ``model.json``."""
    from brightscan.model.io import CARD_NAME, _write_json, read_card, sha256_file

    directory = Path(directory)
    card = read_card(directory)
    path = directory / REFERENCE_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(reference.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    card["reference"] = {"file": REFERENCE_NAME, "sha256": sha256_file(path)}
    _write_json(directory / CARD_NAME, card)
    return path


def _parse(data: dict[str, Any], path: Path) -> Reference:
    if data.get("format") != _FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: not a brightscan reference of format version {FORMAT_VERSION}")
    try:
        columns = {name: ColumnReference(np.asarray(c["edges"], float), np.asarray(c["counts"], np.int64),
                                         int(c.get("n_nonfinite", 0)))
                   for name, c in data["columns"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: malformed column ({exc})") from None
    for name, col in columns.items():
        if col.edges.size != col.counts.size + 1 or np.any(np.diff(col.edges) < 0) or np.any(col.counts < 0):
            raise ModelFileError(f"{path}: column {name!r} has inconsistent edges and counts")
    if SCORE not in columns:
        raise ModelFileError(f"{path}: no {SCORE!r} column")
    return Reference(columns, str(data.get("split", "?")), int(data.get("n_alerts", 0)),
                     dict(data.get("provenance") or {}))


def read_reference(directory: str | Path) -> Reference | None:
    """The reference of a model directory (or a ``reference.json`` path); ``None`` if it has none.

    Raises
    ------
    ModelFileError
        The file does not match the sha256 the card records, or is malformed.
    """
    from brightscan.model.io import CARD_NAME, sha256_file

    target = Path(directory)
    path = target if target.suffix == ".json" and target.name != CARD_NAME else target / REFERENCE_NAME
    if not path.is_file():
        return None
    card_path = path.parent / CARD_NAME
    if card_path.is_file():
        recorded = (json.loads(card_path.read_text(encoding="utf-8")).get("reference") or {}).get("sha256")
        if recorded is not None and recorded != sha256_file(path):
            raise ModelFileError(f"{path} does not match the sha256 in {card_path}: corrupted or replaced")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read the reference ({exc})") from None
    return _parse(data, path)
