"""Property tests of the source-disjoint split and of N_max thinning."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.dataset import split_by_source, thin_latest
from brightscan.errors import ConfigError

labels_st = st.dictionaries(st.text("ZTFab0123", min_size=3, max_size=8), st.integers(0, 1), max_size=80)


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, seed=st.integers(0, 1000))
def test_every_source_lands_in_exactly_one_split(labels: dict[str, int], seed: int) -> None:
    assignment = split_by_source(labels, (0.6, 0.2, 0.2), seed=seed)
    assert set(assignment) == set(labels)
    assert set(assignment.values()) <= {"train", "val", "test"}
    # stratified: per label, each split's count is within one of its share
    for label in (0, 1):
        members = [o for o, lab in labels.items() if lab == label]
        counts = Counter(assignment[o] for o in members)
        for split, frac in zip(("train", "val", "test"), (0.6, 0.2, 0.2)):
            assert abs(counts[split] - frac * len(members)) <= 1.0
    assert split_by_source(dict(reversed(list(labels.items()))), (0.6, 0.2, 0.2), seed=seed) == assignment


def test_split_depends_on_the_seed_and_checks_fractions() -> None:
    labels = {f"ZTF{i:04d}": i % 2 for i in range(200)}
    assert split_by_source(labels, seed=1) != split_by_source(labels, seed=2)
    with pytest.raises(ConfigError):
        split_by_source(labels, (0.5, 0.5, 0.5))


rows_st = st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 50, allow_nan=False)), max_size=120)


@settings(max_examples=80, deadline=None)
@given(rows=rows_st, nmax=st.integers(1, 10))
def test_thinning_keeps_the_latest_nmax_per_source(rows: list[tuple[str, float]], nmax: int) -> None:
    ids = np.array([r[0] for r in rows], dtype=object)
    jd = np.array([r[1] for r in rows], dtype=float)
    kept = thin_latest(ids, jd, nmax)
    assert np.all(np.diff(kept) > 0)
    for source in set(ids):
        mine = np.flatnonzero(ids == source)
        keep_mine = np.intersect1d(kept, mine)
        assert len(keep_mine) == min(nmax, len(mine))
        dropped = np.setdiff1d(mine, keep_mine)
        if len(dropped):
            assert jd[keep_mine].min() >= jd[dropped].max()
    # thinning is idempotent and nested: thinning to a smaller nmax thins the thinned rows
    again = thin_latest(ids[kept], jd[kept], nmax)
    assert np.array_equal(kept[again], kept)
    if nmax > 1:
        smaller = thin_latest(ids, jd, nmax - 1)
        assert set(smaller) <= set(kept)


def test_no_nmax_keeps_everything_and_bad_nmax_fails() -> None:
    assert thin_latest(np.array(["a", "a"]), np.array([1.0, 2.0]), None).tolist() == [0, 1]
    with pytest.raises(ConfigError):
        thin_latest(np.array(["a"]), np.array([1.0]), 0)
