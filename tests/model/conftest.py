"""Fixtures of the model tests: published models imported once per session, the example alerts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from brightscan.model import create_model, import_keras, save_model

# Same rule as tests/conftest.py; repeated because session-scoped fixtures cannot use its
# function-scoped ones.
_SHARED = Path(os.environ.get("BRIGHTSCAN_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))

#: Published model directory -> (registered preset, column of reference_scores_example.csv).
PUBLISHED = {"v03": ("mi_cnn.icml2023", "score_v03"), "v1.0.1": ("mi_cnn.v1", "score_v1_0_1")}


def _shared(*relative: str) -> Path:
    path = _SHARED.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def imported_models(tmp_path_factory) -> dict[str, Path]:
    """The published Keras models converted to brightscan model directories."""
    src = _shared("models", "btsbot-published")
    out = tmp_path_factory.mktemp("imported")
    return {name: import_keras(src / name, out / name) for name in PUBLISHED}


@pytest.fixture(scope="session")
def example_inputs() -> dict:
    """The 39 BTSbot example alerts: triplets, a features frame, reference TF scores."""
    import pandas as pd

    example = _shared("data", "btsbot-example")
    reference = _shared("models", "btsbot-published", "reference_scores_example.csv")
    frame = pd.read_csv(example / "usage_candidates.csv")
    # The example CSV names differ from ours: the model was fed new_drb as drb; nnotdet = nnondet.
    frame = frame.rename(columns={"nnotdet": "nnondet"}).assign(drb=frame["new_drb"])
    return {
        "triplets": np.load(example / "usage_triplets.npy").astype(np.float32),
        "frame": frame,
        "reference": pd.read_csv(reference),
    }


def example_features(example_inputs: dict, names) -> np.ndarray:
    return example_inputs["frame"][list(names)].to_numpy(np.float32)


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    """A freshly initialised tiny model saved to disk."""
    return save_model(create_model("mi_cnn.tiny", seed=3, device="cpu"), tmp_path / "tiny",
                      provenance={"trained_on": "nothing (test fixture)"})
