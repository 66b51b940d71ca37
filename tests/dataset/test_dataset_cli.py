"""``brightscan dataset build | import-btsbot | info`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from brightscan.cli.main import app

runner = CliRunner()


def _flat(text: str) -> str:
    """Rich wraps long messages; compare with single spaces."""
    return " ".join(text.split())


def test_build_and_info(real_avro_dir: Path, tmp_path: Path) -> None:
    from brightscan.preprocess.history import History

    sources = sorted(History.collect([real_avro_dir]).objects())
    pd.DataFrame({"objectId": sources, "label": [i % 2 for i in range(len(sources))]}).to_csv(
        tmp_path / "labels.csv", index=False)
    result = runner.invoke(app, ["dataset", "build", str(real_avro_dir), "--labels", str(tmp_path / "labels.csv"),
                                 "--out", str(tmp_path / "ds"), "--split", "0.5,0.25,0.25", "--features", "icml2023",
                                 "--stratify", "label"])
    assert result.exit_code == 0, result.output
    card = json.loads(runner.invoke(app, ["dataset", "info", str(tmp_path / "ds"), "--json"]).stdout)
    assert card["feature_set"] == "icml2023" and card["build"]["fractions"] == [0.5, 0.25, 0.25]
    assert card["build"]["stratify"] == "label"
    total = sum(card["splits"][s]["alerts"] for s in ("train", "val", "test"))
    stored = [np.load(tmp_path / "ds" / s / "triplets.npy", mmap_mode="r") for s in ("train", "val", "test")]
    assert total == sum(len(a) for a in stored)
    assert total > 0


def test_bad_split_and_missing_labels(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("objectId,label\n")
    result = runner.invoke(app, ["dataset", "build", str(tmp_path), "--labels", str(tmp_path / "labels.csv"),
                                 "--out", str(tmp_path / "ds"), "--split", "0.5,0.5"])
    assert result.exit_code == 2 and "three numbers" in _flat(result.output)
    result = runner.invoke(app, ["dataset", "build", str(tmp_path), "--labels", str(tmp_path / "x.csv"),
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2 and "does not exist" in _flat(result.output)
    result = runner.invoke(app, ["dataset", "info", str(tmp_path)])
    assert result.exit_code == 2 and "not a brightscan dataset" in _flat(result.output)


def test_import_btsbot_cli(btsbot_example_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(btsbot_example_dir / "usage_candidates.csv")
    trips = np.load(btsbot_example_dir / "usage_triplets.npy")
    (tmp_path / "orig").mkdir()
    frame.to_csv(tmp_path / "orig" / "train_cand_v8_N60.csv", index=False)
    np.save(tmp_path / "orig" / "train_triplets_v8_N60.npy", trips)
    result = runner.invoke(app, ["dataset", "import-btsbot", str(tmp_path / "orig"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert card["splits"]["train"]["alerts"] == 39 and card["splits"]["val"]["alerts"] == 0
