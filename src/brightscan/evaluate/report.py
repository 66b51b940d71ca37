"""``brightscan evaluate``: score a dataset split, evaluate per alert and per source, write a report.

Flow for each model (and the ``compare`` model alike):

1. score every alert of the evaluated split and of ``val`` (no N_max thinning) with the score
   package's :class:`~brightscan.score.scorer.Scorer`, on the dataset's triplets and the feature
   columns the model's card names; an alert whose score is not finite is a rejection
   (``REPORT/rejected.parquet``, counted in ``metrics.json``'s ``rejected``), not a crash;
2. optionally fit a temperature on the ``val`` logits: the scores use it, and the calibrated model is
   written as a new version beside the report (``REPORT/calibrated-model``), never into the model read;
   optionally the model with its 0.5 moved to gt1's operating point on ``val`` (the highest
   threshold at which gt1 keeps the target completeness there), ``REPORT/operating-point-model``
   (and ``operating-point-compare``, each at its own model's point);
3. alert metrics (ROC/AUC, accuracy/precision/recall at 0.5, outcomes by magnitude, calibration);
4. per-source histories with the paper's selection; the fixed policies, and a
   :class:`~brightscan.policy.PolicySearch` fitted on the ``val`` objects only and applied once to
   the evaluated split.

Outputs: ``REPORT/metrics.json``, ``REPORT/policy.json`` (the optimised policy, which autoscan reads
with ``--policy``), ``REPORT/rejected.parquet``, PNG figures, ``REPORT/index.html`` (self-contained),
with calibration ``REPORT/calibrated-model`` (and ``calibrated-compare``), and with
``--operating-point`` ``REPORT/operating-point-model`` (and ``operating-point-compare``).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brightscan import metrics as M
from brightscan.errors import InputError
from brightscan.evaluate import plots
from brightscan.evaluate.gallery import alert_galleries, attach_pictures, object_galleries
from brightscan.evaluate.objects import apply_policy, build_objects, read_scanner_saves, select_objects, object_arrays
from brightscan.policy import GtN, ObjectHistory, PolicySearch, create_policy
from brightscan.policy.search import DEFAULT_GRID
from brightscan.serial import to_jsonable

log = logging.getLogger(__name__)

#: Called with the number of alerts just scored (progress bars).
Progress = Callable[[int], None]

#: Fixed policies reported for every model (plus ``optimised``, the search fitted on val).
DEFAULT_POLICIES: tuple[str, ...] = ("gt1", "gt2", "gt3", "bts_prod", "bts_prod_peak",
                                     "bts_p1", "bts_p2", "prod_p1", "prod_p2")  # the last four: btsbot 2's val.py
OPTIMISED = "optimised"


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation run."""

    split: str = "test"  # split evaluated; the policy search and temperature use "val" only
    policies: tuple[str, ...] = DEFAULT_POLICIES  # fixed policies to report (create_policy names)
    target_completeness: float = 0.99  # policy search: minimum completeness on val
    search_grid: dict[str, list[Any]] | None = None  # policy search grid (None: the default grid)
    calibrate: bool = False  # fit a temperature on val logits; write REPORT/calibrated-model with it
    operating_point: bool = False  # write REPORT/operating-point-model: 0.5 moved to gt1's val operating point
    batch_size: int = 256  # alerts per model call
    min_alerts: int = 2  # source selection: at least this many alerts
    bright_peak_limit: float = 18.5  # object selection: bright objects must peak at least this bright
    n_reliability_bins: int = 10  # equal-width score bins for ECE and the reliability diagram


@dataclass
class ModelEvaluation:
    """Everything computed for one model (numbers for metrics.json, arrays for the figures)."""

    name: str  # model_id/model_version label
    metrics: dict[str, Any]  # the metrics.json section of this model
    figures: dict[str, Any] = field(default_factory=dict)  # arrays the plots need
    rejections: list[Any] = field(default_factory=list)  # alerts left out (non-finite score)


def _score_split(scorer: Any, dataset_dir: Path, split: str, batch_size: int,
                 progress: Progress | None = None) -> tuple[Any, np.ndarray, list[Any]]:
    """``(table, raw logits, rejections)`` for every row of ``DS/<split>`` (no thinning), scored
    by the score package; a row whose logit is not finite is a rejection (stage ``score``) and is
    left out of the table and the logits, as it would be everywhere else."""
    from brightscan.dataset import open_split
    from brightscan.score.scorer import reject_non_finite

    data = open_split(dataset_dir, split, feature_names=scorer.loaded.feature_names)
    uses_image = scorer.loaded.config.uses_image
    try:
        logits = scorer.predict_stored(
            len(data), lambda rows: (data.reader.read(rows) if uses_image else None, data.features[rows]),
            rows_per_read=batch_size, on_rows=progress)
    finally:
        data.reader.close()
    table = data.table
    identity = table[["candid", "objectId"]].assign(source=f"{dataset_dir}/{split}").to_dict("records")
    finite, rejections = reject_non_finite(identity, logits)
    if rejections:
        log.warning("%s/%s: %d alert(s) with a non-finite score left out (%s)", dataset_dir, split,
                    len(rejections), ", ".join(str(r.candid) for r in rejections[:5]))
        table = table[finite].reset_index(drop=True)
    return table, logits[finite], rejections


def _selected_objects(table: Any, scores: np.ndarray, saves: dict[str, float] | None,
                      config: EvaluateConfig) -> list[ObjectHistory]:
    return select_objects(build_objects(table, scores, saves), config.min_alerts, config.bright_peak_limit)


def peak_bins(objects: Sequence[ObjectHistory], step: float = 0.5) -> np.ndarray:
    """Peak-magnitude bin edges covering every object (at least the paper's 15-19 mag)."""
    peaks = np.array([s.observed_peak for s in objects], float)
    peaks = peaks[np.isfinite(peaks)]
    lo = min(15.0, np.floor(peaks.min() / step) * step) if peaks.size else 15.0
    hi = max(19.0, (np.floor(peaks.max() / step) + 1) * step) if peaks.size else 19.0
    return np.arange(lo, hi + step / 2, step)


def _policy_metrics(policy: Any, objects: Sequence[ObjectHistory],
                    bins: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    arr = object_arrays(objects)
    passed, pass_jd = apply_policy(policy, objects)
    summary = M.source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
    # 95% intervals from a seeded bootstrap over objects: completeness_ci, purity_ci, median_delay_days_ci
    summary.update(M.bootstrap_source_intervals(arr["label"], passed, pass_jd, arr["save_jd"], seed=0))
    summary["policy"] = policy.to_dict()
    by_peak = M.metrics_by_peak(arr["label"], passed, arr["peak_mag"], bins=bins)
    by_peak["n_sources"] = np.histogram(arr["peak_mag"], bins=bins)[0]
    fig = {"by_peak": by_peak,
           "delays": M.identification_delays(arr["label"], passed, pass_jd, arr["save_jd"])}
    return summary, fig


def gt1_operating_point(val_objects: Sequence[ObjectHistory], target_completeness: float) -> dict[str, Any] | None:
    """On val: the highest threshold at which gt1 still passes ``target_completeness`` of the
    bright sources (a grid of 0.01), its purity, and the ``train --negative-weight`` that would put
    a retrained model's 0.5 there, ``t / (1 - t)`` (docs/training.md, *Where gt1's 0.5 lies*).

    gt1 passes a source once its highest score so far reaches the threshold, so a source passes at
    ``t`` exactly when its highest score is ``>= t``. None without bright sources on val.
    """
    labels = np.array([o.label for o in val_objects], int)
    best = np.array([max((a.score for a in o.alerts), default=-1.0) for o in val_objects], float)
    n_bright = int(labels.sum())
    if n_bright == 0:
        return None
    found = None
    for threshold in np.round(np.arange(0.01, 1.0, 0.01), 2):
        passed = best >= threshold
        kept = int((passed & (labels == 1)).sum())
        if kept / n_bright < target_completeness:
            break
        found = (float(threshold), kept / n_bright, kept / max(int(passed.sum()), 1))
    if found is None:
        return {"target_completeness": target_completeness, "threshold": None, "negative_weight": None}
    threshold, completeness, purity = found
    return {"target_completeness": target_completeness, "threshold": threshold, "completeness": completeness,
            "purity": purity, "negative_weight": round(threshold / (1.0 - threshold), 3)}


def _operating_point_on_test(val_objects: Sequence[ObjectHistory], test_objects: Sequence[ObjectHistory],
                             bins: np.ndarray, config: EvaluateConfig) -> dict[str, Any] | None:
    """:func:`gt1_operating_point` on val, and as ``on_test`` gt1 at that threshold on the test
    objects: what the model written with ``--operating-point`` (its 0.5 moved there) gives under gt1."""
    point = gt1_operating_point(val_objects, config.target_completeness)
    if point is not None and point["threshold"] is not None:
        point["on_test"] = _policy_metrics(create_policy("gt1", threshold=point["threshold"]), test_objects, bins)[0]
    return point


def threshold_curves(search: PolicySearch, val_objects: Sequence[ObjectHistory],
                     grid: dict[str, list[Any]] | None) -> dict[int, list[dict[str, Any]]]:
    """Validation completeness and purity of the chosen policy's family as its threshold moves,
    one curve per N of the grid (the other cuts as chosen; a chosen btsbot 2 ``*_p2`` policy is
    drawn as the gtN family of its per-alert cuts, without its once-bright gate)."""
    full = {**DEFAULT_GRID, **(grid or {})}
    gtn_keys = set(GtN().get_params())
    best = {k: v for k, v in search.best_.get_params().items() if k in gtn_keys}
    arr = object_arrays(val_objects)
    curves: dict[int, list[dict[str, Any]]] = {}
    for n in full["n"]:
        rows = []
        for threshold in sorted(full["threshold"]):
            params = {**best, "n": int(n), "threshold": float(threshold)}
            passed, pass_jd = apply_policy(GtN.from_dict({"params": params}), val_objects)
            m = M.source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
            rows.append({"params": params, "completeness": m["completeness"], "purity": m["purity"],
                         "n_passed": m["n_passed"]})
        curves[int(n)] = rows
    return curves


def _calibration(y_test: np.ndarray, test_logits: np.ndarray, val_labels: np.ndarray,
                 val_logits: np.ndarray, model_t: float, config: EvaluateConfig) -> dict[str, Any]:
    """ECE at the model's temperature and at one fitted on val (stored only with ``calibrate``)."""
    fitted_t = M.fit_temperature(val_labels, val_logits)
    before = M.sigmoid(test_logits / model_t)
    after = M.sigmoid(test_logits / fitted_t)
    bins = config.n_reliability_bins
    return {"ece_before": M.expected_calibration_error(y_test, before, bins),
            "ece_after": M.expected_calibration_error(y_test, after, bins),
            "temperature_before": float(model_t), "temperature_fitted": float(fitted_t),
            "reliability_before": M.reliability_bins(y_test, before, bins),
            "reliability_after": M.reliability_bins(y_test, after, bins)}


def faint_dim_sn_mean(table: Any, scores: np.ndarray, limit: float = 18.5) -> dict[str, float]:
    """Mean score of the alerts fainter than ``limit`` of dim supernovae (label 0, a class that
    starts with ``SN``), and their count; ``nan`` and 0 where the table has no ``class`` column.

    One such alert scored at or above gt1's threshold passes a dim supernova, so this mean is where
    gt1's purity goes (issue 27's headline figure: 0.39 for an early model, 0.05 for v1.0.1)."""
    if "class" not in table:
        return {"mean_score": float("nan"), "n_alerts": 0}
    classes = table["class"].fillna("").astype(str)
    mask = classes.str.startswith("SN").to_numpy() & (table["label"].to_numpy() == 0) & \
        (table["magpsf"].to_numpy(float) > limit)
    return {"mean_score": float(np.mean(scores[mask])) if mask.any() else float("nan"),
            "n_alerts": int(mask.sum())}


@dataclass
class ScoredSplits:
    """What :func:`score_metrics` computes from the scores of the test and val alerts."""

    metrics: dict[str, Any]  # alert, policies, outcomes_m_lt_18_5, faint_dim_sn, search, sources
    figures: dict[str, Any]  # roc, outcomes, policies, frontier: the arrays the plots need
    test_objects: list[ObjectHistory]  # the selected test objects, with their scored alerts
    search: PolicySearch  # the policy search, fitted on the val objects


def score_metrics(test_table: Any, test_scores: np.ndarray, val_table: Any, val_scores: np.ndarray,
                  config: EvaluateConfig, saves: dict[str, float] | None = None) -> ScoredSplits:
    """The figures of given scores of the test and val alerts.

    Alert level with intervals over objects, every fixed policy on the test objects, the policy
    searched on val and applied to test, Figure 2's outcomes and the faint dim-SN mean. A model's
    evaluation and the features-only ceiling (``brightscan experiment ceiling``) both go through
    here, so their rows are computed alike."""
    y_test = test_table["label"].to_numpy(int)
    alert = M.alert_metrics(y_test, test_scores)
    alert["auc_ci"] = M.bootstrap_auc_interval(y_test, test_scores, test_table["objectId"].to_numpy(), seed=0)
    y_val = val_table["label"].to_numpy(int)  # the same figure on val, to tell a val/test gap from noise
    alert["val_auc"] = M.roc_auc(y_val, val_scores)
    alert["val_auc_ci"] = M.bootstrap_auc_interval(y_val, val_scores, val_table["objectId"].to_numpy(), seed=0)
    figs: dict[str, Any] = {
        "roc": (*M.roc_curve(y_test, test_scores)[:2], alert["auc"]),
        "outcomes": M.outcomes_by_magnitude(y_test, test_scores, test_table["magpsf"].to_numpy(float)),
        "policies": {},
    }
    test_objects = _selected_objects(test_table, test_scores, saves, config)
    val_objects = _selected_objects(val_table, val_scores, saves, config)
    bins = peak_bins(test_objects)
    policies: dict[str, Any] = {}
    for pname in config.policies:
        policies[pname], figs["policies"][pname] = _policy_metrics(create_policy(pname), test_objects, bins)
    search = PolicySearch(config.target_completeness, config.search_grid).fit(val_objects)
    policies[OPTIMISED], figs["policies"][OPTIMISED] = _policy_metrics(search, test_objects, bins)
    on_val = _policy_metrics(search, val_objects, bins)[0]  # the chosen policy on val, with its intervals
    policies[OPTIMISED]["validation"] = {**search.best_score_, "target_met": search.target_met_,
                                         "rule": search.rule_, "n_candidates": search.n_candidates_,
                                         **{k: v for k, v in on_val.items() if k.endswith("_ci")}}
    curves = threshold_curves(search, val_objects, config.search_grid)
    figs["frontier"] = (curves, search.best_score_, config.target_completeness)
    metrics = {
        "alert": alert, "policies": policies,
        "outcomes_m_lt_18_5": M.outcome_fractions(y_test, test_scores, test_table["magpsf"].to_numpy(float) < 18.5),
        "faint_dim_sn": faint_dim_sn_mean(test_table, test_scores),
        "gt1_operating_point": _operating_point_on_test(val_objects, test_objects, bins, config),
        "search": {"frontier": search.frontier_, "target_completeness": config.target_completeness,
                   "threshold_curves": {str(n): rows for n, rows in curves.items()}},
        "sources": {"n_selected": len(test_objects), "n_selected_val": len(val_objects)},
    }
    return ScoredSplits(metrics, figs, test_objects, search)


def evaluate_model(model_dir: str | Path, dataset_dir: str | Path, config: EvaluateConfig,
                   saves: dict[str, float] | None = None, progress: Progress | None = None,
                   galleries: bool = False) -> ModelEvaluation:
    """Score, calibrate (optionally), and evaluate one model on one dataset."""
    from brightscan.score.scorer import Scorer

    model_dir, dataset_dir = Path(model_dir), Path(dataset_dir)
    scorer = Scorer(model_dir, batch_size=min(config.batch_size, 64))
    name = f"{scorer.model_id}/{scorer.model_version}"
    test_table, test_logits, test_rejected = _score_split(scorer, dataset_dir, config.split, config.batch_size,
                                                          progress)
    val_table, val_logits, val_rejected = _score_split(scorer, dataset_dir, "val", config.batch_size, progress)
    y_test = test_table["label"].to_numpy(int)
    cal = _calibration(y_test, test_logits, val_table["label"].to_numpy(int), val_logits,
                       scorer.temperature, config)
    temperature = cal["temperature_fitted"] if config.calibrate else scorer.temperature
    test_scores, val_scores = M.sigmoid(test_logits / temperature), M.sigmoid(val_logits / temperature)
    scored = score_metrics(test_table, test_scores, val_table, val_scores, config, saves)
    figs = scored.figures
    calibration = {k: v for k, v in cal.items() if not k.startswith("reliability")}
    calibration.update(ece=cal["ece_after"] if config.calibrate else cal["ece_before"],
                       temperature=float(temperature), fitted=config.calibrate)
    figs["reliability"] = {f"before (T {cal['temperature_before']:.2f})": cal["reliability_before"],
                           f"after (T {cal['temperature_fitted']:.2f}, fitted on val)": cal["reliability_after"]}
    metrics = {
        "model": {"dir": str(model_dir), "model_id": scorer.model_id, "model_version": scorer.model_version},
        "alert": scored.metrics["alert"], "policies": scored.metrics["policies"], "calibration": calibration,
        **scored.metrics, "rejected": {config.split: len(test_rejected), "val": len(val_rejected)},
    }
    if galleries:
        found = alert_galleries(test_table, test_scores)
        found.update(object_galleries(test_table, test_scores, scored.test_objects, create_policy("gt1"),
                                      scored.search))
        metrics["galleries"] = found
    return ModelEvaluation(name, metrics, figs, [*test_rejected, *val_rejected])


def evaluate(model_dir: str | Path, dataset_dir: str | Path, *, out: str | Path,
             split: str = "test", scanner_saves: str | Path | None = None,
             compare: str | Path | None = None, calibrate: bool = False,
             config: EvaluateConfig | None = None, progress: Progress | None = None,
             command: str | None = None) -> dict[str, Any]:
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
        Fit a temperature on ``val`` for each model (``config.calibrate`` otherwise); the scores use
        it, and each model is written with it as a new version into ``out/calibrated-model`` (and
        ``out/calibrated-compare``). The models read are never changed.
    progress : callable, optional
        Called with the number of alerts scored after each batch (val and ``split``, per model).
    command : str, optional
        The command line that made the report, for its header.

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    from brightscan import __version__
    from brightscan.dataset.card import read_dataset_card
    from brightscan.model import read_card

    base = config or EvaluateConfig()
    config = dataclasses.replace(base, split=split, calibrate=calibrate or base.calibrate)
    if config.split == "val":
        raise InputError("cannot evaluate on 'val': the policy search and calibration are fitted there")
    out = Path(out)
    saves = read_scanner_saves(scanner_saves) if scanner_saves is not None else None
    main = evaluate_model(model_dir, dataset_dir, config, saves, progress, galleries=True)
    other = evaluate_model(compare, dataset_dir, config, saves, progress) if compare is not None else None
    out.mkdir(parents=True, exist_ok=True)
    if config.calibrate:
        _write_calibrated(main, model_dir, out / "calibrated-model")
        if other is not None:
            _write_calibrated(other, compare, out / "calibrated-compare")
    if config.operating_point:
        _write_operating_point(main, out / "calibrated-model" if config.calibrate else model_dir,
                               out / "operating-point-model")
        if other is not None:
            _write_operating_point(other, out / "calibrated-compare" if config.calibrate else compare,
                                   out / "operating-point-compare")
    _write_rejections([main, *([other] if other is not None else [])], out / "rejected.parquet")
    card = read_card(model_dir)
    result: dict[str, Any] = {
        "split": config.split, "dataset": str(dataset_dir), **main.metrics,
        "scanner_saves": None if scanner_saves is None else str(scanner_saves),
        "provenance": {"command": command, "brightscan_version": __version__,
                       "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "model_card": {k: card.get(k) for k in ("model_id", "model_version", "preprocessing_version",
                                                              "provenance", "features")},
                       "dataset_card": read_dataset_card(dataset_dir)},
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

    pictures = copy.deepcopy(result.get("galleries", {}))
    attach_pictures(pictures, Path(dataset_dir), config.split)
    write_html(result, images, out / "index.html", galleries=pictures)
    log.info("report written to %s", out)
    return result


def _clear_own_copy(out: Path) -> None:
    """A rerun of the same report replaces the model it wrote beside it."""
    if (out / "model.json").exists():
        import shutil

        shutil.rmtree(out)


def _write_calibrated(evaluation: ModelEvaluation, model_dir: str | Path, out: Path) -> None:
    """The model with the temperature fitted on val, as a new version beside the report (the
    model read is never changed); the CLI says where."""
    from brightscan.model import write_calibrated

    calibration = evaluation.metrics["calibration"]
    _clear_own_copy(out)
    write_calibrated(model_dir, calibration["temperature"], out, fitted_on="val")
    calibration["written_to"] = str(out)
    log.info("calibrated model (temperature %.4f) written to %s", calibration["temperature"], out)


def _write_operating_point(evaluation: ModelEvaluation, model_dir: str | Path, out: Path) -> None:
    """The model with its 0.5 moved to gt1's operating point on val, as a new version beside the
    report (``gt1_operating_point.written_to``); nothing is written when val has no such point."""
    from brightscan.model import write_operating_point

    point = evaluation.metrics.get("gt1_operating_point") or {}
    if point.get("threshold") is None:
        log.warning("no gt1 operating point on val (completeness %s not reached): no model written to %s",
                    point.get("target_completeness"), out)
        return
    _clear_own_copy(out)
    write_operating_point(model_dir, point["threshold"], out, fitted_on="val")
    point["written_to"] = str(out)
    log.info("model with gt1's 0.5 moved to %.2f written to %s", point["threshold"], out)


def _write_rejections(evaluations: list[ModelEvaluation], path: Path) -> None:
    """``REPORT/rejected.parquet``: the alerts left out of the evaluation (always written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from brightscan.storage import REJECTION_SCHEMA

    rows = [r.as_row() for e in evaluations for r in e.rejections]
    pq.write_table(pa.Table.from_pylist(rows, schema=REJECTION_SCHEMA), path)


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
            m.figures["outcomes"], out / f"outcomes{suffix}.png", title=f"{label[id(m)]}: alerts by magnitude")
    pols = main.figures["policies"]
    images["completeness_purity"] = plots.plot_completeness_purity(
        {p: f["by_peak"] for p, f in pols.items()}, main.metrics["policies"], out / "completeness_purity.png")
    images["delay"] = plots.plot_delays({p: f["delays"] for p, f in pols.items()}, out / "delay.png")
    if other is not None:  # the two models' curves overlaid, for the policies that matter most
        shown = [(f"{label[id(m)]} {p}", m, p) for m in models for p in ("gt1", OPTIMISED)]
        images["compare_sources"] = plots.plot_completeness_purity(
            {k: m.figures["policies"][p]["by_peak"] for k, m, p in shown},
            {k: m.metrics["policies"][p] for k, m, p in shown}, out / "compare_sources.png")
    curves = {f"{label[id(m)]} {k}": v for m in models for k, v in m.figures["reliability"].items()}
    images["reliability"] = plots.plot_reliability(curves, out / "reliability.png")
    frontier, chosen, target = main.figures["frontier"]
    points = {(r["completeness"], r["purity"]) for rows in frontier.values() for r in rows}
    if len(points) > 1:  # a single point is nothing to show
        images["frontier"] = plots.plot_frontier(frontier, chosen, target, out / "frontier.png")
    return images
