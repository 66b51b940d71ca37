"""Object-level policies: map an object's causal history of alert scores to "save it" or not.

The same objects run in the offline evaluation and in the real-time autoscan service, through one
decision core (:mod:`brightscan.policy.decision`)::

    from brightscan.policy import ObjectState, create_policy, decide, policy_from_dict
    policy = create_policy("gt1")
    decision = decide(policy, ObjectState(), scored_alert)   # .passes, .first, .state
    policy_from_dict(policy.to_dict())

Policies are registered by name (:mod:`brightscan.policy.registry`), like the model presets.
"""

from __future__ import annotations

from brightscan.policy.base import BasePolicy
from brightscan.policy.decision import AlertView, Decision, ObjectState, StepPolicy, decide, first_pass, replay
from brightscan.policy.records import ObjectHistory, ScoredAlert, sort_history
from brightscan.policy.registry import (
    create_policy,
    list_policies,
    policy_from_dict,
    register_policy,
    register_policy_class,
    register_policy_pattern,
)
from brightscan.policy.rules import GtN
from brightscan.policy.btsbot2 import GtNOnceBright  # noqa: E402  (registers bts_p1/p2, prod_p1/p2)
from brightscan.policy.search import DEFAULT_GRID, PolicySearch

__all__ = [
    "AlertView", "BasePolicy", "DEFAULT_GRID", "Decision", "GtN", "GtNOnceBright", "ObjectHistory", "ObjectState", "PolicySearch",
    "ScoredAlert", "StepPolicy", "create_policy", "decide", "first_pass", "list_policies", "policy_from_dict",
    "register_policy", "register_policy_class", "register_policy_pattern", "replay", "sort_history",
]
