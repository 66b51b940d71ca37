"""Fixtures for the evaluation tests: a tiny dataset directory and a randomly-initialised model."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluate.tiny import save_random_model, write_tiny_dataset


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return save_random_model(tmp_path / "model")


@pytest.fixture
def tiny_dataset(tmp_path: Path, tiny_model: Path) -> Path:
    from brightscan.model import read_card

    names = tuple(read_card(tiny_model)["features"]["order"])
    return write_tiny_dataset(tmp_path / "ds", names)
