"""The decision core: an object's small state plus one new scored alert gives a decision.

Pure functions over immutable values — no I/O, no clock, no database — so the live service
(:mod:`brightscan.autoscan.write.service`, which stores the state beside each object) and the offline
evaluation (:func:`replay`, over a test split's objects) decide with the same code, alert by alert,
and cannot disagree about the same alerts.

The cost of a decision does not depend on how many alerts the object already has: the state keeps
running values (alerts so far, first ``jd``, brightest ``magpsf``) and the policy's own small
memory (for gtN, how many alerts qualified so far), never the history itself. Alerts of an object
are expected in ``jd`` order, as a feed delivers them and as :func:`replay` sorts them; a late alert
is taken as it arrives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from brightscan.policy.records import ScoredAlert

__all__ = ["AlertView", "Decision", "ObjectState", "StepPolicy", "decide", "first_pass", "replay"]


@dataclass(frozen=True)
class AlertView:
    """One alert as a policy sees it, with the causal fallbacks of missing fields applied."""

    score: float  # model score
    magpsf: float  # PSF magnitude of this alert
    jd: float  # observation time
    peakmag: float  # peakmag_so_far feature, else the brightest magpsf of the object so far
    age: float  # age feature, else days since the object's first alert
    ndet: float  # ndethist, else the number of alerts so far (this one included)


class StepPolicy(Protocol):
    """What the core needs of a policy (every :class:`~brightscan.policy.base.BasePolicy` is one);
    the core never imports the policies, so the policy package has no import cycle."""

    def start(self) -> tuple[Any, ...]:
        """The policy's memory for an object with no alerts yet."""

    def step(self, memory: tuple[Any, ...], alert: AlertView) -> tuple[tuple[Any, ...], bool]:
        """One new alert: the updated memory, and whether the object passes at this alert."""


@dataclass(frozen=True)
class ObjectState:
    """What the core remembers of one object between its alerts (JSON-serialisable)."""

    n_alerts: int = 0  # alerts decided so far
    first_jd: float | None = None  # jd of the object's first alert
    min_magpsf: float | None = None  # brightest magpsf so far
    last_jd: float | None = None  # the latest alert so far (jd, then candid): a late alert is not it
    last_candid: int | None = None
    memory: tuple[Any, ...] = ()  # the policy's own state (gtN: alerts that qualified so far)
    passed_candid: int | None = None  # alert at which the object first passed (None: not yet)
    passed_jd: float | None = None  # its jd: the decision time

    @property
    def passed(self) -> bool:
        """Whether the object has passed."""
        return self.passed_candid is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (:meth:`from_dict` reads it back)."""
        return {"n_alerts": self.n_alerts, "first_jd": self.first_jd, "min_magpsf": self.min_magpsf,
                "last_jd": self.last_jd, "last_candid": self.last_candid, "memory": list(self.memory),
                "passed_candid": self.passed_candid, "passed_jd": self.passed_jd}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectState:
        """The state :meth:`to_dict` wrote."""
        return cls(n_alerts=int(data["n_alerts"]), first_jd=data["first_jd"], min_magpsf=data["min_magpsf"],
                   last_jd=data["last_jd"], last_candid=data["last_candid"], memory=tuple(data["memory"]),
                   passed_candid=data["passed_candid"], passed_jd=data["passed_jd"])

    def is_latest(self, alert: ScoredAlert) -> bool:
        """Whether ``alert`` is (or would be) the object's latest alert by ``(jd, candid)``."""
        return self.last_jd is None or (alert.jd, alert.candid) >= (self.last_jd, self.last_candid)


@dataclass(frozen=True)
class Decision:
    """The outcome of one alert."""

    passes: bool  # the object passes at this alert (gtN: and at every later one)
    first: bool  # ... and this is the first alert at which it does: act now
    state: ObjectState  # the object's state after this alert


def _given(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def view(state: ObjectState, alert: ScoredAlert) -> AlertView:
    """The alert with the causal fallbacks filled in from the state (alerts so far only)."""
    magpsf = float(alert.magpsf)
    brightest = magpsf if state.min_magpsf is None else min(state.min_magpsf, magpsf)
    first_jd = alert.jd if state.first_jd is None else state.first_jd
    return AlertView(
        score=float(alert.score), magpsf=magpsf, jd=float(alert.jd),
        peakmag=float(alert.peakmag_so_far) if _given(alert.peakmag_so_far) else brightest,
        age=float(alert.age) if _given(alert.age) else float(alert.jd) - first_jd,
        ndet=float(alert.ndethist) if alert.ndethist is not None else float(state.n_alerts + 1),
    )


def decide(policy: StepPolicy, state: ObjectState, alert: ScoredAlert) -> Decision:
    """Decide one new alert of an object.

    Parameters
    ----------
    policy : StepPolicy
        Any registered policy (it implements ``start`` and ``step``).
    state : ObjectState
        The object's state before this alert (``ObjectState()`` for a new object).
    alert : ScoredAlert
        The new alert, with its score.
    """
    memory = state.memory if state.n_alerts else policy.start()
    memory, passes = policy.step(memory, view(state, alert))
    magpsf = float(alert.magpsf)
    latest = state.is_latest(alert)
    new = replace(
        state, n_alerts=state.n_alerts + 1,
        last_jd=float(alert.jd) if latest else state.last_jd,
        last_candid=int(alert.candid) if latest else state.last_candid,
        first_jd=float(alert.jd) if state.first_jd is None else state.first_jd,
        min_magpsf=magpsf if state.min_magpsf is None else min(state.min_magpsf, magpsf),
        memory=tuple(memory),
    )
    first = passes and not state.passed
    if first:
        new = replace(new, passed_candid=int(alert.candid), passed_jd=float(alert.jd))
    return Decision(passes=passes, first=first, state=new)


def replay(policy: StepPolicy, alerts: Sequence[ScoredAlert],
           state: ObjectState | None = None) -> ObjectState:
    """Decide an object's alerts one by one, in the order given; the final state.

    Give ``alerts`` sorted by ``jd`` (:func:`brightscan.policy.sort_history`) to replay a night as
    the service saw it; ``state.passed_jd`` is then the decision time.
    """
    state = state or ObjectState()
    for alert in alerts:
        state = decide(policy, state, alert).state
    return state


def first_pass(policy: StepPolicy, alerts: Sequence[ScoredAlert]) -> int | None:
    """The one answer to "when did this object first pass?": the index in ``alerts`` of the alert
    at which the core first passes the object, deciding them one by one in the order given
    (sorted by ``jd``, that alert's ``jd`` is the decision time); None when it never passes."""
    state = ObjectState()
    for i, alert in enumerate(alerts):
        decision = decide(policy, state, alert)
        if decision.first:
            return i
        state = decision.state
    return None
