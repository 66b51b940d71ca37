"""One contract over every registered policy: serialisable, deterministic, causal, and the decision
core (alert by alert, as autoscan decides) agrees with the policy's own ``decisions``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.errors import ConfigError
from brightscan.policy import (
    ObjectHistory,
    ObjectState,
    ScoredAlert,
    create_policy,
    decide,
    first_pass,
    list_policies,
    policy_from_dict,
    replay,
)


def _validation_objects() -> list[ObjectHistory]:
    rng = np.random.default_rng(0)
    objects = []
    for i in range(40):
        label = i % 2
        jds = np.sort(2460000.5 + rng.uniform(0, 20, 6))
        alerts = tuple(ScoredAlert(candid=i * 100 + k, jd=float(jd), score=float(np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0, 1)),
                                   magpsf=float(rng.uniform(16, 20)), ndethist=k + 1)
                       for k, jd in enumerate(jds))
        objects.append(ObjectHistory(f"ZTF{i:08d}", label, alerts, save_jd=float(jds[2]) if label else None))
    return objects


def _build(name: str):
    """Every registered name, built as a user would (a search fitted on validation objects)."""
    if name == "gtK":
        name = "gt4"
    policy = create_policy(name)
    if name == "search":
        policy.fit(_validation_objects())
    return policy


POLICIES = list_policies()

alert_lists = st.lists(
    st.tuples(
        st.floats(0, 1), st.floats(14, 21), st.floats(0, 30),
        st.one_of(st.none(), st.floats(14, 21)), st.one_of(st.none(), st.floats(0, 30)),
        st.one_of(st.none(), st.integers(1, 50)),
    ),
    max_size=12,
)


def _history(rows) -> tuple[ScoredAlert, ...]:
    alerts = [ScoredAlert(candid=i, jd=2460000.5 + dt, score=s, magpsf=m, peakmag_so_far=p, age=a, ndethist=n)
              for i, (s, m, dt, p, a, n) in enumerate(rows)]
    return tuple(sorted(alerts, key=lambda a: (a.jd, a.candid)))


def test_every_family_is_registered():
    assert {"gt1", "gt2", "gt3", "bts_prod", "bts_prod_peak", "search", "gtK"} <= set(POLICIES)


@pytest.mark.parametrize("name", POLICIES)
def test_serialisable(name):
    policy = _build(name)
    data = json.loads(json.dumps(policy.to_dict()))
    again = policy_from_dict(data)
    assert again.to_dict() == policy.to_dict()
    history = _validation_objects()[1].alerts
    assert np.array_equal(again.decisions(history), policy.decisions(history))


@pytest.mark.parametrize("name", POLICIES)
@settings(max_examples=60, deadline=None)
@given(rows=alert_lists)
def test_core_agrees_with_decisions_and_is_causal_and_deterministic(name, rows):
    policy = _build(name)
    history = _history(rows)
    vectorised = policy.decisions(history)
    state, core = ObjectState(), []
    for alert in history:
        decision = decide(policy, state, alert)
        assert decision.first == (decision.passes and not any(core))  # act once, at the first pass
        core.append(decision.passes)
        state = decision.state
    assert np.array_equal(np.array(core, dtype=bool), vectorised)
    # causal: the decision at alert i does not depend on later alerts
    for i in range(len(history)):
        assert bool(policy.decisions(history[: i + 1])[-1]) == bool(vectorised[i])
    # deterministic, and the final state survives a JSON round trip
    assert replay(policy, history) == state
    assert ObjectState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    first = int(np.argmax(vectorised)) if vectorised.any() else None
    assert state.passed_candid == (None if first is None else history[first].candid)


def test_unknown_or_invalid_policies_are_config_errors():
    with pytest.raises(ConfigError, match="unknown policy"):
        create_policy("gt0")
    with pytest.raises(ConfigError, match="threshold"):
        create_policy("gt1", threshold=2.0)
    with pytest.raises(ConfigError, match="unknown policy class"):
        policy_from_dict({"policy": "Nope", "params": {}})


object_lists = st.lists(alert_lists.filter(len), min_size=1, max_size=6)


def _search_choosing(named: str):
    """A search fitted so that btsbot 2's ``named`` policy is its choice (a grid of one weak gtN)."""
    from brightscan.policy.search import PolicySearch

    grid = {"n": [3], "threshold": [0.95], "max_magpsf": [None], "min_age": [None], "min_detections": [None]}
    search = PolicySearch(grid=grid, named=[named], target_completeness=0.5).fit(_validation_objects())
    assert search.best_ == create_policy(named), search.best_
    return search


def _assert_search_counts_as_core(policy, objects) -> None:
    """``count_first_passes`` (the search's count) equals ``first_pass`` (the core) per object."""
    from brightscan.policy.search import count_first_passes

    histories = [ObjectHistory(f"ZTF{i:08d}", i % 2, _history(rows)) for i, rows in enumerate(objects)]
    passed, pass_jd = count_first_passes(policy, histories)
    for i, history in enumerate(histories):
        index = first_pass(policy, history.alerts)
        assert passed[i] == (index is not None)
        assert pass_jd[i] == history.alerts[index].jd if index is not None else np.isnan(pass_jd[i])
        assert policy.first_pass_index(history.alerts) == index


@pytest.mark.parametrize("named", ["bts_p1", "bts_p2", "prod_p1", "prod_p2"])
@settings(max_examples=30, deadline=None)
@given(objects=object_lists)
def test_a_search_that_chose_a_btsbot2_policy_counts_as_the_core(named, objects):
    """The search's candidates include btsbot 2's policies; one chosen is counted as the core decides."""
    search = _search_choosing(named)
    _assert_search_counts_as_core(search, objects)
    for rows in objects:
        history = _history(rows)
        assert first_pass(search, history) == first_pass(create_policy(named), history)


@pytest.mark.parametrize("name", POLICIES)
@settings(max_examples=40, deadline=None)
@given(objects=object_lists)
def test_the_search_counts_first_passes_as_the_core_answers(name, objects):
    """The policy search's vectorised count may keep its fast path: it equals the core's answer."""
    _assert_search_counts_as_core(_build(name), objects)
