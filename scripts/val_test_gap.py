"""Where a val/test gap comes from: per split, the share of alerts per source class, the alert
AUC, and how many negative sources of each class the gt1 policy passes.

    python scripts/val_test_gap.py runs/lc/n900                       # the row's mi_cnn.icml2023
    python scripts/val_test_gap.py runs/lc/n900 --model runs/lc/published/model

Reads ``ROW/survey/labels.csv`` (the simulator's class per source) and scores ``ROW/dataset``'s
val and test splits (unthinned) with the model. Alert-level figures weight each source by its
number of alerts, so a split that happens to hold a few long-lived AGN (100+ alerts each, all
trivially negative) gets a higher AUC than one holding more dim supernovae.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from brightscan import metrics as M


def split_scores(model_dir: Path, dataset_dir: Path, split: str) -> pd.DataFrame:
    """The split's alert table with a ``score`` column."""
    from brightscan.dataset import open_split
    from brightscan.score.scorer import Scorer

    scorer = Scorer(model_dir, num_threads=1)
    data = open_split(dataset_dir, split, feature_names=scorer.loaded.feature_names)
    logits = np.concatenate([scorer.predict_logits(data.reader.read(rows), data.features[rows])
                             for rows in np.array_split(np.arange(len(data)), max(1, len(data) // 256))])
    return data.table.assign(score=M.sigmoid(logits / scorer.temperature))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("row", type=Path, help="A learning-curve row folder, e.g. runs/lc/n900")
    parser.add_argument("--model", type=Path, help="Model directory (default: ROW/models/mi_cnn.icml2023)")
    args = parser.parse_args()
    model = args.model or args.row / "models" / "mi_cnn.icml2023"
    classes = pd.read_csv(args.row / "survey" / "labels.csv").set_index("objectId")["class"]
    for split in ("val", "test"):
        t = split_scores(model, args.row / "dataset", split)
        t["cls"] = classes.reindex(t["objectId"]).to_numpy()
        per = t.groupby("objectId").agg(label=("label", "first"), cls=("cls", "first"), top=("score", "max"))
        neg = per[per["label"] == 0]
        share = (t.groupby("cls").size() / len(t)).round(2).to_dict()
        passing = {c: f"{int((g['top'] >= 0.5).sum())}/{len(g)}" for c, g in neg.groupby("cls")}
        print(f"{split}: {len(per)} sources, {len(t)} alerts, alert AUC {M.roc_auc(t['label'], t['score']):.3f}")
        print(f"  share of alerts by class: {share}")
        print(f"  negative sources passed by gt1, by class: {passing}")


if __name__ == "__main__":
    main()
