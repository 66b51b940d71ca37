"""Search a family of gtN policies on validation sources for the purest one at a target completeness.

The family is ``GtN(n, threshold, max_magpsf, min_age, min_detections)`` over a grid, plus named
policies from the registry (by default btsbot 2's four: ``bts_p1``, ``bts_p2``, ``prod_p1``,
``prod_p2``, see :mod:`brightscan.policy.btsbot2`). Each candidate
is evaluated on every validation source at once (alerts flattened, counts accumulated per
source), so a few thousand candidates take seconds. The chosen policy is ``best_``; the search
object then behaves exactly like it, so autoscan can use a fitted search unchanged.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from brightscan.errors import BrightscanWarning, ConfigError
from brightscan.metrics import source_metrics
from brightscan.policy.base import BasePolicy
from brightscan.policy.decision import AlertView, first_pass
from brightscan.policy.records import ScoredAlert, ObjectHistory
from brightscan.policy.registry import create_policy, policy_from_dict, register_policy, register_policy_class
from brightscan.policy.rules import GtN, history_arrays
from brightscan.serial import to_jsonable

log = logging.getLogger(__name__)

#: What :meth:`PolicySearch.fit` does when no candidate reaches the target (see its Notes).
FALLBACKS: tuple[str, ...] = ("gt1", "most_complete")
#: The paper's gt1 as grid parameters (one alert scoring >= 0.5, no cuts).
GT1_PARAMS: Mapping[str, Any] = MappingProxyType(
    {"n": 1, "threshold": 0.5, "max_magpsf": None, "min_age": None, "min_detections": None})

#: Default search grid (keys are :class:`GtN` parameters; None = cut not applied).
DEFAULT_GRID: Mapping[str, tuple[Any, ...]] = MappingProxyType({
    "n": (1, 2, 3),
    "threshold": tuple(round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05)),
    "max_magpsf": (None, 18.5, 19.0, 19.5, 20.0),
    "min_age": (None, 0.5, 1.0, 2.0),
    "min_detections": (None, 2, 3),
})


#: Registered policies tried beside the grid (btsbot 2.0.7's val.py policies).
NAMED_CANDIDATES: tuple[str, ...] = ("bts_p1", "bts_p2", "prod_p1", "prod_p2")


class _Flat:
    """All validation alerts concatenated, with per-source offsets (sources must be non-empty)."""

    def __init__(self, sources: Sequence[ObjectHistory]):
        keep = [s for s in sources if len(s.alerts) > 0]
        self.alerts = [a for s in keep for a in s.alerts]
        cols = [history_arrays(s.alerts) for s in keep]
        self.cols = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]} if cols else {}
        lengths = np.array([len(s.alerts) for s in keep], dtype=int)
        self.starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(int)
        self.ends = np.cumsum(lengths)
        self.labels = np.array([s.label for s in keep], dtype=int)
        self.save_jd = np.array([np.nan if s.save_jd is None else s.save_jd for s in keep], dtype=float)

    def first_pass(self, qualifying: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per source: passed (bool) and the jd of the first alert with >= n qualifying so far."""
        csum = np.cumsum(qualifying)
        before = np.r_[0, csum][self.starts]  # qualifying alerts of earlier sources
        hit = (csum - np.repeat(before, self.ends - self.starts)) >= n
        big = hit.size
        first = np.minimum.reduceat(np.where(hit, np.arange(big), big), self.starts)
        passed = first < big
        pass_jd = np.where(passed, self.cols["jd"][np.minimum(first, big - 1)], np.nan)
        return passed, pass_jd

    def decide(self, policy: BasePolicy) -> tuple[np.ndarray, np.ndarray]:
        """Per source: passed and the first pass's jd, as the decision core answers: counted at once
        for a plain :class:`GtN` (a fitted search counts its ``best_``), asked of the core alert by
        alert for any other policy. ``tests/policy/test_contract.py`` proves the two equal for every
        registered policy."""
        if isinstance(policy, PolicySearch):
            policy = policy._fitted()
        if type(policy) is GtN and self.starts.size:
            policy.validate()
            return self.first_pass(policy.qualifying(self.cols), int(policy.n))
        passed = np.zeros(self.starts.size, dtype=bool)
        pass_jd = np.full(self.starts.size, np.nan)
        for i, (start, end) in enumerate(zip(self.starts, self.ends)):
            index = first_pass(policy, self.alerts[start:end])
            if index is not None:
                passed[i], pass_jd[i] = True, self.alerts[start + index].jd
        return passed, pass_jd


def count_first_passes(policy: BasePolicy, sources: Sequence[ObjectHistory]) -> tuple[np.ndarray, np.ndarray]:
    """``(passed, pass_jd)`` per source with at least one alert, as the policy search counts them
    (vectorised for gtN policies); equal to :func:`brightscan.policy.decision.first_pass` per source."""
    return _Flat(sources).decide(policy)


@register_policy_class
class PolicySearch(BasePolicy):
    """Choose the purest gtN-family policy whose completeness reaches a target.

    Parameters
    ----------
    target_completeness : float
        Minimum source completeness on the validation sources (default 0.99, as the paper's gt1).
    grid : dict, optional
        Values to try per :class:`GtN` parameter; missing keys take :data:`DEFAULT_GRID`'s.
    named : sequence of str, optional
        Registered policies tried beside the grid (default :data:`NAMED_CANDIDATES`; ``[]``: none).
        Their frontier rows have ``params = {"policy": name}``.

    Attributes
    ----------
    best_ : GtN or a named policy
        The chosen policy. Ties in purity go to the earlier median identification, then to the
        higher completeness, then to the first in grid order.
    frontier_ : list of dict
        Pareto frontier of the candidates (no other candidate is at least as complete and as pure
        and better in one), sorted by completeness: params, completeness, purity, median delay.
    target_met_ : bool
        False when no candidate reached the target; ``best_`` then follows ``fallback``.
    rule_ : str
        How ``best_`` was chosen: ``"target"``, ``"gt1"`` or ``"most_complete"``.
    n_candidates_ : int
        Number of policies evaluated (the paper's gt1 is always one of them).

    Notes
    -----
    When no candidate reaches the target on validation (a small split, or a weak model), the
    default ``fallback="gt1"`` lowers the target to the completeness the paper's gt1 reaches
    there and takes the purest candidate at least that complete. gt1 is itself a candidate, so
    the chosen policy is never less complete nor less pure than gt1 on validation; when the
    target is reached, a gt1 that reaches it competes on purity, so again the choice is at least
    as pure. ``fallback="most_complete"`` keeps the most complete candidate instead, which can be
    far less pure than gt1 for a gain of one source.
    """

    def __init__(self, target_completeness: float = 0.99, grid: dict[str, list[Any]] | None = None,
                 fallback: str = "gt1", named: Sequence[str] | None = None):
        self.target_completeness = target_completeness
        self.grid = grid
        self.fallback = fallback
        self.named = named

    def _full_grid(self) -> dict[str, list[Any]]:
        grid = {**DEFAULT_GRID, **(self.grid or {})}
        unknown = set(grid) - set(DEFAULT_GRID)
        if unknown:
            raise ConfigError(f"PolicySearch grid has unknown parameters {sorted(unknown)}")
        return grid

    def fit(self, val_sources: Sequence[ObjectHistory]) -> PolicySearch:
        """Evaluate every grid candidate on ``val_sources`` and keep the best. Returns ``self``."""
        if not 0.0 < self.target_completeness <= 1.0:
            raise ConfigError(f"target_completeness must lie in (0, 1], got {self.target_completeness}")
        if self.fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {FALLBACKS}, not {self.fallback!r}")
        flat = _Flat(val_sources)
        if flat.labels.size == 0 or not np.any(flat.labels == 1):
            raise ConfigError("PolicySearch.fit needs validation sources with at least one bright (label 1) source")
        rows = self._evaluate_grid(flat)
        self.n_candidates_ = len(rows)
        self.frontier_ = _pareto(rows)
        reached = [r for r in rows if r["completeness"] >= self.target_completeness]
        self.target_met_ = bool(reached)
        if reached:
            best, self.rule_ = _purest(reached), "target"
        elif self.fallback == "gt1":
            floor = next(r for r in rows if r["params"] == GT1_PARAMS)["completeness"]
            best, self.rule_ = _purest([r for r in rows if r["completeness"] >= floor]), "gt1"
        else:
            best = max(rows, key=lambda r: (r["completeness"], _nz(r["purity"]), -r["order"]))
            self.rule_ = "most_complete"
        if not reached:
            warnings.warn(
                f"no policy reached completeness {self.target_completeness:.3f} on the validation "
                f"sources; fallback {self.fallback!r} chose one with completeness {best['completeness']:.3f} "
                f"and purity {_nz(best['purity']):.3f}", BrightscanWarning, stacklevel=2,
            )
        named = best["params"].get("policy")
        self.best_ = create_policy(named) if named else GtN.from_dict({"params": best["params"]})
        self.best_score_ = {k: best[k] for k in ("completeness", "purity", "median_delay_days", "n_passed")}
        log.info("policy search: %d candidates, best %r %s", len(rows), self.best_, self.best_score_)
        return self

    def _evaluate_grid(self, flat: _Flat) -> list[dict[str, Any]]:
        grid = self._full_grid()
        cut_keys = ("threshold", "max_magpsf", "min_age", "min_detections")
        rows: list[dict[str, Any]] = []
        for cuts in itertools.product(*(grid[k] for k in cut_keys)):
            params = dict(zip(cut_keys, cuts))
            qualifying = GtN(1, **params).qualifying(flat.cols)  # n does not change which alerts qualify
            for n in grid["n"]:
                passed, pass_jd = flat.first_pass(qualifying, int(n))
                m = source_metrics(flat.labels, passed, pass_jd, flat.save_jd)
                rows.append({"params": {"n": int(n), **params}, "order": len(rows),
                             **{k: m[k] for k in ("completeness", "purity", "median_delay_days", "n_passed")}})
        extra = [] if any(r["params"] == GT1_PARAMS for r in rows) else [(dict(GT1_PARAMS), GtN(**GT1_PARAMS))]
        names = NAMED_CANDIDATES if self.named is None else tuple(self.named)
        extra += [({"policy": name}, create_policy(name)) for name in names]
        for params, policy in extra:  # gt1 is always a candidate; the named ones as the core decides
            passed, pass_jd = flat.decide(policy)
            m = source_metrics(flat.labels, passed, pass_jd, flat.save_jd)
            rows.append({"params": params, "order": len(rows),
                         **{k: m[k] for k in ("completeness", "purity", "median_delay_days", "n_passed")}})
        return rows

    def _fitted(self) -> GtN:
        if not hasattr(self, "best_"):
            raise ConfigError("PolicySearch is not fitted: call fit(val_sources) first")
        return self.best_

    def start(self) -> tuple[Any, ...]:
        """Memory of ``best_``."""
        return self._fitted().start()

    def step(self, memory: tuple[Any, ...], alert: AlertView) -> tuple[tuple[Any, ...], bool]:
        """A step of ``best_``."""
        return self._fitted().step(memory, alert)

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Decisions of ``best_``."""
        return self._fitted().decisions(history)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySearch:
        """Settings, and the chosen policy when ``data`` was fitted."""
        search = super().from_dict(data)
        if "best" in data:
            best = policy_from_dict(data["best"])
            if isinstance(best, PolicySearch):
                raise ConfigError(f"PolicySearch.best must be a plain policy, got {data['best']!r}")
            search.best_ = best
            search.best_score_ = dict(data.get("best_score") or {})
            search.target_met_ = bool(data.get("target_met", True))
            search.rule_ = str(data.get("rule", "target" if search.target_met_ else "most_complete"))
        return search

    def to_dict(self) -> dict[str, Any]:
        """Settings, and once fitted the chosen policy (``best``) and its validation scores."""
        out = super().to_dict()
        if hasattr(self, "best_"):
            out["best"] = self.best_.to_dict()
            out["best_score"] = to_jsonable(self.best_score_)
            out["target_met"] = self.target_met_
            out["rule"] = self.rule_
        return out


def _purest(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Highest purity; ties to the earlier median identification, the higher completeness, grid order."""
    return max(rows, key=lambda r: (_nz(r["purity"]), -_nz(r["median_delay_days"], np.inf),
                                    r["completeness"], -r["order"]))


def _nz(x: float, default: float = 0.0) -> float:
    return default if x is None or not np.isfinite(x) else float(x)


def _pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates not dominated in (completeness, purity), best purity per completeness, sorted."""
    pts = sorted(rows, key=lambda r: (-r["completeness"], -_nz(r["purity"]), _nz(r["median_delay_days"], np.inf)))
    frontier, best_purity = [], -1.0
    for r in pts:
        if _nz(r["purity"]) > best_purity:
            frontier.append({k: r[k] for k in ("params", "completeness", "purity", "median_delay_days", "n_passed")})
            best_purity = _nz(r["purity"])
    return sorted(frontier, key=lambda r: r["completeness"])


register_policy("search", PolicySearch)  # unfitted: fit it on validation objects before use
