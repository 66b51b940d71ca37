"""Source-disjoint train/validation/test splits, stratified by label and, optionally, by class."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

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
    strata: Mapping[str, Hashable] | None = None,
) -> dict[str, str]:
    """Assign every source to one split, stratified by label (and by ``strata`` when given).

    Within each stratum the sources are sorted (so the result does not depend on the mapping's
    order) and shuffled with a seeded :class:`numpy.random.Generator`.

    - Label only (``strata`` None): each label's shuffled list is cut at the cumulative
      fractions, rounded, so each split holds about the same class balance.
    - With ``strata`` (for example each source's class: SN Ia, SN II, AGN, ...), every
      (label, stratum) group is spread over the splits by systematic sampling from a random
      start: member ``j`` of ``n`` goes to the split whose cumulative fraction first exceeds
      ``(j + u) / n``, ``u`` uniform in [0, 1) per group. Each split then holds its share of
      every group within one source, and a group too small to reach every split is not always
      given to train (plain rounding would), so the small splits are not starved of rare classes.

    Parameters
    ----------
    labels : mapping
        ``objectId -> label`` (0 or 1; any hashable label works).
    fractions : three floats
        Fractions of sources for train, val and test; they must sum to 1.
    seed : int
        Seed of the shuffle.
    strata : mapping, optional
        ``objectId -> stratum`` (any value; compared by its string form); a source absent from
        it is in stratum ``""``.

    Returns
    -------
    dict
        ``objectId -> "train" | "val" | "test"``; every source appears exactly once.
    """
    fracs = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fracs)
    assignment: dict[str, str] = {}
    if strata is None:
        for label in sorted(set(labels.values())):
            members = _shuffled([o for o, lab in labels.items() if lab == label], rng)
            bounds = np.round(cuts * len(members)).astype(int)
            bounds[-1] = len(members)
            start = 0
            for name, stop in zip(SPLITS, bounds):
                for object_id in members[start:stop]:
                    assignment[str(object_id)] = name
                start = max(start, stop)
        return assignment
    groups: dict[tuple[str, str], list[str]] = {}
    for object_id, label in labels.items():
        groups.setdefault((str(label), str(strata.get(object_id, ""))), []).append(object_id)
    for key in sorted(groups):
        members = _shuffled(groups[key], rng)
        quantiles = (np.arange(len(members)) + rng.random()) / len(members)
        which = np.minimum(np.searchsorted(cuts, quantiles, side="right"), len(SPLITS) - 1)
        for object_id, index in zip(members, which):
            assignment[str(object_id)] = SPLITS[int(index)]
    return assignment


def _shuffled(members: list[str], rng: np.random.Generator) -> np.ndarray:
    """``members`` sorted, then permuted by ``rng``."""
    ordered = np.array(sorted(members), dtype=object)
    return ordered[rng.permutation(len(ordered))]
