"""``brightscan train --preset frozen_fusion_...``: btsbot 2's three stages at tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.errors import ConfigError
from brightscan.model import load_model
from brightscan.model.btsbot2 import strip_head
from brightscan.train import TrainConfig
from brightscan.train.staged import train_frozen_fusion

runner = CliRunner()
FUSION = "frozen_fusion_convnext_pico.btsbot2"
TOML = f'[train]\npreset = "{FUSION}"\nmax_steps_per_epoch = 1\nprecision = "fp32"\n'


def _branch_equals_stage(branch: torch.nn.Module, stage_dir: Path) -> bool:
    stage = load_model(stage_dir, device="cpu").model
    strip_head(stage)
    ours = branch.state_dict()
    return all(torch.equal(ours[k], v) for k, v in stage.state_dict().items() if not k.endswith("running_mean")
               and not k.endswith("running_var") and not k.endswith("num_batches_tracked"))


@pytest.mark.slow
def test_three_stages_freeze_the_branches_and_resume_per_stage(synthetic_dataset: Path, tmp_path: Path):
    (tmp_path / "cfg.toml").write_text(TOML)
    out = tmp_path / "fused"
    args = ["train", str(synthetic_dataset), "--out", str(out), "--config", str(tmp_path / "cfg.toml")]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    for stage, preset in (("image", "convnext_pico.btsbot2"), ("metadata", "um_nn.btsbot2")):
        assert json.loads((out / "stages" / stage / "model.json").read_text())["model_id"] == preset
    card = json.loads((out / "model.json").read_text())
    assert card["model_id"] == FUSION
    record = card["provenance"]["training"]["initialised"]
    assert [s["stage"] for s in record["stages"]] == ["image", "metadata"]
    assert record["frozen"] == ["image_branch", "meta_branch"] and record["trained"] == ["combined_head"]
    fused = load_model(out, device="cpu").model
    # the frozen branches kept the stage models' weights (BatchNorm statistics move, as in btsbot)
    assert _branch_equals_stage(fused.image_branch, out / "stages" / "image")
    assert _branch_equals_stage(fused.meta_branch, out / "stages" / "metadata")
    # resume with more epochs: the finished stages are kept as they are, the head trains further
    stage_bytes = {s: (out / "stages" / s / "weights.safetensors").read_bytes() for s in ("image", "metadata")}
    again = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert again.exit_code == 0, again.output
    assert {s: (out / "stages" / s / "weights.safetensors").read_bytes() for s in stage_bytes} == stage_bytes
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    refused = runner.invoke(app, [*args, "--epochs", "1"])
    assert refused.exit_code != 0 and "--resume" in refused.output


def test_given_stage_models_are_used_and_checked(synthetic_dataset: Path, tmp_path: Path):
    base = TrainConfig(preset="um_nn.btsbot2", epochs=1, max_steps_per_epoch=1, precision="fp32")
    from brightscan.train import Trainer

    Trainer(base).fit(synthetic_dataset, tmp_path / "meta")
    Trainer(TrainConfig(**{**base.to_dict(), "preset": "convnext_pico.btsbot2"})).fit(synthetic_dataset, tmp_path / "img")
    config = TrainConfig(preset=FUSION, epochs=1, max_steps_per_epoch=1, precision="fp32")
    trainer = train_frozen_fusion(config, synthetic_dataset, tmp_path / "f", image_model=tmp_path / "img",
                                  metadata_model=tmp_path / "meta")
    assert not (tmp_path / "f" / "stages").exists()
    stages = json.loads((tmp_path / "f" / "model.json").read_text())["provenance"]["training"]["initialised"]["stages"]
    assert [s["trained_here"] for s in stages] == [False, False]
    assert _branch_equals_stage(trainer.model_.meta_branch, tmp_path / "meta")
    assert all(not p.requires_grad for p in trainer.model_.meta_branch.parameters())
    assert all(p.requires_grad for p in trainer.model_.combined_head.parameters())
    # a model that is not the fusion's branch is refused, naming both
    with pytest.raises(ConfigError, match="not this fusion's image model"):
        train_frozen_fusion(config, synthetic_dataset, tmp_path / "g", image_model=tmp_path / "meta",
                            metadata_model=tmp_path / "meta")
    with pytest.raises(ConfigError, match="not a frozen_fusion preset"):
        train_frozen_fusion(base, synthetic_dataset, tmp_path / "h")


@pytest.mark.slow
def test_a_run_killed_in_the_metadata_stage_resumes_there(synthetic_dataset: Path, tmp_path: Path):
    config = TrainConfig(preset=FUSION, epochs=1, max_steps_per_epoch=1, precision="fp32")

    class Killed(Exception):
        pass

    steps = []

    def kill_in_metadata_stage(n: int) -> None:
        steps.append(n)
        if len(steps) == 2:  # one step per stage epoch: the second step is the metadata stage's
            raise Killed

    with pytest.raises(Killed):
        train_frozen_fusion(config, synthetic_dataset, tmp_path / "f", on_step=kill_in_metadata_stage)
    image = (tmp_path / "f" / "stages" / "image" / "weights.safetensors").read_bytes()
    assert not (tmp_path / "f" / "stages" / "metadata" / "model.json").exists()
    with pytest.raises(Exception, match="--resume"):
        train_frozen_fusion(config, synthetic_dataset, tmp_path / "f")
    trainer = train_frozen_fusion(config, synthetic_dataset, tmp_path / "f", resume=True)
    assert (tmp_path / "f" / "stages" / "image" / "weights.safetensors").read_bytes() == image
    assert (tmp_path / "f" / "stages" / "metadata" / "model.json").exists()
    assert trainer.result_.epochs_run == 1 and (tmp_path / "f" / "model.json").exists()


@pytest.mark.slow
def test_a_learning_curve_row_of_a_fusion_trains_in_stages(synthetic_dataset: Path, tmp_path: Path):
    """The learning curve trains a frozen_fusion preset as `brightscan train` does (one entry point,
    train_preset), not end to end; a row interrupted inside a stage counts as a run to resume."""
    from brightscan.experiments import CurveConfig, ProgressHook
    from brightscan.experiments.learning_curve import _train
    from brightscan.train.staged import has_run

    row = tmp_path / "n192"
    row.mkdir()
    (row / "dataset").symlink_to(synthetic_dataset)
    config = CurveConfig(sizes=(192,), presets=(FUSION,), epochs=1, batch_size=96, precision="fp32")
    _train(row, 192, FUSION, config, ProgressHook(), None)
    out = row / "models" / FUSION
    card = json.loads((out / "model.json").read_text())
    assert [s["stage"] for s in card["provenance"]["training"]["initialised"]["stages"]] == ["image", "metadata"]
    assert json.loads((out / "stages" / "image" / "model.json").read_text())["model_id"] == "convnext_pico.btsbot2"
    assert has_run(out)
    interrupted = tmp_path / "interrupted"
    (interrupted / "stages" / "image").mkdir(parents=True)
    assert has_run(interrupted) and not has_run(tmp_path / "empty")


def test_train_preset_refuses_stage_models_for_other_presets(synthetic_dataset: Path, tmp_path: Path):
    from brightscan.train.staged import train_preset

    with pytest.raises(ConfigError, match="frozen_fusion presets only"):
        train_preset(TrainConfig(preset="mm_cnn.btsbot2", epochs=1), synthetic_dataset, tmp_path / "m",
                     image_model=tmp_path)
