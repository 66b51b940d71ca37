"""scripts/issue27_policies_table.py --faint: the faint dim-SN column from a report, and the same
figure scored again for a report made before ``evaluate`` recorded it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from brightscan.evaluate.report import evaluate
from evaluate.test_report import CONFIG
from evaluate.tiny import save_random_model

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "issue27_policies_table.py"


def _faint_cells(*reports: Path) -> list[tuple[str, str]]:
    """Per row of the table: whether it is the compared model's, and its last (faint dim-SN) cell."""
    run = subprocess.run([sys.executable, str(SCRIPT), *map(str, reports), "--faint"],
                         capture_output=True, text=True, check=True)
    rows = [line.strip("|").split("|") for line in run.stdout.splitlines()[2:]]
    return [("published" in cells[0], cells[-1].strip()) for cells in rows]


def test_faint_column_reads_the_report_and_scores_older_reports_again(tmp_path, tiny_model, tiny_dataset):
    other = save_random_model(tmp_path / "other", seed=7)
    out = tmp_path / "report"
    metrics = evaluate(tiny_model, tiny_dataset, out=out, compare=other, config=CONFIG)
    expected = [(False, f"{metrics['faint_dim_sn']['mean_score']:.3f}"),
                (True, f"{metrics['compare']['faint_dim_sn']['mean_score']:.3f}")]
    assert expected[0][1] != expected[1][1]  # two models, two figures
    assert metrics["faint_dim_sn"]["n_alerts"] > 0
    assert _faint_cells(out) == expected

    # a report written before evaluate recorded the figure: the script scores the test split again
    for section in (metrics, metrics["compare"]):
        del section["faint_dim_sn"]
    (out / "metrics.json").write_text(json.dumps(metrics))
    assert _faint_cells(out) == expected
