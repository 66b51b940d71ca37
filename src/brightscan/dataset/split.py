"""Source-disjoint, label-stratified train/validation/test splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from brightscan.errors import ConfigError

__all__ = ["SPLITS", "check_fractions", "split_by_source"]

#: Split names, in the order their fractions are given.
SPLITS: tuple[str, str, str] = ("train", "val", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate three non-negative split fractions summing to 1 (within 1e-6)."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not np.isfinite(f) or f < 0 for f in values):
        raise ConfigError(f"split fractions must be three non-negative numbers, not {fractions!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, not {sum(values):.6g}")
    return values  # type: ignore[return-value]


def split_by_source(
    labels: Mapping[str, int],
    fractions: Sequence[float] = (0.81, 0.09, 0.10),
    *,
    seed: int = 0,
) -> dict[str, str]:
    """Assign every source to one split, stratified by label.

    Within each label the sources are sorted (so the result does not depend on the mapping's
    order), shuffled with a seeded :class:`numpy.random.Generator`, and cut at the cumulative
    fractions (rounded), so each split holds about the same class balance.

    Parameters
    ----------
    labels : mapping
        ``objectId -> label`` (0 or 1; any hashable label works).
    fractions : three floats
        Fractions of sources for train, val and test; they must sum to 1.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    dict
        ``objectId -> "train" | "val" | "test"``; every source appears exactly once.
    """
    fracs = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fracs)
    assignment: dict[str, str] = {}
    for label in sorted(set(labels.values())):
        members = np.array(sorted(o for o, lab in labels.items() if lab == label), dtype=object)
        members = members[rng.permutation(len(members))]
        bounds = np.round(cuts * len(members)).astype(int)
        bounds[-1] = len(members)
        start = 0
        for name, stop in zip(SPLITS, bounds):
            for object_id in members[start:stop]:
                assignment[str(object_id)] = name
            start = max(start, stop)
    return assignment
