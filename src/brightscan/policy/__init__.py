"""Source-level policies: map a source's causal history of alert scores to "save it" or not.

The same objects run in the offline evaluation and in the real-time autoscan service::

    from brightscan.policy import make_policy, policy_from_dict, ScoredAlert
    policy = make_policy("gt1")
    policy.passes(history)            # history: jd-sorted ScoredAlert up to the current alert
    policy.first_pass_index(history)  # int or None
    policy_from_dict(policy.to_dict())
"""

from __future__ import annotations

from typing import Any

from brightscan.errors import ConfigError
from brightscan.policy.base import BasePolicy
from brightscan.policy.records import ScoredAlert, SourceHistory, sort_history
from brightscan.policy.rules import (
    NAMED_POLICIES,
    GtN,
    gtn_from_params,
    lookup_factory,
    register_policy,
)
from brightscan.policy.search import DEFAULT_GRID, PolicySearch

__all__ = [
    "BasePolicy", "DEFAULT_GRID", "GtN", "NAMED_POLICIES", "PolicySearch", "ScoredAlert", "SourceHistory",
    "make_policy", "policy_from_dict", "register_policy", "sort_history",
]


def make_policy(name: str, **overrides: Any) -> BasePolicy:
    """Build a policy by name: ``gt1``, ``gt2``, ``gt3`` (any ``gtK``), ``bts_prod``,
    ``bts_prod_peak`` or ``search`` (an unfitted :class:`PolicySearch`).

    Keyword ``overrides`` replace the named policy's settings, e.g.
    ``make_policy("gt1", threshold=0.7)``.
    """
    if name == "search":
        return PolicySearch(**overrides)
    factory = lookup_factory(name)
    if factory is None:
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(NAMED_POLICIES)}, gtK, search")
    try:
        policy = factory(**overrides)
    except TypeError as exc:
        raise ConfigError(f"invalid settings for policy {name!r}: {exc}") from None
    if isinstance(policy, GtN):
        policy._check()
    return policy


def policy_from_dict(data: dict[str, Any]) -> BasePolicy:
    """Rebuild a policy from :meth:`BasePolicy.to_dict` output (a fitted search keeps ``best_``)."""
    if not isinstance(data, dict) or "policy" not in data:
        raise ConfigError(f"not a policy description: {data!r}")
    kind, params = data["policy"], dict(data.get("params") or {})
    if kind == "GtN":
        return gtn_from_params(params)
    if kind == "PolicySearch":
        search = PolicySearch(**params)
        if "best" in data:
            best = policy_from_dict(data["best"])
            if not isinstance(best, GtN):
                raise ConfigError(f"PolicySearch.best must be a GtN policy, got {data['best']!r}")
            search.best_ = best
            search.best_score_ = dict(data.get("best_score") or {})
            search.target_met_ = bool(data.get("target_met", True))
        return search
    raise ConfigError(f"unknown policy class {kind!r}")
