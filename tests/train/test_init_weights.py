"""``brightscan train --init-weights``: a backbone started from a checkpoint written by timm itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.errors import ConfigError, ModelFileError
from brightscan.model import create_model, load_model
from brightscan.model.backbones.init_weights import load_backbone_weights
from tests.model.timm_import import import_timm_and_btsbot

runner = CliRunner()


@pytest.fixture(scope="module")
def timm_convnext(tmp_path_factory) -> tuple[dict, Path, Path]:
    """timm's convnext_pico (pretrained=False, seeded, LayerNorms moved off 1/0) as .bin and .safetensors."""
    timm, _ = import_timm_and_btsbot()
    torch.manual_seed(11)
    reference = timm.create_model("convnext_pico", pretrained=False)
    with torch.no_grad():
        for name, tensor in reference.state_dict().items():
            if "norm" in name or name.endswith("gamma"):
                tensor.add_(torch.randn(tensor.shape, generator=torch.Generator().manual_seed(len(name))))
    state = {k: v.clone().contiguous() for k, v in reference.state_dict().items()}
    folder = tmp_path_factory.mktemp("ckpt")
    torch.save(state, folder / "pytorch_model.bin")
    from safetensors.torch import save_file

    save_file({f"model.{k}": v for k, v in state.items()}, str(folder / "model.safetensors"))  # a prefix, as HF
    return state, folder / "pytorch_model.bin", folder / "model.safetensors"


def _trunk_equals(trunk: torch.nn.Module, state: dict) -> None:
    for key, value in trunk.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("preset,module", [("mm_convnext_pico.btsbot2", "convnext_backbone"),
                                            ("convnext_pico.btsbot2", "convnext")])
def test_timm_checkpoint_loads_into_the_backbone(timm_convnext, preset, module):
    state, bin_path, st_path = timm_convnext
    for path in (bin_path, st_path):
        model = create_model(preset, seed=0, device="cpu")
        record = load_backbone_weights(model, path)
        _trunk_equals(getattr(model, module), state)
        assert record["module"] == module and "head.fc.weight" in record["skipped"]
    if preset == "convnext_pico.btsbot2":  # btsbot's single-input ConvNeXt keeps timm's head LayerNorm
        assert torch.equal(model.convnext.head[1].weight, state["head.norm.weight"])


def test_train_starts_from_the_checkpoint(timm_convnext, synthetic_dataset: Path, tmp_path: Path):
    state, bin_path, _ = timm_convnext
    (tmp_path / "cfg.toml").write_text('[train]\npreset = "mm_convnext_pico.btsbot2"\nmax_steps_per_epoch = 1\n'
                                       'precision = "fp32"\n[recipe]\nlearning_rate = 0.0\n')
    result = runner.invoke(app, ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"), "--epochs", "1",
                                 "--config", str(tmp_path / "cfg.toml"), "--init-weights", str(bin_path)])
    assert result.exit_code == 0, result.output
    _trunk_equals(load_model(tmp_path / "m", device="cpu").model.convnext_backbone, state)  # rate 0: unchanged
    record = json.loads((tmp_path / "m" / "model.json").read_text())["provenance"]["training"]["initialised"]
    assert record["init_weights"]["path"] == str(bin_path) and len(record["init_weights"]["sha256"]) == 64


def test_mismatches_are_refused_with_the_keys(timm_convnext, tmp_path: Path):
    state, _, _ = timm_convnext
    broken = dict(state)
    broken.pop("stem.0.weight")
    broken["stages.9.extra"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelFileError, match=r"missing \['stem.0.weight'\]; unexpected \['stages.9.extra'\]"):
        load_backbone_weights(create_model("mm_convnext_pico.btsbot2", device="cpu"), tmp_path / "broken.pth")
    wrong = {**state, "stages.0.blocks.0.mlp.fc1.weight": torch.zeros(3, 3)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ModelFileError, match="shapes differ"):
        load_backbone_weights(create_model("mm_convnext_pico.btsbot2", device="cpu"), tmp_path / "wrong.pth")
    torch.save({"x": torch.zeros(1), "code": Path("/")}, tmp_path / "pickled.bin")
    with pytest.raises(ModelFileError, match="cannot read"):
        load_backbone_weights(create_model("mm_convnext_pico.btsbot2", device="cpu"), tmp_path / "pickled.bin")
    with pytest.raises(ConfigError, match="no timm backbone"):
        load_backbone_weights(create_model("mm_cnn.btsbot2", device="cpu"), tmp_path / "wrong.pth")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=".safetensors or a torch state dict"):
        load_backbone_weights(create_model("mm_convnext_pico.btsbot2", device="cpu"), tmp_path / "w.npz")
