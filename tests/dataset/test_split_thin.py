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


classes_st = st.dictionaries(st.text("ZTFab0123", min_size=3, max_size=8),
                             st.tuples(st.integers(0, 1), st.sampled_from(["SN Ia", "SN II", "AGN", "CV", ""])),
                             max_size=120)


@settings(max_examples=60, deadline=None)
@given(sources=classes_st, seed=st.integers(0, 1000))
def test_class_strata_give_every_split_its_share_of_every_class(sources: dict, seed: int) -> None:
    labels = {o: lab for o, (lab, _) in sources.items()}
    classes = {o: cls for o, (_, cls) in sources.items()}
    fractions = (0.6, 0.2, 0.2)
    assignment = split_by_source(labels, fractions, seed=seed, strata=classes)
    assert set(assignment) == set(labels) and set(assignment.values()) <= {"train", "val", "test"}
    for group in set(sources.values()):
        members = [o for o, key in sources.items() if key == group]
        counts = Counter(assignment[o] for o in members)
        for split, frac in zip(("train", "val", "test"), fractions):
            assert abs(counts[split] - frac * len(members)) < 1.0 + 1e-9, (group, counts)
    reordered = dict(reversed(list(labels.items())))
    assert split_by_source(reordered, fractions, seed=seed, strata=classes) == assignment


def test_class_strata_mend_the_class_mix_that_label_strata_leave_to_chance() -> None:
    # 90 sources, as the demo's test split: 60 negatives of which 12 are easy AGN, 30 positives.
    labels = {f"ZTF{i:03d}": int(i >= 60) for i in range(900)}
    classes = {o: ("AGN" if int(o[3:]) % 5 == 0 and not labels[o] else "SN") for o in labels}
    share = sum(c == "AGN" for c in classes.values()) / len(classes)
    worst = {}
    for strata in (None, classes):
        gaps = []
        for seed in range(40):
            assignment = split_by_source(labels, (0.81, 0.09, 0.10), seed=seed, strata=strata)
            test = [o for o, s in assignment.items() if s == "test"]
            gaps.append(abs(sum(classes[o] == "AGN" for o in test) / len(test) - share))
        worst[strata is None] = max(gaps)
    assert worst[False] < 0.015 < worst[True]  # class strata: within a source of the share


def test_unknown_sources_of_the_strata_form_one_group() -> None:
    labels = {f"ZTF{i:03d}": i % 2 for i in range(50)}
    with_empty = split_by_source(labels, seed=3, strata={})
    assert with_empty == split_by_source(labels, seed=3, strata={o: "" for o in labels})


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


# --- BTSbot's thinning: random N_max for transients, latest for variables and junk -------------


def _two_sources(n: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array(["sn"] * n + ["agn"] * n, dtype=object)
    jd = np.r_[np.arange(n), np.arange(n)].astype(float)
    classes = np.array(["SN Ia"] * n + ["AGN"] * n, dtype=object)
    return ids, jd, classes


def test_btsbot_thinning_keeps_random_alerts_of_sne_and_the_latest_of_variables() -> None:
    from brightscan.dataset import thin_btsbot

    ids, jd, classes = _two_sources()
    kept = thin_btsbot(ids, jd, classes, 20, seed=1)
    sn, agn = kept[ids[kept] == "sn"], kept[ids[kept] == "agn"]
    assert len(sn) == len(agn) == 20
    assert sorted(jd[agn]) == list(range(80, 100))  # the latest 20
    assert jd[sn].min() < 40 and jd[sn].max() > 60  # spread over the light curve, rise included
    assert np.array_equal(kept, thin_btsbot(ids, jd, classes, 20, seed=1))  # seeded
    assert not np.array_equal(kept, thin_btsbot(ids, jd, classes, 20, seed=2))
    assert np.array_equal(thin_btsbot(ids, jd, classes, None, seed=1), np.arange(200))
    assert len(thin_btsbot(ids, jd, classes, 500, seed=1)) == 200  # fewer than nmax: all kept


def test_thin_rows_selects_the_rule_and_refuses_unknown_ones() -> None:
    from brightscan.dataset import thin_rows
    from brightscan.errors import ConfigError

    ids, jd, classes = _two_sources()
    assert np.array_equal(thin_rows("latest", ids, jd, classes, 20), thin_latest(ids, jd, 20))
    assert len(thin_rows("btsbot", ids, jd, None, 20, seed=0)) == 40  # no class column: all random
    with pytest.raises(ConfigError, match="thinning"):
        thin_rows("newest", ids, jd, classes, 20)
