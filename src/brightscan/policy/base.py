"""The policy interface: a source-level decision over a causal, jd-sorted score history.

Policies follow scikit-learn conventions: the constructor only stores settings (readable through
:meth:`BasePolicy.get_params`), :meth:`BasePolicy.fit` learns from validation sources and returns
``self`` (a no-op for fixed policies), and learned state ends in ``_``. A fitted policy is stored
with :meth:`BasePolicy.to_dict` and rebuilt with :func:`brightscan.policy.policy_from_dict`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from brightscan.policy.records import ScoredAlert, SourceHistory
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

    def fit(self, val_sources: Sequence[SourceHistory]) -> BasePolicy:
        """Learn from validation sources; fixed policies learn nothing. Returns ``self``."""
        return self

    def decisions(self, history: Sequence[ScoredAlert]) -> np.ndarray:
        """Boolean decision after each alert of a jd-sorted history (shape ``(len(history),)``)."""
        raise NotImplementedError

    def passes(self, history: Sequence[ScoredAlert]) -> bool:
        """Whether the source passes at the last alert of ``history`` (alerts up to now only)."""
        if len(history) == 0:
            return False
        return bool(self.decisions(history)[-1])

    def first_pass_index(self, history: Sequence[ScoredAlert]) -> int | None:
        """Index of the first alert at which the source passes, or None if it never does."""
        if len(history) == 0:
            return None
        hits = np.flatnonzero(self.decisions(history))
        return int(hits[0]) if hits.size else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description that :func:`policy_from_dict` turns back into a policy."""
        return {"policy": type(self).__name__, "params": to_jsonable(self.get_params())}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable settings, like scikit-learn estimators
