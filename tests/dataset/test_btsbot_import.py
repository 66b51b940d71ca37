"""Import of the original BTSbot training-set layout, written here from the 39 example alerts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brightscan.dataset import import_btsbot, open_split
from brightscan.errors import InputError
from brightscan.preprocess import feature_names

SPLIT_ROWS = {"train": slice(0, 25), "val": slice(25, 32), "test": slice(32, 39)}


def _write_layout(example: Path, root: Path, version: str = "v10", n: int = 100) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(example / "usage_candidates.csv")
    triplets = np.load(example / "usage_triplets.npy")
    root.mkdir(exist_ok=True)
    for split, rows in SPLIT_ROWS.items():
        frame.iloc[rows].to_csv(root / f"{split}_cand_{version}_N{n}.csv", index=False)
        np.save(root / f"{split}_triplets_{version}_N{n}.npy", triplets[rows])
    return frame, triplets


def test_import_keeps_rows_images_and_renamed_features(btsbot_example_dir: Path, tmp_path: Path) -> None:
    frame, triplets = _write_layout(btsbot_example_dir, tmp_path / "orig")
    card = import_btsbot(tmp_path / "orig", tmp_path / "ds")
    assert card["feature_set"] == "v1" and card["nmax"] == 100 and card["original_version"] == "v10"
    for split, rows in SPLIT_ROWS.items():
        data = open_split(tmp_path / "ds", split)
        part = frame.iloc[rows].reset_index(drop=True)
        np.testing.assert_array_equal(data.triplets, triplets[rows].astype(np.float32))
        assert data.table["objectId"].tolist() == part["objectId"].tolist()
        np.testing.assert_array_equal(data.labels, part["label"].to_numpy(np.float32))
        names = list(feature_names("v1"))
        np.testing.assert_allclose(data.features[:, names.index("nnondet")], part["nnotdet"], rtol=1e-6)
        np.testing.assert_allclose(data.features[:, names.index("drb")], part["new_drb"], rtol=1e-6)
        np.testing.assert_allclose(data.features[:, names.index("magpsf")], part["magpsf"], rtol=1e-6)
        assert card["splits"][split]["alerts"] == len(part)
        assert card["splits"][split]["alerts_per_label"]["1"] == int(part["label"].sum())
    assert open_split(tmp_path / "ds", "train", feature_names("icml2023")).features.shape == (25, 14)


def test_import_refuses_ambiguous_or_inconsistent_layouts(btsbot_example_dir: Path, tmp_path: Path) -> None:
    _write_layout(btsbot_example_dir, tmp_path / "orig", "v10")
    _write_layout(btsbot_example_dir, tmp_path / "orig", "v11")
    with pytest.raises(InputError, match="several versions"):
        import_btsbot(tmp_path / "orig", tmp_path / "ds")
    np.save(tmp_path / "orig" / "val_triplets_v11_N100.npy", np.zeros((3, 63, 63, 3)))
    with pytest.raises(InputError, match="triplets of shape"):
        import_btsbot(tmp_path / "orig", tmp_path / "ds", version="v11")
    assert import_btsbot(tmp_path / "orig", tmp_path / "ds2", version="v10")["splits"]["val"]["alerts"] == 7
    with pytest.raises(InputError, match="no"):
        import_btsbot(tmp_path / "ds2", tmp_path / "ds3")
