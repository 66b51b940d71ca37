"""A measured ceiling: gradient boosting on the causal features alone, scored like the networks.

scikit-learn's ``HistGradientBoostingClassifier`` is fitted on the training split's features (the
same N_max thinning the networks train on, the same per-alert class weights), with no image, and
scores the *same* unthinned test alerts. Its alert AUC and its object-level completeness and purity
under the same policies, with the same bootstrap intervals over objects, are the floor every
network must beat and a measure of what the simulator's features allow: a network that cannot
beat this row is not using its images.

The fitted booster is a measurement, not a model file: only its scores and figures are written
(``OUT/ceiling.json``, ``OUT/scores.parquet``), never a pickle.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.errors import ConfigError, InputError
from brightscan.evaluate.report import EvaluateConfig
from brightscan.serial import to_jsonable

__all__ = ["CeilingConfig", "ISSUE_FEATURES", "run_ceiling"]

#: The four features of the issue's rough estimate (brightness, brightest so far, age, detections).
ISSUE_FEATURES = ("magpsf", "peakmag_so_far", "age", "ndethist")


@dataclass(frozen=True)
class CeilingConfig:
    """Settings of one ceiling measurement."""

    features: tuple[str, ...] = ()  # feature columns (empty: the dataset's whole feature set)
    seed: int = 0  # random_state of the booster; seed of the bootstrap intervals stays 0, as evaluate's
    max_iter: int = 300  # boosting iterations (early stopping on 10% of training alerts)
    learning_rate: float = 0.1  # shrinkage
    class_weighting: bool = True  # balanced per-alert class weights, as the networks' recipe
    negative_weight: float = 1.0  # extra factor on the negatives' weight, as the recipe's negative_weight
    evaluation: EvaluateConfig = EvaluateConfig()  # object selection and policy search, as a network's evaluate

    def __post_init__(self) -> None:
        from brightscan.train.recipe import check_negative_weight

        check_negative_weight(self.negative_weight)


def _load(dataset_dir: Path, split: str, names: tuple[str, ...]) -> Any:
    from brightscan.dataset import open_split

    data = open_split(dataset_dir, split, names)
    data.reader.close()
    return data


def _fit(train: Any, config: CeilingConfig, rows: np.ndarray) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from brightscan.train.trainer import class_loss_weights

    y = train.labels[rows].astype(int)
    w0, w1 = class_loss_weights(y, balanced=config.class_weighting, negative_weight=config.negative_weight)
    booster = HistGradientBoostingClassifier(max_iter=config.max_iter, learning_rate=config.learning_rate,
                                             early_stopping=True, random_state=config.seed)
    return booster.fit(train.features[rows], y, sample_weight=np.where(y == 1, w1, w0))


def run_ceiling(dataset_dir: str | Path, out_dir: str | Path, config: CeilingConfig = CeilingConfig(), *,
                scanner_saves: str | Path | None = None, nmax: int = 60) -> dict[str, Any]:
    """Fit the booster on ``train`` (thinned as the networks), score ``val`` and ``test``, evaluate.

    Parameters
    ----------
    dataset_dir : path
        A dataset built by ``brightscan dataset build``.
    out_dir : path
        Where ``ceiling.json`` and ``scores.parquet`` (test alerts' scores) are written.
    config : CeilingConfig
    scanner_saves : path, optional
        ``scanner_saves.csv`` of the simulation (identification delays), as ``evaluate``.
    nmax : int
        The training recipe's N_max (the networks' default 60).

    Returns
    -------
    dict
        What ``ceiling.json`` holds: ``alert``, ``policies``, ``faint_dim_sn``,
        ``outcomes_m_lt_18_5`` and ``sources``, computed by the evaluation's own
        ``score_metrics`` exactly as in a network's ``metrics.json``; the booster's settings.
    """
    from brightscan.dataset import read_dataset_card
    from brightscan.evaluate.objects import read_scanner_saves
    from brightscan.evaluate.report import score_metrics

    dataset_dir, out = Path(dataset_dir), Path(out_dir)
    card = read_dataset_card(dataset_dir)
    names = tuple(config.features) or tuple(card["features"])
    unknown = [n for n in names if n not in card["features"] and n != "magpsf"]
    if unknown:
        raise ConfigError(f"the dataset does not store feature(s) {', '.join(unknown)}")
    start = time.perf_counter()
    splits = {s: _load(dataset_dir, s, names) for s in ("train", "val", "test")}
    build = card.get("build") or {}
    rows = splits["train"].thinned_indices(nmax, build.get("thinning", "latest"), int(card.get("seed") or 0))
    if len(splits["test"]) == 0 or len(splits["val"]) == 0:
        raise InputError(f"{dataset_dir}: the ceiling needs non-empty val and test splits")
    booster = _fit(splits["train"], config, rows)
    scores = {s: booster.predict_proba(splits[s].features)[:, 1] for s in ("val", "test")}
    test, val = splits["test"], splits["val"]
    saves = read_scanner_saves(scanner_saves) if scanner_saves is not None else None
    scored = score_metrics(test.table, scores["test"], val.table, scores["val"], config.evaluation, saves).metrics
    result = {
        "model": {"kind": "HistGradientBoostingClassifier", "features": list(names),
                  "n_iter": int(booster.n_iter_), "train_alerts": int(len(rows)),
                  "thinning": build.get("thinning", "latest"), "nmax": nmax},
        "config": asdict(config), "dataset": str(dataset_dir),
        **{k: scored[k] for k in ("alert", "policies", "faint_dim_sn", "gt1_operating_point", "outcomes_m_lt_18_5",
                                  "sources")},
        "seconds": time.perf_counter() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    test.table[["candid", "objectId", "jd", "magpsf", "label"]].assign(score=scores["test"]).to_parquet(
        out / "scores.parquet", index=False)
    result = to_jsonable(result)
    (out / "ceiling.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
