"""``brightscan model fetch`` against a local Hugging Face cache laid out as the Hub writes it
(``models--owner--name/refs/main`` -> ``snapshots/<commit>/``), with the real huggingface_hub
in offline mode: no network."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.model import create_model, load_model
from brightscan.model.btsbot2.train_config import to_train_config

pytest.importorskip("huggingface_hub")
runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_fetch_from_the_hub_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("um_nn.btsbot2", seed=9, device="cpu")
    repo = tmp_path / "cache" / "models--nabeelr--BTSbot-test-metadata"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (snapshot / "train_config.json").write_text(json.dumps(to_train_config(model.config)))
    torch.save(model.state_dict(), snapshot / "pytorch_model.bin")
    out = tmp_path / "m"
    result = runner.invoke(app, ["model", "fetch", "nabeelr/BTSbot-test-metadata", "--out", str(out),
                                 "--cache-dir", str(tmp_path / "cache"), "--offline"])
    assert result.exit_code == 0, result.output
    loaded = load_model(out, device="cpu")
    assert loaded.model_id == "um_nn.btsbot2" and loaded.model_version == "nabeelr/BTSbot-test-metadata"
    assert torch.equal(loaded.model.network[1].weight, model.network[1].weight)
    missing = runner.invoke(app, ["model", "fetch", "nabeelr/absent", "--out", str(tmp_path / "x"),
                                  "--cache-dir", str(tmp_path / "cache"), "--offline"])
    assert missing.exit_code == 1 and "cannot fetch 'nabeelr/absent'" in " ".join(missing.output.split())
