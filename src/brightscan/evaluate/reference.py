"""Record a model's reference distribution from a dataset split after the fact: for models that
did not come out of ``brightscan train`` (imported Keras or btsbot 2 models, or ones trained before
brightscan recorded references), so the nightly drift check has something to compare with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["record_reference"]


def record_reference(model_dir: str | Path, dataset_dir: str | Path, *, split: str = "val",
                     batch_size: int = 256) -> Path:
    """Score ``dataset_dir/<split>`` with the model and write its ``reference.json``.

    Parameters
    ----------
    model_dir : path
        The model directory; ``reference.json`` is written there and listed in ``model.json``.
    dataset_dir : path
        A dataset built by ``brightscan dataset build`` with the model's feature set.
    split : str
        Which split (``val``: the data the model was chosen on, as training records it).
    batch_size : int
        Alerts read and scored at a time (bounds memory).

    Returns
    -------
    Path
        The written ``reference.json``.
    """
    from brightscan.evaluate.report import _score_split
    from brightscan.model.reference import build_reference, write_reference
    from brightscan.score.scorer import Scorer

    scorer = Scorer(model_dir, batch_size=min(batch_size, 64))
    table, logits, _ = _score_split(scorer, Path(dataset_dir), split, batch_size)
    names = list(scorer.loaded.feature_names)
    scores = np.exp(-np.logaddexp(0.0, -np.asarray(logits, np.float64) / scorer.temperature))
    reference = build_reference(table[names].to_numpy(np.float64), names, scores, split=split,
                                provenance={"dataset": str(dataset_dir), "recorded_after_training": True})
    return write_reference(model_dir, reference)
