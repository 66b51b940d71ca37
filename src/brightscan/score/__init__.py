"""Scoring: a saved model's backends, batching with prefetch, and score tables.

Typical use::

    from brightscan.score import Scorer, write_scores

    scorer = Scorer("models/btsbot-v1.0.1")                # a saved model directory
    scores = scorer.score_arrays(triplets, features)       # (N, 63, 63, 3), (N, F) -> (N,)
    write_scores(scorer.score_files(["alerts/"]), "scores.parquet")
"""

from __future__ import annotations

from brightscan.score.backends import BACKENDS, PRECISIONS
from brightscan.score.results import REJECTION_COLUMNS, SCORE_COLUMNS, ScoreResults, rejected_path, write_scores
from brightscan.score.scorer import Scorer, score_chunk

__all__ = [
    "BACKENDS", "PRECISIONS", "REJECTION_COLUMNS", "SCORE_COLUMNS", "ScoreResults", "Scorer", "rejected_path",
    "score_chunk", "write_scores",
]
