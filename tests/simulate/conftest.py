"""A small simulated survey shared by the simulator tests (a few seconds to make)."""

from __future__ import annotations

from pathlib import Path

import pytest

from brightscan.simulate import SurveyConfig, simulate_survey


@pytest.fixture(scope="session")
def small_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "survey"
    simulate_survey(SurveyConfig(n_sources=40, seed=11, n_nights=120, n_workers=1, chunk_size=8), out)
    return out


@pytest.fixture(scope="session")
def heuristics_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "heuristics"
    simulate_survey(SurveyConfig(n_sources=160, seed=5, n_nights=150, n_workers=2, chunk_size=10), out)
    return out
