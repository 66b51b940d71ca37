"""Fixed threshold policies (gtN and the production magnitude-cut policies) and their registry.

``GtN(n, threshold)`` passes a source once ``n`` of its alerts so far scored at or above
``threshold`` (and met the optional magnitude, age and detection cuts). The paper's ``gt1`` is
``GtN(1, 0.5)``; the production rule "score > 0.85 and magpsf < 19" is ``GtN(1, 0.85,
max_magpsf=19, strict=True)``. Counting only grows with time, so once a gtN policy passes a
source it keeps passing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from brightscan.errors import ConfigError
from brightscan.policy.base import BasePolicy
from brightscan.policy.records import ScoredAlert


def history_arrays(history: Sequence[ScoredAlert]) -> dict[str, np.ndarray]:
    """Columns of a jd-sorted history with causal fallbacks for missing optional fields.

    Returns ``score``, ``magpsf``, ``jd``, ``peakmag`` (feature, else running minimum of
    ``magpsf``), ``age`` (feature, else days since the first alert) and ``ndet`` (``ndethist``,
    else alerts so far). Each fallback at alert ``i`` uses alerts ``0..i`` only.
    """
    n = len(history)
    score = np.fromiter((a.score for a in history), float, n)
    magpsf = np.fromiter((a.magpsf for a in history), float, n)
    jd = np.fromiter((a.jd for a in history), float, n)
    peak = np.fromiter((np.nan if a.peakmag_so_far is None else a.peakmag_so_far for a in history), float, n)
    age = np.fromiter((np.nan if a.age is None else a.age for a in history), float, n)
    ndet = np.fromiter((np.nan if a.ndethist is None else a.ndethist for a in history), float, n)
    if n:
        peak = np.where(np.isnan(peak), np.minimum.accumulate(magpsf), peak)
        age = np.where(np.isnan(age), jd - jd[0], age)
        ndet = np.where(np.isnan(ndet), np.arange(1, n + 1, dtype=float), ndet)
    return {"score": score, "magpsf": magpsf, "jd": jd, "peakmag": peak, "age": age, "ndet": ndet}


class GtN(BasePolicy):
    """Pass a source once ``n`` of its alerts so far qualify.

    An alert qualifies when its score is ``>= threshold`` (``> threshold`` with ``strict``) and
    it meets every cut that is set.

    Parameters
    ----------
    n : int
        Number of qualifying alerts needed (>= 1).
    threshold : float
        Score threshold in [0, 1].
    max_magpsf : float, optional
        Alert must be brighter than this: ``magpsf < max_magpsf``.
    max_peakmag_so_far : float, optional
        Source must have peaked at least this bright so far: ``peakmag_so_far <= value``.
    min_age : float, optional
        Source must be at least this many days old at the alert: ``age >= min_age``.
    min_detections : int, optional
        Source must have at least this many detections: ``ndethist >= min_detections``.
    strict : bool
        Compare the score with ``>`` instead of ``>=`` (the production rules use ``>``).
    """

    def __init__(
        self,
        n: int = 1,
        threshold: float = 0.5,
        max_magpsf: float | None = None,
        max_peakmag_so_far: float | None = None,
        min_age: float | None = None,
        min_detections: int | None = None,
        strict: bool = False,
    ):
        self.n = n
        self.threshold = threshold
        self.max_magpsf = max_magpsf
        self.max_peakmag_so_far = max_peakmag_so_far
        self.min_age = min_age
        self.min_detections = min_detections
        self.strict = strict

    def _check(self) -> None:
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool) or self.n < 1:
            raise ConfigError(f"GtN: n must be an integer >= 1, got {self.n!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"GtN: threshold must lie in [0, 1], got {self.threshold!r}")

    def qualifying(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Which alerts qualify, from the columns of :func:`history_arrays` (any 1-D length)."""
        score = cols["score"]
        ok = score > self.threshold if self.strict else score >= self.threshold
        if self.max_magpsf is not None:
            ok &= cols["magpsf"] < self.max_magpsf
        if self.max_peakmag_so_far is not None:
            ok &= cols["peakmag"] <= self.max_peakmag_so_far
        if self.min_age is not None:
            ok &= cols["age"] >= self.min_age
        if self.min_detections is not None:
            ok &= cols["ndet"] >= self.min_detections
        return ok

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Decision after each alert: at least ``n`` qualifying alerts among ``0..i``."""
        self._check()
        if len(history) == 0:
            return np.zeros(0, dtype=bool)
        return np.cumsum(self.qualifying(history_arrays(history))) >= self.n


_FACTORIES: dict[str, Callable[..., BasePolicy]] = {
    "gt1": lambda **kw: GtN(**{"n": 1, "threshold": 0.5, **kw}),
    "gt2": lambda **kw: GtN(**{"n": 2, "threshold": 0.5, **kw}),
    "gt3": lambda **kw: GtN(**{"n": 3, "threshold": 0.5, **kw}),
    # production rule of BTS autoscan: one alert with score > 0.85 while brighter than 19 mag
    "bts_prod": lambda **kw: GtN(**{"n": 1, "threshold": 0.85, "max_magpsf": 19.0, "strict": True, **kw}),
    # ... and the source must already have peaked at 18.5 mag or brighter
    "bts_prod_peak": lambda **kw: GtN(
        **{"n": 1, "threshold": 0.85, "max_magpsf": 19.0, "max_peakmag_so_far": 18.5, "strict": True, **kw}
    ),
}

#: Names of the fixed policies that :func:`make_policy` knows (``gtK`` works for any K >= 1).
NAMED_POLICIES: tuple[str, ...] = tuple(_FACTORIES)


def register_policy(name: str, factory: Callable[..., BasePolicy]) -> None:
    """Add a named policy factory (keyword overrides are passed to ``factory``)."""
    if name in _FACTORIES:
        raise ConfigError(f"policy name {name!r} is already registered")
    _FACTORIES[name] = factory


def lookup_factory(name: str) -> Callable[..., BasePolicy] | None:
    """The factory registered under ``name``; ``gtK`` for any K; None if unknown."""
    if name in _FACTORIES:
        return _FACTORIES[name]
    match = re.fullmatch(r"gt(\d+)", name)
    if match and int(match.group(1)) >= 1:
        k = int(match.group(1))
        return lambda **kw: GtN(**{"n": k, "threshold": 0.5, **kw})
    return None


def gtn_from_params(params: dict[str, Any]) -> GtN:
    """Build a :class:`GtN` from stored params (unknown keys are a :class:`ConfigError`)."""
    try:
        policy = GtN(**params)
    except TypeError as exc:
        raise ConfigError(f"invalid GtN parameters {params!r}: {exc}") from None
    policy._check()
    return policy
