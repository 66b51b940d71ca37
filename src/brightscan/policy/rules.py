"""Fixed threshold policies (gtN and the production magnitude-cut policies) and their registry.

``GtN(n, threshold)`` passes a source once ``n`` of its alerts so far scored at or above
``threshold`` (and met the optional magnitude, age and detection cuts). The paper's ``gt1`` is
``GtN(1, 0.5)``; the production rule "score > 0.85 and magpsf < 19" is ``GtN(1, 0.85,
max_magpsf=19, strict=True)``. Counting only grows with time, so once a gtN policy passes a
source it keeps passing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from brightscan.errors import ConfigError
from brightscan.policy.base import BasePolicy
from brightscan.policy.decision import AlertView
from brightscan.policy.registry import register_policy, register_policy_class, register_policy_pattern
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


@register_policy_class
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

    def validate(self) -> None:
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

    def start(self) -> tuple[int]:
        """Memory: the number of alerts that qualified so far."""
        self.validate()
        return (0,)

    def step(self, memory: tuple[Any, ...], alert: AlertView) -> tuple[tuple[int], bool]:
        """Count this alert if it qualifies; pass once ``n`` have (the same tests as :meth:`qualifying`)."""
        ok = alert.score > self.threshold if self.strict else alert.score >= self.threshold
        if self.max_magpsf is not None:
            ok = ok and alert.magpsf < self.max_magpsf
        if self.max_peakmag_so_far is not None:
            ok = ok and alert.peakmag <= self.max_peakmag_so_far
        if self.min_age is not None:
            ok = ok and alert.age >= self.min_age
        if self.min_detections is not None:
            ok = ok and alert.ndet >= self.min_detections
        count = int(memory[0]) + bool(ok)
        return (count,), count >= self.n

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Decision after each alert: at least ``n`` qualifying alerts among ``0..i`` (vectorised)."""
        self.validate()
        if len(history) == 0:
            return np.zeros(0, dtype=bool)
        return np.cumsum(self.qualifying(history_arrays(history))) >= self.n


def _gtn(**defaults: Any) -> Callable[..., GtN]:
    """A factory of GtN with these defaults; keyword overrides replace them."""
    return lambda **overrides: GtN(**{**defaults, **overrides})


register_policy("gt1", _gtn(n=1, threshold=0.5))  # the paper's policy
register_policy("gt2", _gtn(n=2, threshold=0.5))
register_policy("gt3", _gtn(n=3, threshold=0.5))
# production rule of BTS autoscan: one alert with score > 0.85 while brighter than 19 mag
register_policy("bts_prod", _gtn(n=1, threshold=0.85, max_magpsf=19.0, strict=True))
# ... and the object must already have peaked at 18.5 mag or brighter
register_policy("bts_prod_peak", _gtn(n=1, threshold=0.85, max_magpsf=19.0, max_peakmag_so_far=18.5, strict=True))
register_policy_pattern(r"gt([1-9]\d*)", "gtK", lambda match: _gtn(n=int(match.group(1)), threshold=0.5))
