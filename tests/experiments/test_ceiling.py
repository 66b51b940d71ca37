"""The gradient-boosting ceiling on a small simulated survey: same split, same test alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("sklearn", reason="the ceiling extra (scikit-learn) is not installed")

from brightscan.dataset import BuildConfig, build_dataset, open_split  # noqa: E402
from brightscan.experiments.ceiling import ISSUE_FEATURES, CeilingConfig, run_ceiling  # noqa: E402
from brightscan.simulate import SurveyConfig, simulate_survey  # noqa: E402


@pytest.fixture(scope="module")
def survey_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ceiling")
    simulate_survey(SurveyConfig(n_sources=120, seed=2, n_nights=120, n_workers=1), root / "sim")
    build_dataset([root / "sim" / "alerts"], root / "sim" / "labels.csv", root / "ds",
                  BuildConfig(nmax=30, fractions=(0.5, 0.25, 0.25), seed=0))
    return root / "ds", root / "sim" / "scanner_saves.csv"


@pytest.mark.slow
def test_ceiling_scores_every_test_alert_and_reports_like_evaluate(survey_dataset, tmp_path: Path) -> None:
    ds, saves = survey_dataset
    result = run_ceiling(ds, tmp_path / "c", CeilingConfig(features=ISSUE_FEATURES), scanner_saves=saves, nmax=30)
    test = open_split(ds, "test")
    scores = pd.read_parquet(tmp_path / "c" / "scores.parquet")
    assert list(scores["candid"]) == list(test.table["candid"])  # the same, unthinned, test alerts
    assert result["alert"]["n_alerts"] == len(test) and result["alert"]["auc"] > 0.7
    lo, hi = result["alert"]["auc_ci"]
    assert lo <= result["alert"]["auc"] <= hi
    for name in ("gt1", "bts_prod", "optimised"):
        row = result["policies"][name]
        assert {"completeness", "purity", "completeness_ci", "purity_ci"} <= set(row)
    assert result["model"]["features"] == list(ISSUE_FEATURES) and result["model"]["nmax"] == 30
    # the evaluation's own score_metrics made the row: the same sections as a network's metrics.json
    assert {"val_auc", "val_auc_ci"} <= set(result["alert"])
    assert "validation" in result["policies"]["optimised"]
    assert result["sources"]["n_selected"] == result["policies"]["gt1"]["n_sources"]
    assert result["faint_dim_sn"]["n_alerts"] > 0 and result["outcomes_m_lt_18_5"]["n"] > 0
    assert 0 <= result["faint_dim_sn"]["mean_score"] <= 1 and result["faint_dim_sn"]["n_alerts"] > 0
    assert result["gt1_operating_point"]["target_completeness"] == 0.99
    assert json.loads((tmp_path / "c" / "ceiling.json").read_text())["alert"]["auc"] == result["alert"]["auc"]
    again = run_ceiling(ds, tmp_path / "d", CeilingConfig(features=ISSUE_FEATURES), scanner_saves=saves, nmax=30)
    assert again["alert"]["auc"] == result["alert"]["auc"]  # seeded


def test_unknown_feature_is_refused(survey_dataset, tmp_path: Path) -> None:
    from brightscan.errors import ConfigError

    with pytest.raises(ConfigError, match="nope"):
        run_ceiling(survey_dataset[0], tmp_path / "c", CeilingConfig(features=("magpsf", "nope")))


def test_negative_weight_lowers_the_scores_and_is_checked(survey_dataset, tmp_path: Path) -> None:
    """Weighting negatives 9 times moves the booster's 0.5 to where the balanced one gives 0.9."""
    from brightscan.errors import ConfigError

    ds, _ = survey_dataset
    config = CeilingConfig(features=ISSUE_FEATURES)
    run_ceiling(ds, tmp_path / "w1", config, nmax=30)
    result = run_ceiling(ds, tmp_path / "w9", CeilingConfig(features=ISSUE_FEATURES, negative_weight=9.0), nmax=30)
    balanced, weighted = (pd.read_parquet(tmp_path / d / "scores.parquet")["score"] for d in ("w1", "w9"))
    assert weighted.mean() < balanced.mean() and (weighted >= 0.5).sum() < (balanced >= 0.5).sum()
    assert result["config"]["negative_weight"] == 9.0
    with pytest.raises(ConfigError, match="negative_weight"):
        run_ceiling(ds, tmp_path / "bad", CeilingConfig(negative_weight=0.0))
