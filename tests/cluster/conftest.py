"""A small simulated survey (four nightly archives, ~1,200 alerts) and a tiny model, shared by the
distributed tests; made once per session (about 6 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from brightscan.model import create_model, save_model
from brightscan.simulate import SurveyConfig, simulate_survey


@pytest.fixture(scope="session")
def nightly_archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``alerts/ztf_public_YYYYMMDD.tar.gz``: four nights of a simulated survey."""
    out = tmp_path_factory.mktemp("dist") / "survey"
    simulate_survey(SurveyConfig(n_sources=500, seed=4, n_nights=10, n_workers=1, chunk_size=50,
                                 tarball=True), out)
    return out / "alerts"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(create_model("mi_cnn.tiny", seed=3, device="cpu"), tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="session")
def reference_scores(nightly_archives: Path, tiny_model: Path):
    """The in-process scores of the archives (``Scorer.score_files``), as a DataFrame by candid."""
    from brightscan.score import Scorer

    results = Scorer(tiny_model, device="cpu").score_files([nightly_archives])
    return results.to_arrow().to_pandas().set_index("candid").sort_index()


def read_dataset(root: Path, data: str = "scores"):
    """A partitioned run's data as one DataFrame (hidden temporaries are ignored by the reader)."""
    import pyarrow.dataset as ds

    return ds.dataset(root / data, format="parquet", partitioning="hive").to_table().to_pandas()
