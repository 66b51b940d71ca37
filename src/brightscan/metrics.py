"""Numbers only: alert-level, source-level and calibration metrics on numpy arrays.

No plotting and no I/O here, and no scikit-learn: everything is a few lines of numpy so the
definitions are visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Figure 2 of the paper: 0.5-mag bins from 15 to 21.
MAG_BINS: np.ndarray = np.arange(15.0, 21.0 + 1e-9, 0.5)
#: Peak-magnitude bins for completeness/purity against peak magnitude (Figure 3, left).
PEAK_BINS: np.ndarray = np.arange(15.0, 19.0 + 1e-9, 0.5)


def _as_arrays(y_true: Sequence[int], y_score: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=int).ravel()
    s = np.asarray(y_score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    return y, s


def roc_curve(y_true: Sequence[int], y_score: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold.

    Returns ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf. A rate whose
    denominator is empty (no negatives or no positives) is NaN.
    """
    y, s = _as_arrays(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.zeros(0, int)
    tps = np.cumsum(y)[last_of_value]
    fps = (last_of_value + 1) - tps
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.full(tps.size + 1, np.nan)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.full(fps.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last_of_value]]


def roc_auc(y_true: Sequence[int], y_score: Sequence[float]) -> float:
    """Area under the ROC curve (trapezoids; ties count one half). NaN with a single class."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def confusion_counts(y_true: Sequence[int], y_score: Sequence[float], threshold: float = 0.5) -> dict[str, int]:
    """``tp, fp, tn, fn`` with the positive prediction ``score >= threshold``."""
    y, s = _as_arrays(y_true, y_score)
    pred = s >= threshold
    return {
        "tp": int(np.sum(pred & (y == 1))), "fp": int(np.sum(pred & (y == 0))),
        "tn": int(np.sum(~pred & (y == 0))), "fn": int(np.sum(~pred & (y == 1))),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def alert_metrics(y_true: Sequence[int], y_score: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, precision and recall at ``threshold``, and the number of alerts."""
    c = confusion_counts(y_true, y_score, threshold)
    n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
    return {
        "auc": roc_auc(y_true, y_score),
        "accuracy": _ratio(c["tp"] + c["tn"], n),
        "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
        "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
        "n_alerts": int(n),
        **{k: int(v) for k, v in c.items()},
    }


def outcomes_by_magnitude(
    y_true: Sequence[int], y_score: Sequence[float], magpsf: Sequence[float],
    bins: np.ndarray = MAG_BINS, threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Counts of TP/FP/TN/FN per magnitude bin (Figure 2). Alerts outside ``bins`` are dropped.

    Returns ``edges`` and integer arrays ``tp, fp, tn, fn`` of length ``len(bins) - 1``.
    """
    y, s = _as_arrays(y_true, y_score)
    m = np.asarray(magpsf, dtype=float).ravel()
    pred = s >= threshold
    out: dict[str, np.ndarray] = {"edges": np.asarray(bins, dtype=float)}
    for name, mask in (("tp", pred & (y == 1)), ("fp", pred & (y == 0)),
                       ("tn", ~pred & (y == 0)), ("fn", ~pred & (y == 1))):
        out[name] = np.histogram(m[mask], bins=bins)[0]
    return out


def source_metrics(
    labels: Sequence[int], passed: Sequence[bool], pass_jd: Sequence[float] | None = None,
    save_jd: Sequence[float] | None = None,
) -> dict[str, float]:
    """Completeness, purity and identification delay of the sources a policy passes.

    completeness = passed bright / all bright; purity = passed bright / all passed; the delay of
    a bright source passed by the policy and saved by scanners is ``pass_jd - save_jd`` in days
    (negative: the policy was earlier). NaN where a denominator is empty.
    """
    y = np.asarray(labels, dtype=int).ravel()
    p = np.asarray(passed, dtype=bool).ravel()
    tp = int(np.sum(p & (y == 1)))
    out: dict[str, float] = {
        "completeness": _ratio(tp, int(np.sum(y == 1))),
        "purity": _ratio(tp, int(p.sum())),
        "n_sources": int(y.size), "n_bright": int(np.sum(y == 1)), "n_passed": int(p.sum()),
        "median_delay_days": float("nan"), "n_delays": 0,
    }
    if pass_jd is not None and save_jd is not None:
        delays = identification_delays(y, p, pass_jd, save_jd)
        out["median_delay_days"] = float(np.median(delays)) if delays.size else float("nan")
        out["n_delays"] = int(delays.size)
    return out


def identification_delays(
    labels: Sequence[int], passed: Sequence[bool], pass_jd: Sequence[float], save_jd: Sequence[float],
) -> np.ndarray:
    """``pass_jd - save_jd`` (days) for bright sources both passed and saved by scanners."""
    y = np.asarray(labels, dtype=int).ravel()
    p = np.asarray(passed, dtype=bool).ravel()
    t_bot = np.asarray(pass_jd, dtype=float).ravel()
    t_scan = np.asarray(save_jd, dtype=float).ravel()
    ok = p & (y == 1) & np.isfinite(t_bot) & np.isfinite(t_scan)
    return t_bot[ok] - t_scan[ok]


def metrics_by_peak(
    labels: Sequence[int], passed: Sequence[bool], peak_mag: Sequence[float], bins: np.ndarray = PEAK_BINS,
) -> dict[str, np.ndarray]:
    """Completeness and purity per peak-magnitude bin (Figure 3, left).

    Returns ``edges``, ``completeness``, ``purity``, ``n_bright`` and ``n_passed`` per bin.
    """
    y = np.asarray(labels, dtype=int).ravel()
    p = np.asarray(passed, dtype=bool).ravel()
    m = np.asarray(peak_mag, dtype=float).ravel()
    idx = np.digitize(m, bins) - 1
    nb = len(bins) - 1
    comp, pur = np.full(nb, np.nan), np.full(nb, np.nan)
    n_bright, n_passed = np.zeros(nb, int), np.zeros(nb, int)
    for b in range(nb):
        sel = idx == b
        n_bright[b], n_passed[b] = int(np.sum(sel & (y == 1))), int(np.sum(sel & p))
        comp[b] = _ratio(np.sum(sel & p & (y == 1)), n_bright[b])
        pur[b] = _ratio(np.sum(sel & p & (y == 1)), n_passed[b])
    return {"edges": np.asarray(bins, float), "completeness": comp, "purity": pur,
            "n_bright": n_bright, "n_passed": n_passed}


def reliability_bins(
    y_true: Sequence[int], y_prob: Sequence[float], n_bins: int = 10,
) -> dict[str, np.ndarray]:
    """Mean predicted probability, observed frequency and count in equal-width bins of [0, 1]."""
    y, s = _as_arrays(y_true, y_prob)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=s, minlength=n_bins) / count
        freq = np.bincount(idx, weights=y, minlength=n_bins) / count
    return {"edges": edges, "confidence": conf, "frequency": freq, "count": count}


def expected_calibration_error(y_true: Sequence[int], y_prob: Sequence[float], n_bins: int = 10) -> float:
    """ECE: count-weighted mean of ``|frequency - confidence|`` over equal-width bins."""
    r = reliability_bins(y_true, y_prob, n_bins)
    total = r["count"].sum()
    if total == 0:
        return float("nan")
    used = r["count"] > 0
    return float(np.sum(r["count"][used] * np.abs(r["frequency"][used] - r["confidence"][used])) / total)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=float)
    return np.exp(-np.logaddexp(0.0, -x))


def fit_temperature(y_true: Sequence[int], logits: Sequence[float], bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the binary cross-entropy of ``sigmoid(logits / T)``.

    A 1-D bounded minimisation (Brent) on ``log T``; fit on validation logits only.
    """
    from scipy.optimize import minimize_scalar  # only calibration needs scipy

    y, z = _as_arrays(y_true, logits)
    if y.size == 0:
        raise ValueError("cannot fit a temperature on zero alerts")

    def nll(log_t: float) -> float:
        u = z / np.exp(log_t)
        # -[y log s(u) + (1-y) log(1-s(u))] = logaddexp(0, u) - y u
        return float(np.mean(np.logaddexp(0.0, u) - y * u))

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(np.exp(res.x))


#: Default number of bootstrap replicates for the 95% intervals.
N_BOOTSTRAP = 1000


def _percentile_ci(values: np.ndarray, level: float) -> list[float]:
    """``[lo, hi]`` percentile interval of the finite ``values``; ``[nan, nan]`` if none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def bootstrap_source_intervals(
    labels: Sequence[int], passed: Sequence[bool], pass_jd: Sequence[float] | None = None,
    save_jd: Sequence[float] | None = None, *, n_boot: int = N_BOOTSTRAP, level: float = 0.95, seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of :func:`source_metrics`, resampling *sources*.

    Each replicate draws ``len(labels)`` sources with replacement and recomputes completeness,
    purity and (with ``pass_jd`` and ``save_jd``) the median identification delay, so the
    interval reflects how few sources a split holds, not how many alerts they have. A replicate
    whose denominator is empty is left out of that figure's interval.

    Returns
    -------
    dict
        ``completeness_ci``, ``purity_ci`` and, with the times, ``median_delay_days_ci``, each
        ``[lo, hi]`` (NaN when no replicate defines it).
    """
    y = np.asarray(labels, dtype=int).ravel()
    p = np.asarray(passed, dtype=bool).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and passed differ in length: {y.shape} vs {p.shape}")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    if y.size == 0:
        nan = [float("nan"), float("nan")]
        return {"completeness_ci": nan, "purity_ci": nan, "median_delay_days_ci": nan}
    idx = np.random.default_rng(seed).integers(0, y.size, size=(n_boot, y.size))  # (B, n) sources
    bright, hit = (y == 1)[idx], (p & (y == 1))[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        comp = hit.sum(axis=1) / bright.sum(axis=1)
        pur = hit.sum(axis=1) / p[idx].sum(axis=1)
    out = {"completeness_ci": _percentile_ci(comp, level), "purity_ci": _percentile_ci(pur, level)}
    if pass_jd is not None and save_jd is not None:
        delay = np.full(y.size, np.nan)
        t_bot = np.asarray(pass_jd, dtype=float).ravel()
        t_scan = np.asarray(save_jd, dtype=float).ravel()
        ok = p & (y == 1) & np.isfinite(t_bot) & np.isfinite(t_scan)
        delay[ok] = t_bot[ok] - t_scan[ok]
        out["median_delay_days_ci"] = _percentile_ci(_nanmedian_rows(delay[idx]), level)
    return out


def _nanmedian_rows(x: np.ndarray) -> np.ndarray:
    """Row-wise median ignoring NaN; NaN for an all-NaN row (without numpy's warning)."""
    has = np.isfinite(x).any(axis=1)
    out = np.full(x.shape[0], np.nan)
    if has.any():
        out[has] = np.nanmedian(x[has], axis=1)
    return out


def bootstrap_auc_interval(
    y_true: Sequence[int], y_score: Sequence[float], groups: Sequence[object], *,
    n_boot: int = 200, level: float = 0.95, seed: int = 0,
) -> list[float]:
    """Percentile bootstrap interval of the alert AUC, resampling whole *sources* (``groups``).

    Alerts of one source are correlated, so resampling alerts would give too narrow an interval;
    each replicate draws sources with replacement and keeps all their alerts.
    """
    y, s = _as_arrays(y_true, y_score)
    g = np.asarray(groups).ravel()
    if g.shape != y.shape:
        raise ValueError(f"groups and labels differ in length: {g.shape} vs {y.shape}")
    if y.size == 0:
        return [float("nan"), float("nan")]
    codes = np.unique(g, return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, counts.size, size=counts.size)
        lengths = counts[pick]
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)  # where each drawn source begins
        rows = order[np.repeat(starts[pick], lengths) + np.arange(lengths.sum()) - first]
        aucs[b] = roc_auc(y[rows], s[rows])
    return _percentile_ci(aucs, level)


def outcome_fractions(y_true: Sequence[int], y_score: Sequence[float], mask: Sequence[bool],
                      threshold: float = 0.5) -> dict[str, float]:
    """TP/FP/TN/FN counts and fractions of the alerts in ``mask`` (Figure 2 summed, e.g. m < 18.5).

    Returns ``n``, ``tp, fp, tn, fn`` and ``tp_frac, fp_frac, tn_frac, fn_frac`` (NaN when empty).
    """
    y, s = _as_arrays(y_true, y_score)
    keep = np.asarray(mask, dtype=bool).ravel()
    if keep.shape != y.shape:
        raise ValueError(f"mask and labels differ in length: {keep.shape} vs {y.shape}")
    counts = confusion_counts(y[keep], s[keep], threshold)
    n = int(keep.sum())
    return {"n": n, **counts, **{f"{k}_frac": _ratio(v, n) for k, v in counts.items()}}
