"""Reference distributions (``reference.json``): histograms, PSI and KS against known answers,
the checksum recorded in ``model.json``, and ``brightscan train`` writing one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from brightscan.errors import ModelFileError
from brightscan.model.reference import build_reference, ks_statistic, psi, read_reference, write_reference

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _reference(n: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = np.column_stack([rng.normal(0, 1, n), rng.integers(1, 4, n).astype(float)])
    return build_reference(features, ["x", "fid"], rng.uniform(0, 1, n))


def test_ks_matches_scipy_within_the_percentile_resolution():
    ref = _reference()
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.2, 0.5, 1.0):
        night = rng.normal(shift, 1, 3000)
        exact = stats.ks_2samp(np.random.default_rng(0).normal(0, 1, 20_000), night).statistic
        assert ks_statistic(ref.columns["x"], night) == pytest.approx(exact, abs=0.015)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    ref = _reference()
    rng = np.random.default_rng(2)
    assert psi(ref.columns["x"], rng.normal(0, 1, 2000)) < 0.02
    assert psi(ref.columns["x"], rng.normal(0.5, 1, 2000)) > 0.2  # the textbook half-sigma shift
    # a discrete feature gets its own few bins, and a new proportion shows
    assert psi(ref.columns["fid"], rng.integers(1, 4, 2000).astype(float)) < 0.02
    assert psi(ref.columns["fid"], np.full(2000, 1.0)) > 1.0
    assert np.isnan(psi(ref.columns["x"], np.array([np.nan])))


def test_written_into_a_model_directory_with_its_checksum(tiny_model_dir: Path):
    ref = _reference()
    path = write_reference(tiny_model_dir, ref)
    card = json.loads((tiny_model_dir / "model.json").read_text())
    assert card["reference"]["file"] == "reference.json" and len(card["reference"]["sha256"]) == 64
    back = read_reference(tiny_model_dir)
    assert back.features == ["x", "fid"] and back.n_alerts == ref.n_alerts
    np.testing.assert_array_equal(back.columns["score"].counts, ref.columns["score"].counts)
    path.write_text(path.read_text().replace('"split":"val"', '"split":"vaX"'))
    with pytest.raises(ModelFileError, match="sha256"):
        read_reference(tiny_model_dir)


def test_a_model_without_a_reference_reads_as_none(tmp_path: Path):
    from brightscan.model import create_model, load_model, save_model

    directory = save_model(create_model("mi_cnn.tiny", seed=0), tmp_path / "m")
    assert read_reference(directory) is None
    load_model(directory, device="cpu")


def _train(tmp_path: Path) -> Path:
    """One step of mi_cnn.tiny on a synthetic dataset (48 validation alerts); the dataset's path."""
    from brightscan.train import TrainConfig, Trainer

    from tests.train.conftest import write_synthetic_dataset

    dataset = write_synthetic_dataset(tmp_path / "ds", {"train": 64, "val": 48, "test": 8})
    config = TrainConfig(preset="mi_cnn.tiny", precision="fp32", epochs=1, max_steps_per_epoch=1,
                         recipe={"batch_size": 16})
    Trainer(config).fit(dataset, tmp_path / "m")
    return dataset


def test_training_records_the_validation_reference(tmp_path: Path):
    from brightscan.model import load_model

    _train(tmp_path)
    ref = read_reference(tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")  # the card with its new entry still loads
    assert ref.split == "val" and ref.n_alerts == 48
    assert ref.features == list(loaded.card["features"]["order"])
    assert ref.columns["score"].n == 48 and ref.provenance["epoch"] == 1


def test_recorded_after_training_equals_what_training_recorded(tmp_path: Path):
    """`brightscan model reference` (for imported models) gives the reference training wrote."""
    from typer.testing import CliRunner

    from brightscan.cli.main import app

    dataset = _train(tmp_path)
    trained = read_reference(tmp_path / "m")
    result = CliRunner().invoke(app, ["model", "reference", str(tmp_path / "m"), "--dataset", str(dataset)])
    assert result.exit_code == 0, result.output
    recorded = read_reference(tmp_path / "m")
    assert recorded.provenance["recorded_after_training"] is True
    for name in trained.features:
        np.testing.assert_array_equal(recorded.columns[name].counts, trained.columns[name].counts)
    np.testing.assert_allclose(recorded.columns["score"].edges, trained.columns["score"].edges, atol=1e-5)
