"""The Rubin demo end to end: simulate, train BTSbot 2 mm_cnn.rubin at 48 px, evaluate, replay through autoscan."""

from __future__ import annotations

import json
import math

import pytest

from brightscan.demo import run_demo
from brightscan.model.io import read_card


@pytest.mark.slow
def test_rubin_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    summary = run_demo(out, size="tiny", seed=0, survey="rubin")
    assert summary["survey"]["n_alerts"] > 0 and summary["preset"] == "mm_cnn.rubin_tiny"
    assert read_card(out / "model")["trained_on"] == {"survey": "rubin", "feature_set": "rubin_v1",
                                                      "input_size": [48, 48, 3]}
    assert (out / "report" / "index.html").is_file() and list((out / "report").glob("*.png"))
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    # the tiny run trains 2 short epochs: its numbers are valid, not good (precision is undefined
    # when nothing is flagged), so only their ranges are checked
    for value in (*metrics["alert"].values(), *metrics["policies"]["gt1"].values()):
        if isinstance(value, float):
            assert math.isnan(value) or -1e9 < value < 1e9
    assert 0.0 <= metrics["alert"]["auc"] <= 1.0 and metrics["alert"]["n_alerts"] > 0
    assert summary["autoscan"]["alerts_scored"] > 0
    assert (out / "autoscan-summary" / "index.html").is_file()
