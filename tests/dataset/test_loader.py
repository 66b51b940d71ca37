"""Positioned reads of triplet rows agree with the memory map, in any index order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.dataset import TripletReader
from brightscan.errors import InputError
from brightscan.storage import NpyAppender


@pytest.fixture(scope="module")
def npy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("npy") / "triplets.npy"
    rows = np.random.default_rng(0).normal(size=(40, 5, 5, 3)).astype(np.float32)
    with NpyAppender(path, (5, 5, 3)) as out:
        out.append(rows[:17])
        out.append(rows[17:])
    return path, rows


@settings(max_examples=40, deadline=None)
@given(indices=st.lists(st.integers(0, 39), max_size=30))
def test_read_matches_fancy_indexing(npy: tuple[Path, np.ndarray], indices: list[int]) -> None:
    path, rows = npy
    reader = TripletReader(path)
    np.testing.assert_array_equal(reader.read(np.array(indices, dtype=np.int64)), rows[indices])
    np.testing.assert_array_equal(np.load(path, mmap_mode="r")[indices], rows[indices])


def test_out_of_range_and_bad_files_are_refused(npy: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    reader = TripletReader(npy[0])
    with pytest.raises(IndexError):
        reader.read(np.array([40]))
    np.save(tmp_path / "ints.npy", np.zeros((3, 2), dtype=np.int32))
    with pytest.raises(InputError, match="float32"):
        TripletReader(tmp_path / "ints.npy")
