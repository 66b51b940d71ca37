"""``brightscan model import FILE.onnx``: a BTSbot-convention ONNX file back into a model directory.

Each model is exported with brightscan's own exporter in both conventions, imported back, and the
imported directory scores the real ZTF alerts in ../shared as the original (1e-5).
"""

from __future__ import annotations

import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.errors import ModelFileError
from brightscan.model import create_model, load_model, read_card, save_model, set_temperature
from brightscan.model.importing import import_model
from brightscan.model.onnx_conventions import export_btsbot_onnx

pytest.importorskip("onnxruntime")
runner = CliRunner()


def _perturbed(preset: str, seed: int) -> torch.nn.Module:
    """Seeded weights with non-trivial norm statistics, so no two tensors are equal by chance."""
    model = create_model(preset, seed=seed, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and ("running_var" in name or name.endswith("norm.weight")
                                               or name.endswith(".gamma")):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif tensor.is_floating_point() and "running_mean" in name:
                tensor.normal_(0.0, 0.2, generator=gen)
    return model


def _scores(model_dir, alerts, out):
    result = runner.invoke(app, ["score", str(alerts), "--model", str(model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas().sort_values("candid")
    return table["candid"].to_numpy(), table["score"].to_numpy()


def _round_trip(tmp_path, model_dir, alerts, convention, *, strip_config=False):
    onnx_path = export_btsbot_onnx(model_dir, convention, out=tmp_path / f"{convention}.onnx")
    if strip_config:  # as a file from another exporter: no config property to go by
        proto = onnx.load(str(onnx_path))
        kept = [(p.key, p.value) for p in proto.metadata_props if p.key != "config"]
        del proto.metadata_props[:]
        for key, value in kept:
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(onnx_path))
    out = tmp_path / f"imported-{convention}"
    result = runner.invoke(app, ["model", "import", str(onnx_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("preset", ["mm_convnext_pico.btsbot2", "mm_cnn.btsbot2", "um_nn.btsbot2"])
def test_exported_then_imported_scores_equal(tmp_path, real_avro_dir, preset):
    model_dir = save_model(_perturbed(preset, seed=7), tmp_path / "orig", model_version="r1")
    set_temperature(model_dir, 1.3)
    candid, expected = _scores(model_dir, real_avro_dir, tmp_path / "orig.parquet")
    assert len(candid) > 20
    for convention in ("btsbot-v2", "btsbot-v1"):
        out = _round_trip(tmp_path, model_dir, real_avro_dir, convention, strip_config=preset == "mm_cnn.btsbot2")
        card = read_card(out)
        assert card["model_id"] == preset and card["model_version"] == "r1"
        assert card["temperature"] == pytest.approx(1.3)
        assert card["provenance"]["format"] == f"onnx {convention}"
        got_candid, got = _scores(out, real_avro_dir, tmp_path / f"{convention}.parquet")
        np.testing.assert_array_equal(got_candid, candid)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_published_v1_round_trips(tmp_path, imported_models, real_avro_dir):
    """The published v1.0.1 (real trained weights), out to ONNX v1 as BOOM ran it and back."""
    model_dir = imported_models["v1.0.1"]
    candid, expected = _scores(model_dir, real_avro_dir, tmp_path / "orig.parquet")
    out = _round_trip(tmp_path, model_dir, real_avro_dir, "btsbot-v1", strip_config=True)
    assert read_card(out)["model_id"] == "mi_cnn.v1"
    _, got = _scores(out, real_avro_dir, tmp_path / "back.parquet")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert load_model(out, device="cpu").model.training is False


class _Foreign(torch.nn.Module):
    """A network with BTSbot's input and output names that is none of brightscan's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4 + 25, 1)

    def forward(self, image, metadata):
        pooled = self.conv(image).mean(dim=(2, 3))
        return self.fc(torch.cat([pooled, metadata], dim=1))


def _export(module, example, path, inputs, output):
    torch.onnx.export(module.eval(), example, str(path), input_names=inputs, output_names=[output],
                      dynamic_axes={n: {0: "batch"} for n in (*inputs, output)}, opset_version=17, dynamo=False)
    return path


def test_unrelated_onnx_files_are_refused(tmp_path):
    plain = _export(torch.nn.Linear(3, 2), (torch.zeros(2, 3),), tmp_path / "linear.onnx", ["x"], "y")
    with pytest.raises(ModelFileError, match=r"not a BTSbot ONNX model: its inputs are x \['batch', 3\]"):
        import_model(plain, tmp_path / "o1")
    foreign = _export(_Foreign(), (torch.zeros(2, 3, 63, 63), torch.zeros(2, 25)), tmp_path / "foreign.onnx",
                      ["image", "metadata"], "logits")
    with pytest.raises(ModelFileError, match=r"\(btsbot-v2\) matches no brightscan architecture: .*mm_cnn"):
        import_model(foreign, tmp_path / "o2")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not onnx")
    result = runner.invoke(app, ["model", "import", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "o3")])
    assert result.exit_code == 1 and "not a readable ONNX file" in result.output
    assert not (tmp_path / "o2" / "model.json").exists()
