"""Precision judging and ``--device cuda`` for the BTSbot 2 presets, as for the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.model import create_model, load_model, save_model
from brightscan.train import TrainConfig, Trainer
from brightscan.train.precision import native_bf16, resolve_precision

CPU = torch.device("cpu")
runner = CliRunner()
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")


@pytest.mark.parametrize("preset", [
    "convnext_pico.btsbot2", "mm_convnext_pico.btsbot2", "frozen_fusion_convnext_pico.btsbot2",
    pytest.param("mm_maxvit_tiny.btsbot2", marks=pytest.mark.slow)])
def test_auto_measures_both_precisions_on_native_bf16_and_picks_the_faster(preset):
    model = create_model(preset, seed=1, device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert resolve_precision("auto", model, 2, CPU, flags={"avx2"}) == ("fp32", {})
    chosen, rates = resolve_precision("auto", model, 2, CPU, flags={"avx512_bf16"})
    assert set(rates) == {"fp32", "bf16"} and all(r > 0 for r in rates.values())
    assert chosen == ("bf16" if rates["bf16"] >= 1.1 * rates["fp32"] else "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # probes train copies


def test_the_choice_is_recorded_and_kept_on_resume(synthetic_dataset: Path, tmp_path: Path):
    config = TrainConfig(preset="mm_convnext_pico.btsbot2", epochs=1, max_steps_per_epoch=1,
                         recipe={"batch_size": 4})
    assert config.precision == "auto"
    Trainer(config).fit(synthetic_dataset, tmp_path / "m")
    training = load_model(tmp_path / "m", device="cpu").card["provenance"]["training"]
    if native_bf16(CPU):
        assert set(training["precision_rates"]) == {"fp32", "bf16"}
    else:
        assert training["precision"] == "fp32" and training["precision_rates"] == {}
    resumed = Trainer(TrainConfig(**{**config.to_dict(), "epochs": 2})).fit(synthetic_dataset, tmp_path / "m",
                                                                             resume=True)
    checkpoint = json.loads((tmp_path / "m" / "checkpoint" / "last.json").read_text())["trainer"]
    assert checkpoint["precision"] == training["precision"] and resumed.result_.epochs_run == 2


@no_cuda
def test_device_cuda_is_refused_clearly_without_cuda(synthetic_dataset: Path, tmp_path: Path):
    result = runner.invoke(app, ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"),
                                 "--preset", "mm_convnext_pico.btsbot2", "--device", "cuda", "--epochs", "1"])
    assert result.exit_code == 1 and "torch sees no CUDA device" in result.output
    model_dir = save_model(create_model("um_nn.btsbot2", device="cpu"), tmp_path / "s")
    scored = runner.invoke(app, ["score", str(synthetic_dataset / "test"), "--model", str(model_dir),
                                 "--device", "cuda", "--out", str(tmp_path / "s.parquet")])
    assert scored.exit_code != 0 and "cuda" in scored.output.lower() and "Traceback" not in scored.output
