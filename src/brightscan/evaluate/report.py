"""``brightscan evaluate``: score a dataset split, evaluate per alert and per source, write a report.

Flow for each model (and the ``compare`` model alike):

1. score every alert of the evaluated split and of ``val`` (no N_max thinning) with the model
   package's :class:`~brightscan.score.scorer.Scorer`, on the dataset's triplets and the feature
   columns the model's card names;
2. optionally fit a temperature on the ``val`` logits and store it in the model directory;
3. alert metrics (ROC/AUC, accuracy/precision/recall at 0.5, outcomes by magnitude, calibration);
4. per-source histories with the paper's selection; the fixed policies, and a
   :class:`~brightscan.policy.PolicySearch` fitted on the ``val`` sources only and applied once to
   the evaluated split.

Outputs: ``REPORT/metrics.json``, ``REPORT/policy.json`` (the optimised policy, which autoscan reads
with ``--policy``), PNG figures, ``REPORT/index.html`` (self-contained).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brightscan import metrics as M
from brightscan.errors import InputError
from brightscan.evaluate import plots
from brightscan.evaluate.objects import (
    apply_policy,
    build_objects,
    read_scanner_saves,
    select_objects,
    object_arrays,
)
from brightscan.policy import PolicySearch, ObjectHistory, create_policy
from brightscan.serial import to_jsonable

log = logging.getLogger(__name__)

#: Fixed policies reported for every model (plus ``optimised``, the search fitted on val).
DEFAULT_POLICIES: tuple[str, ...] = ("gt1", "gt2", "gt3", "bts_prod", "bts_prod_peak")
OPTIMISED = "optimised"


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation run."""

    split: str = "test"  # split evaluated; the policy search and temperature use "val" only
    policies: tuple[str, ...] = DEFAULT_POLICIES  # fixed policies to report (create_policy names)
    target_completeness: float = 0.99  # policy search: minimum completeness on val
    search_grid: dict[str, list[Any]] | None = None  # policy search grid (None: the default grid)
    calibrate: bool = False  # fit a temperature on val logits and store it in the model dir
    batch_size: int = 256  # alerts per model call
    min_alerts: int = 2  # source selection: at least this many alerts
    bright_peak_limit: float = 18.5  # source selection: bright sources must peak at least this bright
    n_reliability_bins: int = 10  # equal-width score bins for ECE and the reliability diagram


@dataclass
class ModelEvaluation:
    """Everything computed for one model (numbers for metrics.json, arrays for the figures)."""

    name: str  # model_id/model_version label
    metrics: dict[str, Any]  # the metrics.json section of this model
    figures: dict[str, Any] = field(default_factory=dict)  # arrays the plots need


def _score_split(scorer: Any, dataset_dir: Path, split: str, batch_size: int) -> tuple[Any, np.ndarray]:
    """``(table, raw logits)`` for every row of ``DS/<split>`` (no thinning)."""
    from brightscan.dataset import open_split

    data = open_split(dataset_dir, split, feature_names=scorer.loaded.feature_names)
    logits = np.empty(len(data), dtype=np.float64)
    uses_image = scorer.loaded.config.uses_image
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        trip = data.reader.read(rows) if uses_image else None
        logits[rows] = scorer.predict_logits(trip, data.features[rows])
    data.reader.close()
    if not np.all(np.isfinite(logits)):
        raise InputError(f"{dataset_dir}/{split}: the model gave non-finite logits for "
                         f"{int(np.sum(~np.isfinite(logits)))} alerts")
    return data.table, logits


def _selected_objects(table: Any, scores: np.ndarray, saves: dict[str, float] | None,
                      config: EvaluateConfig) -> list[ObjectHistory]:
    return select_objects(build_objects(table, scores, saves), config.min_alerts, config.bright_peak_limit)


def _policy_metrics(policy: Any, sources: Sequence[ObjectHistory]) -> tuple[dict[str, Any], dict[str, Any]]:
    arr = object_arrays(sources)
    passed, pass_jd = apply_policy(policy, sources)
    summary = M.source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
    summary["policy"] = policy.to_dict()
    fig = {"by_peak": M.metrics_by_peak(arr["label"], passed, arr["peak_mag"]),
           "delays": M.identification_delays(arr["label"], passed, pass_jd, arr["save_jd"])}
    return summary, fig


def evaluate_model(model_dir: str | Path, dataset_dir: str | Path, config: EvaluateConfig,
                   saves: dict[str, float] | None = None) -> ModelEvaluation:
    """Score, calibrate (optionally), and evaluate one model on one dataset."""
    from brightscan.model import set_temperature
    from brightscan.score.scorer import Scorer

    model_dir, dataset_dir = Path(model_dir), Path(dataset_dir)
    scorer = Scorer(model_dir, batch_size=min(config.batch_size, 64))
    name = f"{scorer.model_id}/{scorer.model_version}"
    test_table, test_logits = _score_split(scorer, dataset_dir, config.split, config.batch_size)
    val_table, val_logits = _score_split(scorer, dataset_dir, "val", config.batch_size)
    y_test = test_table["label"].to_numpy(int)
    temperature, calibration = scorer.temperature, {}
    if config.calibrate:
        calibration["ece_before"] = M.expected_calibration_error(
            y_test, M.sigmoid(test_logits / temperature), config.n_reliability_bins)
        temperature = M.fit_temperature(val_table["label"].to_numpy(int), val_logits)
        set_temperature(model_dir, temperature)
        calibration["written_to"] = str(model_dir / "model.json")  # the CLI says so
        calibration["temperature_before"] = float(scorer.temperature)
        log.info("stored temperature %.4f in %s", temperature, model_dir)
    test_scores, val_scores = M.sigmoid(test_logits / temperature), M.sigmoid(val_logits / temperature)

    alert = M.alert_metrics(y_test, test_scores)
    calibration.update(ece=M.expected_calibration_error(y_test, test_scores, config.n_reliability_bins),
                       temperature=float(temperature), fitted=config.calibrate)
    figs: dict[str, Any] = {
        "roc": (*M.roc_curve(y_test, test_scores)[:2], alert["auc"]),
        "outcomes": M.outcomes_by_magnitude(y_test, test_scores, test_table["magpsf"].to_numpy(float)),
        "reliability": M.reliability_bins(y_test, test_scores, config.n_reliability_bins),
        "policies": {},
    }
    test_sources = _selected_objects(test_table, test_scores, saves, config)
    val_sources = _selected_objects(val_table, val_scores, saves, config)
    policies: dict[str, Any] = {}
    for pname in config.policies:
        policies[pname], figs["policies"][pname] = _policy_metrics(create_policy(pname), test_sources)
    search = PolicySearch(config.target_completeness, config.search_grid).fit(val_sources)
    policies[OPTIMISED], figs["policies"][OPTIMISED] = _policy_metrics(search, test_sources)
    policies[OPTIMISED]["validation"] = {**search.best_score_, "target_met": search.target_met_,
                                         "n_candidates": search.n_candidates_}
    figs["frontier"] = (search.frontier_, search.best_score_, config.target_completeness)
    metrics = {
        "model": {"dir": str(model_dir), "model_id": scorer.model_id, "model_version": scorer.model_version},
        "alert": alert, "policies": policies, "calibration": calibration,
        "search": {"frontier": search.frontier_, "target_completeness": config.target_completeness},
        "sources": {"n_selected": len(test_sources), "n_selected_val": len(val_sources)},
    }
    return ModelEvaluation(name, metrics, figs)


def evaluate(model_dir: str | Path, dataset_dir: str | Path, *, out: str | Path,
             split: str = "test", scanner_saves: str | Path | None = None,
             compare: str | Path | None = None, calibrate: bool = False,
             config: EvaluateConfig | None = None) -> dict[str, Any]:
    """Evaluate ``model_dir`` (and ``compare``) on ``dataset_dir`` and write the report to ``out``.

    Parameters
    ----------
    model_dir, dataset_dir : path
        A saved model directory and a dataset directory (``DS/{val,<split>}``).
    out : path
        Report directory (created): ``metrics.json``, ``*.png``, ``index.html``.
    split : str
        Split to evaluate; must not be ``val``, which fits the policy search.
    scanner_saves : path, optional
        CSV ``objectId,save_jd`` for the identification delay.
    compare : path, optional
        A second model evaluated the same way, reported side by side.
    calibrate : bool
        Fit and store a temperature on ``val`` for each model (``config.calibrate`` otherwise).

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    base = config or EvaluateConfig()
    config = dataclasses.replace(base, split=split, calibrate=calibrate or base.calibrate)
    if config.split == "val":
        raise InputError("cannot evaluate on 'val': the policy search and calibration are fitted there")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saves = read_scanner_saves(scanner_saves) if scanner_saves is not None else None
    main = evaluate_model(model_dir, dataset_dir, config, saves)
    other = evaluate_model(compare, dataset_dir, config, saves) if compare is not None else None
    result: dict[str, Any] = {
        "split": config.split, "dataset": str(dataset_dir), **main.metrics,
        "scanner_saves": None if scanner_saves is None else str(scanner_saves),
    }
    if other is not None:
        result["compare"] = other.metrics
    result = to_jsonable(result)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    # the policy the search chose, ready for ``brightscan autoscan run --policy REPORT/policy.json``
    (out / "policy.json").write_text(json.dumps(result["policies"][OPTIMISED]["policy"], indent=2) + "\n",
                                     encoding="utf-8")
    images = write_figures(main, other, out)
    from brightscan.evaluate.html import write_html

    write_html(result, images, out / "index.html")
    log.info("report written to %s", out)
    return result


def write_figures(main: ModelEvaluation, other: ModelEvaluation | None, out: Path) -> dict[str, Path]:
    """Write the PNGs of one report; returns ``{figure name: path}``."""
    models = [main] + ([other] if other is not None else [])
    label = {id(main): main.name}
    if other is not None:  # two copies of one model still get two legend entries
        label[id(other)] = other.name if other.name != main.name else f"{other.name} (compare)"
    images = {"roc": plots.plot_roc({label[id(m)]: m.figures["roc"] for m in models}, out / "roc.png")}
    for i, m in enumerate(models):
        suffix = "" if i == 0 else "_compare"
        images[f"outcomes{suffix}"] = plots.plot_outcomes_by_magnitude(
            m.figures["outcomes"], out / f"outcomes{suffix}.png", title=f"{label[id(m)]}: outcomes by magnitude")
    shown = [(f"{label[id(m)]} {p}", m, p) for m in models for p in ("gt1", OPTIMISED) if p in m.figures["policies"]]
    images["completeness_purity"] = plots.plot_completeness_purity(
        {k: m.figures["policies"][p]["by_peak"] for k, m, p in shown},
        {k: m.metrics["policies"][p] for k, m, p in shown}, out / "completeness_purity.png")
    images["delay"] = plots.plot_delay_histogram(
        {k: m.figures["policies"][p]["delays"] for k, m, p in shown}, out / "delay.png")
    images["reliability"] = plots.plot_reliability(
        {label[id(m)]: m.figures["reliability"] for m in models}, out / "reliability.png")
    frontier, chosen, target = main.figures["frontier"]
    images["frontier"] = plots.plot_frontier(frontier, chosen, target, out / "frontier.png")
    return images
