"""Every figure function writes a non-empty PNG."""

from __future__ import annotations

import numpy as np

from brightscan import metrics as M
from brightscan.evaluate import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


def test_all_figures_are_written(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.5 + rng.normal(0.25, 0.2, 200), 0, 1)
    mag = rng.uniform(15, 21, 200)
    fpr, tpr, _ = M.roc_curve(y, s)
    by_peak = M.metrics_by_peak(y[:50], s[:50] > 0.5, mag[:50])
    overall = M.source_metrics(y[:50], s[:50] > 0.5)
    frontier = {1: [{"completeness": 0.9, "purity": 0.8, "params": {"threshold": 0.7}},
                    {"completeness": 1.0, "purity": 0.6, "params": {"threshold": 0.5}}]}
    paths = [
        plots.plot_roc({"model": (fpr, tpr, M.roc_auc(y, s)), "other": (fpr, tpr, 0.5)}, tmp_path / "roc.png"),
        plots.plot_outcomes_by_magnitude(M.outcomes_by_magnitude(y, s, mag), tmp_path / "fig2.png"),
        plots.plot_completeness_purity({"gt1": by_peak}, {"gt1": overall}, tmp_path / "fig3l.png"),
        plots.plot_completeness_purity({"gt1": {**by_peak, "completeness_ci": np.full((len(by_peak["purity"]), 2), 0.5)},
                                        "gt2": by_peak}, {"gt1": overall, "gt2": overall}, tmp_path / "fig3ci.png"),
        plots.plot_delays({"gt1": rng.normal(-0.3, 0.5, 40), "gt3": np.zeros(0)}, tmp_path / "fig3r.png"),
        plots.plot_delays({"gt1": np.zeros(0)}, tmp_path / "empty_delay.png"),
        plots.plot_reliability({"model": M.reliability_bins(y, s)}, tmp_path / "sub" / "rel.png"),
        plots.plot_frontier(frontier, {"completeness": 0.9, "purity": 0.8}, 0.99, tmp_path / "front.png"),
    ]
    for path in paths:
        assert path.exists() and is_png(path), path


def test_triplet_picture_is_a_png():
    rng = np.random.default_rng(0)
    data = plots.triplet_png(rng.normal(size=(63, 63, 3)))
    assert data[:8] == PNG_MAGIC and len(data) > 1000
