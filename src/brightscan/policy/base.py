"""The policy interface: a source-level decision over a causal, jd-sorted score history.

Policies follow scikit-learn conventions: the constructor only stores settings (readable through
:meth:`BasePolicy.get_params`), :meth:`BasePolicy.fit` learns from validation sources and returns
``self`` (a no-op for fixed policies), and learned state ends in ``_``. A fitted policy is stored
with :meth:`BasePolicy.to_dict` and rebuilt with :func:`brightscan.policy.policy_from_dict`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from brightscan.errors import ConfigError
from brightscan.policy.decision import AlertView, ObjectState, decide, first_pass
from brightscan.policy.records import ScoredAlert, ObjectHistory
from brightscan.serial import to_jsonable


class BasePolicy:
    """Base class of all policies.

    Subclasses implement :meth:`decisions`, which must be causal: the decision at alert ``i``
    depends only on alerts ``0..i``.
    """

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (as scikit-learn's ``get_params(deep=False)``)."""
        names = [
            p.name for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def validate(self) -> None:
        """Raise ``ConfigError`` when the settings are invalid (fixed policies check their values)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BasePolicy:
        """Rebuild from :meth:`to_dict` output; ``ConfigError`` on unknown or invalid settings."""
        return validated_policy(cls, dict(data.get("params") or {}), cls.__name__)

    def fit(self, val_sources: Sequence[ObjectHistory]) -> BasePolicy:
        """Learn from validation sources; fixed policies learn nothing. Returns ``self``."""
        return self

    def start(self) -> tuple[Any, ...]:
        """The policy's memory for an object with no alerts yet (a small JSON-able tuple)."""
        raise NotImplementedError

    def step(self, memory: tuple[Any, ...], alert: AlertView) -> tuple[tuple[Any, ...], bool]:
        """One new alert: the updated memory, and whether the object passes at this alert.

        Must cost the same whatever the number of earlier alerts; the decision core
        (:func:`brightscan.policy.decision.decide`) calls it.
        """
        raise NotImplementedError

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Boolean decision after each alert of a jd-sorted history (shape ``(len(history),)``).

        The default folds :meth:`step` over the history through the decision core; policies may
        override it with a vectorised version that gives the same answer (the contract test checks).
        """
        state, out = ObjectState(), np.zeros(len(history), dtype=bool)
        for i, alert in enumerate(history):
            decision = decide(self, state, alert)
            state, out[i] = decision.state, decision.passes
        return out

    def passes(self, history: Sequence[ScoredAlert]) -> bool:
        """Whether the source passes at the last alert of ``history`` (alerts up to now only)."""
        if len(history) == 0:
            return False
        return bool(self.decisions(history)[-1])

    def first_pass_index(self, history: Sequence[ScoredAlert]) -> int | None:
        """Index of the first alert at which the object passes, or None if it never does: the
        decision core's answer (:func:`brightscan.policy.decision.first_pass`)."""
        return first_pass(self, history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description that :func:`policy_from_dict` turns back into a policy."""
        return {"policy": type(self).__name__, "params": to_jsonable(self.get_params())}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable settings, like scikit-learn estimators


def validated_policy(factory: Callable[..., BasePolicy], settings: dict[str, Any], what: str) -> BasePolicy:
    """``factory(**settings)``, validated; a ``ConfigError`` naming ``what`` when the settings are wrong.

    (Named ``build_policy`` before; that name now means autoscan's policy from its config.)
    """
    try:
        policy = factory(**settings)
    except TypeError as exc:
        raise ConfigError(f"invalid settings for policy {what!r} {settings!r}: {exc}") from None
    policy.validate()
    return policy
