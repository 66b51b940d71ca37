"""``brightscan train --preset <btsbot 2 preset>``: the training loop trains and resumes them.

They train with btsbot 2's recipe, their default (each element: tests/train/test_recipe_btsbot2.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightscan.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("preset", ["mm_cnn.btsbot2", "mm_convnext_pico.btsbot2"])
def test_btsbot2_presets_train_and_resume(synthetic_dataset: Path, tmp_path: Path, preset: str) -> None:
    (tmp_path / "cfg.toml").write_text(f'[train]\npreset = "{preset}"\nmax_steps_per_epoch = 2\n')
    args = ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"), "--config", str(tmp_path / "cfg.toml")]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    resumed = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len(json.loads((tmp_path / "m" / "metrics.json").read_text())) == 2
    assert json.loads((tmp_path / "m" / "model.json").read_text())["model_id"] == preset
