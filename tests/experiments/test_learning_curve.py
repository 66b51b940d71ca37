"""The learning curve at a tiny size, through the public API and the CLI: every stage runs once,
a second run re-uses them, a stage cut short runs again, other settings are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightscan.errors import ConfigError
from brightscan.experiments import CurveConfig, ProgressHook, StageRunner, run_learning_curve

# A one-epoch model on 16 validation sources need not reach the search's 99% target; the search
# then says which fallback it took (tests/evaluate check that rule itself).
pytestmark = pytest.mark.filterwarnings("ignore:no policy reached completeness")

# 160 sources over 30 nights, one epoch: about a minute on 2 shared cores
TINY = CurveConfig(sizes=(160,), nights=30, epochs=1, batch_size=64, published="/nonexistent/v1.0.1")


class Recorder(ProgressHook):
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.units = 0

    def stage(self, text: str, total: int | None = None) -> None:
        self.stages.append(text)

    def advance(self, n: int = 1) -> None:
        self.units += n


@pytest.fixture(scope="module")
def curve(tmp_path_factory) -> tuple[Path, list[dict], Recorder]:
    out = tmp_path_factory.mktemp("lc")
    hook = Recorder()
    return out, run_learning_curve(out, TINY, hook), hook


def test_a_row_has_every_figure(curve):
    out, rows, hook = curve
    assert len(rows) == 1
    row = rows[0]
    assert row["size"] == 160 and row["preset"] == "mi_cnn.icml2023"
    assert row["survey"]["n_sources"] == 160 and row["splits"]["test"]["alerts"] > 0
    assert set(row["seconds"]) == {"simulate", "dataset", "train", "evaluate", "total"}
    assert all(v > 0 for v in row["peak_rss_mib"].values())
    ours = row["ours"]
    assert 0.0 <= ours["auc"] <= 1.0 and len(ours["auc_ci"]) == 2
    assert ours["outcomes_m_lt_18_5"]["n"] >= 0
    assert set(ours["policies"]) == {"gt1", "gt3", "bts_prod", "optimised"}
    for pol in ours["policies"].values():
        assert len(pol["completeness_ci"]) == 2 and len(pol["purity_ci"]) == 2
    assert row["published"] is None  # the published model was absent: reported without it
    assert json.loads((out / "curve.json").read_text())["rows"] == json.loads(json.dumps(rows, default=str))
    assert any("simulating" in s for s in hook.stages) and any("epoch" in s for s in hook.stages)
    assert hook.units > 0
    table = (out / "curve.md").read_text()
    assert "| 160 | mi_cnn.icml2023/" in table and "gt1" in table and "optimised" in table
    faint = ours["faint_dim_sn"]  # the issue-27 headline figure, in the row and its table line
    assert faint["n_alerts"] > 0 and f"| {faint['mean_score']:.3f} | gt1 |" in table
    assert (out / "curve-mi_cnn.icml2023.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_run_reuses_every_stage(curve):
    out, rows, _ = curve
    hook = Recorder()
    again = run_learning_curve(out, TINY, hook)
    assert hook.stages == [] and again == rows


def test_a_stage_cut_short_runs_again_alone(curve):
    out, rows, _ = curve
    stages = StageRunner(out / "n160")
    before = {n: stages.done(n)["finished"] for n in ("simulate", "dataset", "train-mi_cnn.icml2023")}
    stages.marker("evaluate-mi_cnn.icml2023").unlink()  # as if killed while evaluating
    hook = Recorder()
    again = run_learning_curve(out, TINY, hook)
    assert [s for s in hook.stages if "evaluating" in s] and not [s for s in hook.stages if "simulating" in s]
    assert {n: stages.done(n)["finished"] for n in before} == before
    assert again[0]["ours"]["auc"] == rows[0]["ours"]["auc"]


def test_more_epochs_continue_a_finished_training_and_evaluate_it_again(curve, tmp_path):
    import dataclasses
    import shutil

    src, rows, _ = curve
    out = tmp_path / "lc"
    shutil.copytree(src, out)
    stages = StageRunner(out / "n160")
    model = out / "n160" / "models" / "mi_cnn.icml2023"
    first_epoch = (model / "metrics.csv").read_text().splitlines()[:2]
    built = stages.done("dataset")["finished"]
    first_run = stages.done("train-mi_cnn.icml2023")["seconds"]
    assert first_run > 0
    hook = Recorder()
    longer = run_learning_curve(out, dataclasses.replace(TINY, epochs=2), hook)
    assert any("resuming" in s for s in hook.stages) and any("evaluating" in s for s in hook.stages)
    assert not any("simulating" in s or "building" in s for s in hook.stages)
    assert stages.done("dataset")["finished"] == built
    n_train = rows[0]["splits"]["train"]["alerts"]
    assert hook.units == n_train  # one more epoch, not two: the first is kept as it was
    metrics = (model / "metrics.csv").read_text().splitlines()
    assert metrics[:2] == first_epoch and len(metrics) == 3
    trained = stages.done("train-mi_cnn.icml2023")
    assert trained["settings"]["epochs"] == 2 and trained["result"]["epochs_run"] == 2
    assert stages.done("evaluate-mi_cnn.icml2023")["settings"]["epochs"] == 2
    assert trained["result"]["earlier_seconds"] == first_run  # the row's cost counts both runs
    assert longer[0]["seconds"]["train"] == pytest.approx(first_run + trained["seconds"], abs=0.11)
    with pytest.raises(ConfigError, match="other settings"):  # fewer epochs cannot undo one
        run_learning_curve(out, TINY, Recorder())


def test_training_cut_short_resumes_from_its_checkpoint(curve):
    out, _, _ = curve
    stages = StageRunner(out / "n160")
    stages.marker("train-mi_cnn.icml2023").unlink()  # the checkpoint of the finished epoch remains
    hook = Recorder()
    run_learning_curve(out, TINY, hook)
    assert any("resuming" in s for s in hook.stages)
    assert hook.units == 0  # the epoch limit was already reached: nothing is trained twice


def test_other_settings_are_refused(curve):
    out, _, _ = curve
    with pytest.raises(ConfigError, match="other settings"):
        run_learning_curve(out, CurveConfig(sizes=(160,), nights=31, epochs=1, batch_size=64), Recorder())
    with pytest.raises(ConfigError, match="sizes"):
        CurveConfig(sizes=())


def test_cli_resumes_and_prints_rows(curve):
    from brightscan.cli.main import app

    out, rows, _ = curve
    result = CliRunner().invoke(app, ["experiment", "learning-curve", "--out", str(out), "--sizes", "160",
                                      "--nights", "30", "--epochs", "1", "--batch-size", "64",
                                      "--published", "/nonexistent/v1.0.1"])
    assert result.exit_code == 0, result.output
    assert "n=160 mi_cnn.icml2023: test AUC" in result.output and "is absent" in result.output
    bad = CliRunner().invoke(app, ["experiment", "learning-curve", "--out", str(out), "--sizes", "1x"])
    assert bad.exit_code != 0 and "--sizes" in bad.output


def test_dropped_alerts_are_simulated_again_only_when_a_dataset_needs_them(curve):
    import dataclasses

    out, rows, _ = curve
    dropping = dataclasses.replace(TINY, drop_alerts=True)
    stages = StageRunner(out / "n160")
    survey = out / "n160" / "survey"
    hook = Recorder()
    again = run_learning_curve(out, dropping, hook)
    assert hook.stages == [] and again[0]["ours"] == rows[0]["ours"]
    assert not (survey / "alerts").exists()
    assert (survey / "labels.csv").is_file() and (survey / "scanner_saves.csv").is_file()
    built = stages.done("dataset")
    stages.marker("dataset").unlink()  # the dataset must be built again: its alerts are gone
    hook = Recorder()
    run_learning_curve(out, dropping, hook)
    assert any("simulating" in s for s in hook.stages) and any("building" in s for s in hook.stages)
    assert stages.done("dataset")["result"] == built["result"] and not (survey / "alerts").exists()
    assert built["settings"]["stratify"] == "class"


def test_a_dropped_dataset_is_built_again_when_another_preset_needs_it(curve):
    import dataclasses

    out, rows, _ = curve
    stages = StageRunner(out / "n160")
    lean = dataclasses.replace(TINY, drop_alerts=True, drop_datasets=True)
    hook = Recorder()
    run_learning_curve(out, lean, hook)
    assert hook.stages == [] and not (out / "n160" / "dataset").exists()  # every preset was evaluated
    built = stages.done("dataset")
    hook = Recorder()
    both = run_learning_curve(out, dataclasses.replace(lean, presets=("mi_cnn.icml2023", "mi_cnn.v1")), hook)
    assert any("simulating" in s for s in hook.stages) and any("training mi_cnn.v1" in s for s in hook.stages)
    assert not [s for s in hook.stages if "training mi_cnn.icml2023" in s]
    assert stages.done("dataset")["result"] == built["result"]
    assert {r["preset"] for r in both} == {"mi_cnn.icml2023", "mi_cnn.v1"}
    assert not (out / "n160" / "dataset").exists() and not (out / "n160" / "survey" / "alerts").exists()
