"""``dataset build --cluster`` builds the very dataset one process builds (splits, thinning,
duplicates across files, rejections, card), and resumes like any partitioned run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from brightscan.alerts import Alert, read_alerts
from brightscan.cli.main import app
from brightscan.dataset import BuildConfig, build_dataset, open_split
from brightscan.distributed.dataset import build_dataset_partitioned
from brightscan.errors import ConfigError

runner = CliRunner()


def _same_dataset(a: Path, b: Path, card_a: dict, card_b: dict) -> None:
    assert card_a["splits"] == card_b["splits"] and card_a["skipped"] == card_b["skipped"]
    for split in ("train", "val", "test"):
        x, y = open_split(a, split), open_split(b, split)
        pd.testing.assert_frame_equal(x.table, y.table)
        assert np.array_equal(np.load(a / split / "triplets.npy"), np.load(b / split / "triplets.npy"))
    pd.testing.assert_frame_equal(pd.read_parquet(a / "rejected.parquet"), pd.read_parquet(b / "rejected.parquet"))


def test_cli_cluster_build_equals_one_process(nightly_archives: Path, tmp_path: Path) -> None:
    labels = nightly_archives.parent / "labels.csv"
    config = BuildConfig(nmax=3, fractions=(0.6, 0.2, 0.2), seed=1)
    card = build_dataset([nightly_archives], labels, tmp_path / "one", config)
    args = ["dataset", "build", str(nightly_archives), "--labels", str(labels), "--out", str(tmp_path / "dask"),
            "--nmax", "3", "--split", "0.6,0.2,0.2", "--seed", "1", "--cluster", "local:2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    from brightscan.dataset import read_dataset_card

    assert card["skipped"]["thinned"] > 0
    _same_dataset(tmp_path / "one", tmp_path / "dask", card, read_dataset_card(tmp_path / "dask"))
    again = runner.invoke(app, [*args[:-2], "--resume"])  # in-process resume: every partition is done
    assert again.exit_code == 0 and "4 partition(s) already finished" in again.output, again.output


def test_duplicates_across_files_and_rejections_as_in_one_process(real_parquet_dir: Path, real_avro_dir: Path,
                                                                  tmp_path: Path) -> None:
    inputs = [real_parquet_dir, real_avro_dir]
    objects = sorted({a.object_id for a in read_alerts(inputs) if isinstance(a, Alert)})
    pd.DataFrame({"objectId": objects, "label": [i % 2 for i in range(len(objects))]}).to_csv(
        tmp_path / "labels.csv", index=False)
    config = BuildConfig(nmax=2, fractions=(0.6, 0.2, 0.2), seed=3)
    card = build_dataset(inputs, tmp_path / "labels.csv", tmp_path / "one", config)
    parted = build_dataset_partitioned(inputs, tmp_path / "labels.csv", tmp_path / "parts", config)
    assert card["skipped"]["duplicate"] > 0  # the same alerts are in several of these files
    _same_dataset(tmp_path / "one", tmp_path / "parts", card, parted)
    other = BuildConfig(nmax=2, fractions=(0.6, 0.2, 0.2), seed=4)
    with pytest.raises(ConfigError, match="another run"):
        build_dataset_partitioned(inputs, tmp_path / "labels.csv", tmp_path / "parts", other)
