"""Which alerts the report shows as triplets, and their pictures.

Galleries, each a list of alerts of the evaluated split with their score:

* the highest-scoring negatives and the lowest-scoring positives (alert level);
* the earliest saves of the optimised policy (deciding alerts, earliest against the scanners);
* the false positives of ``gt1`` (its deciding alert on objects that are not bright);
* the misses of the optimised policy (bright objects it never passed: their best alert).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brightscan.policy import BasePolicy, ObjectHistory, first_pass

#: Pictures per gallery (each is about 15 kB in the page).
PER_GALLERY = 12


def _row(table: pd.DataFrame, index: int, score: float, note: str = "") -> dict[str, Any]:
    rec = table.iloc[index]
    return {"row": int(index), "objectId": str(rec["objectId"]), "candid": int(rec["candid"]),
            "score": float(score), "magpsf": float(rec["magpsf"]), "label": int(rec["label"]),
            "jd": float(rec["jd"]), "note": note}


def alert_galleries(table: pd.DataFrame, scores: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """Highest-scoring negatives and lowest-scoring positives of the split."""
    labels = table["label"].to_numpy(int)
    neg, pos = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    top_neg = neg[np.argsort(-scores[neg], kind="stable")][:PER_GALLERY]
    low_pos = pos[np.argsort(scores[pos], kind="stable")][:PER_GALLERY]
    return {"top_negatives": [_row(table, i, scores[i]) for i in top_neg],
            "low_positives": [_row(table, i, scores[i]) for i in low_pos]}


def object_galleries(table: pd.DataFrame, scores: np.ndarray, objects: Sequence[ObjectHistory],
                     gt1: BasePolicy, optimised: BasePolicy) -> dict[str, list[dict[str, Any]]]:
    """Earliest saves and misses of the optimised policy, false positives of gt1."""
    where = {int(c): i for i, c in enumerate(table["candid"].to_numpy())}
    saves, false_pos, misses = [], [], []
    for obj in objects:
        index = _deciding_index(optimised, obj)
        if obj.label == 1 and index is None:
            best = max(obj.alerts, key=lambda a: a.score)
            misses.append(_row(table, where[best.candid], best.score, "best alert; never passed"))
        elif obj.label == 1:
            alert = obj.alerts[index]
            lead = None if obj.save_jd is None else alert.jd - obj.save_jd
            note = (f"{lead:+.2f} d vs scanners" if lead is not None
                    else f"{alert.jd - obj.alerts[0].jd:.2f} d after first alert")
            saves.append((lead if lead is not None else alert.jd - obj.alerts[0].jd,
                          _row(table, where[alert.candid], alert.score, note)))
        first = _deciding_index(gt1, obj)
        if obj.label == 0 and first is not None:
            alert = obj.alerts[first]
            false_pos.append(_row(table, where[alert.candid], alert.score, "deciding alert"))
    saves.sort(key=lambda pair: pair[0])
    false_pos.sort(key=lambda r: -r["score"])
    misses.sort(key=lambda r: -r["score"])
    return {"earliest_saves": [r for _, r in saves[:PER_GALLERY]],
            "gt1_false_positives": false_pos[:PER_GALLERY], "misses": misses[:PER_GALLERY],
            "counts": {"gt1_false_positives": len(false_pos), "misses": len(misses),
                       "earliest_saves": len(saves)}}


def attach_pictures(galleries: dict[str, Any], dataset_dir: Path, split: str) -> None:
    """Add a ``png`` data URI of its triplet to every gallery entry (in place)."""
    from brightscan.dataset import open_split
    from brightscan.evaluate.plots import triplet_png

    entries = [e for key, items in galleries.items() if key != "counts" for e in items]
    if not entries:
        return
    data = open_split(dataset_dir, split)
    try:
        rows = sorted({e["row"] for e in entries})
        triplets = dict(zip(rows, data.reader.read(np.array(rows))))
    finally:
        data.reader.close()
    for entry in entries:
        png = base64.b64encode(triplet_png(triplets[entry["row"]])).decode("ascii")
        entry["png"] = f"data:image/png;base64,{png}"


def _deciding_index(policy: BasePolicy, obj: ObjectHistory) -> int | None:
    """Index of the alert at which the decision core first passes the object (None: never)."""
    return first_pass(policy, obj.alerts)
