"""The four policies btsbot 2.0.7's evaluation (``val.py``) judges objects with.

=========  ===========================================================================
``bts_p1``   at least 2 alerts with score > 0.5 and ``magpsf < 19``
``bts_p2``   ``bts_p1``, once the object's brightest ``magpsf`` so far is <= 18.5
``prod_p1``  at least 1 alert with score > 0.85 and ``magpsf < 19``
``prod_p2``  ``prod_p1``, once the object's brightest ``magpsf`` so far is <= 18.5
=========  ===========================================================================

As ``val.py`` applies them, at each alert over the object's alerts so far:

- the score test of ``bts_*`` is ``preds == 1`` with ``preds = np.rint(score)``; ``rint`` rounds a
  half to even, so a score of exactly 0.5 gives 0: the test is ``score > 0.5`` (strict);
- the brightness condition of ``*_p2`` is on the running minimum of ``magpsf`` (not the
  ``peakmag_so_far`` feature) and it gates the *count*, not each alert: alerts that qualified
  before the object got that bright count once it has.

``val.py`` also leaves objects out before applying any policy: fewer than 2 alerts, and bright
transients (label 1) whose brightest alert left after thinning is fainter than 18.5.
``brightscan evaluate`` applies the same selection to every policy
(:func:`brightscan.evaluate.objects.select_objects`, ``min_alerts=2``, ``bright_peak_limit=18.5``),
so all policies are compared on the same objects; one difference: brightscan's observed peak also
counts ``peakmag_so_far`` (and a recorded peak), not only the brightest remaining alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brightscan.errors import ConfigError
from brightscan.policy.base import BasePolicy
from brightscan.policy.decision import AlertView
from brightscan.policy.records import ScoredAlert
from brightscan.policy.registry import register_policy, register_policy_class
from brightscan.policy.rules import GtN, history_arrays

__all__ = ["GtNOnceBright"]


@register_policy_class
class GtNOnceBright(BasePolicy):
    """Pass once ``n`` alerts qualified *and* the object's brightest ``magpsf`` so far is bright enough.

    Parameters
    ----------
    n : int
        Qualifying alerts needed (>= 1).
    threshold : float
        Score threshold in [0, 1]; an alert qualifies with ``score > threshold`` (``>=`` unless
        ``strict``) and ``magpsf < max_magpsf``.
    max_magpsf : float
        Per-alert magnitude cut.
    max_brightest_magpsf : float
        The object passes only once ``min(magpsf)`` over its alerts so far is ``<=`` this.
    strict : bool
        Compare the score with ``>`` (btsbot's rules) instead of ``>=``.
    """

    def __init__(self, n: int = 2, threshold: float = 0.5, max_magpsf: float = 19.0,
                 max_brightest_magpsf: float = 18.5, strict: bool = True):
        self.n = n
        self.threshold = threshold
        self.max_magpsf = max_magpsf
        self.max_brightest_magpsf = max_brightest_magpsf
        self.strict = strict

    def validate(self) -> None:
        GtN(n=self.n, threshold=self.threshold).validate()
        for name in ("max_magpsf", "max_brightest_magpsf"):
            if not np.isfinite(float(getattr(self, name))):
                raise ConfigError(f"GtNOnceBright: {name} must be a finite magnitude")

    def _qualifies(self, score: Any, magpsf: Any) -> Any:
        ok = score > self.threshold if self.strict else score >= self.threshold
        return ok & (magpsf < self.max_magpsf)

    def start(self) -> tuple[int, float]:
        """Memory: alerts qualified so far, and the brightest ``magpsf`` so far."""
        self.validate()
        return (0, float("inf"))

    def step(self, memory: tuple[Any, ...], alert: AlertView) -> tuple[tuple[int, float], bool]:
        """Count this alert if it qualifies, track the brightest magnitude; pass when both hold."""
        count = int(memory[0]) + bool(self._qualifies(alert.score, alert.magpsf))
        brightest = min(float(memory[1]), alert.magpsf)
        return (count, brightest), count >= self.n and brightest <= self.max_brightest_magpsf

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Vectorised :meth:`step` over a jd-sorted history."""
        self.validate()
        if len(history) == 0:
            return np.zeros(0, dtype=bool)
        cols = history_arrays(history)
        counted = np.cumsum(self._qualifies(cols["score"], cols["magpsf"])) >= self.n
        return counted & (np.minimum.accumulate(cols["magpsf"]) <= self.max_brightest_magpsf)


def _register() -> None:
    register_policy("bts_p1", lambda **o: GtN(**{"n": 2, "threshold": 0.5, "max_magpsf": 19.0,
                                                 "strict": True, **o}))
    register_policy("prod_p1", lambda **o: GtN(**{"n": 1, "threshold": 0.85, "max_magpsf": 19.0,
                                                  "strict": True, **o}))
    register_policy("bts_p2", lambda **o: GtNOnceBright(**{"n": 2, "threshold": 0.5, **o}))
    register_policy("prod_p2", lambda **o: GtNOnceBright(**{"n": 1, "threshold": 0.85, **o}))


_register()
