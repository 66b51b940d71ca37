"""Score tables: what scoring produces, in memory and as Parquet files users read.

Columns use the ZTF names at this boundary: ``candid``, ``objectId``, ``jd``, ``magpsf``, ``fid``,
then ``score`` and the stamp of the model that made it (``model_id``, ``model_version``). Alerts
that could not be scored are never given a fake score; they are rejection records
(``candid``, ``objectId``, ``source``, ``stage``, ``reason``) written beside the scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.alerts import Rejection

__all__ = ["SCORE_COLUMNS", "REJECTION_COLUMNS", "ScoreResults", "read_run_card", "rejected_path", "write_scores"]

SCORE_COLUMNS = ("candid", "objectId", "jd", "magpsf", "fid", "score", "model_id", "model_version")
REJECTION_COLUMNS = ("candid", "objectId", "source", "stage", "reason")
#: Key of the run card in a scores file's Parquet metadata.
RUN_KEY = b"brightscan.run"


@dataclass
class ScoreResults:
    """Scores of the alerts that were scored, plus the rejections of those that were not."""

    model_id: str  # preset id of the scoring model
    model_version: str  # version of the scoring model
    rows: list[dict[str, Any]] = field(default_factory=list)  # candid, objectId, jd, magpsf, fid
    scores: list[np.ndarray] = field(default_factory=list)  # one float64 array per batch
    rejections: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def score(self) -> np.ndarray:
        """All scores, in input order, float64."""
        return np.concatenate(self.scores) if self.scores else np.zeros(0, np.float64)

    def extend(self, rows: list[dict[str, Any]], scores: np.ndarray,
               rejections: list[Rejection]) -> None:
        """Append one scored batch."""
        self.rows.extend(rows)
        self.scores.append(np.asarray(scores, dtype=np.float64))
        self.rejections.extend(rejections)

    def to_arrow(self) -> Any:
        """The scores as a ``pyarrow.Table`` with :data:`SCORE_COLUMNS`."""
        import pyarrow as pa

        n = len(self.rows)
        return pa.table({
            "candid": pa.array([r["candid"] for r in self.rows], pa.int64()),
            "objectId": pa.array([r["objectId"] for r in self.rows], pa.string()),
            "jd": pa.array([r["jd"] for r in self.rows], pa.float64()),
            "magpsf": pa.array([r["magpsf"] for r in self.rows], pa.float64()),
            "fid": pa.array([r["fid"] for r in self.rows], pa.int32()),
            "score": pa.array(self.score, pa.float64()),
            "model_id": pa.array([self.model_id] * n, pa.string()),
            "model_version": pa.array([self.model_version] * n, pa.string()),
        })

    def rejections_to_arrow(self) -> Any:
        """The rejections as a ``pyarrow.Table`` with :data:`REJECTION_COLUMNS`."""
        import pyarrow as pa

        rows = [r.as_row() for r in self.rejections]
        return pa.table({
            "candid": pa.array([r["candid"] for r in rows], pa.int64()),
            "objectId": pa.array([r["objectId"] for r in rows], pa.string()),
            "source": pa.array([r["source"] for r in rows], pa.string()),
            "stage": pa.array([r["stage"] for r in rows], pa.string()),
            "reason": pa.array([r["reason"] for r in rows], pa.string()),
        })


def rejected_path(out: str | Path) -> Path:
    """``scores.parquet`` -> ``scores.rejected.parquet`` (beside the scores)."""
    out = Path(out)
    stem = out.name[: -len(".parquet")] if out.name.endswith(".parquet") else out.name
    return out.with_name(stem + ".rejected.parquet")


def write_scores(results: ScoreResults, out: str | Path, run: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the scores to ``out`` and the rejections beside it (always, even when empty).

    ``run``, when given, is the run card (what was computed, with which settings), stored as JSON
    in the scores file's metadata under ``brightscan.run`` (:func:`read_run_card`).

    Returns
    -------
    tuple of Path
        ``(scores_path, rejections_path)``.
    """
    import pyarrow.parquet as pq

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = results.to_arrow()
    if run is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), RUN_KEY: json.dumps(run)})
    pq.write_table(table, out)
    rejected = rejected_path(out)
    pq.write_table(results.rejections_to_arrow(), rejected)
    return out, rejected


def read_run_card(path: str | Path) -> dict[str, Any] | None:
    """The run card :func:`write_scores` stored in a scores file, or None."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[RUN_KEY]) if RUN_KEY in metadata else None
