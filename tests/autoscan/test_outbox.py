"""Outbox action states (pending, unconfirmed, done, failed), replay, 429 counts in the database
and the night summary, and the schema migration that records them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from brightscan.autoscan.write import outbox
from brightscan.autoscan.actions import SinkError
from brightscan.autoscan.store import action_attempts, actions, alerts, open_store, sources
from brightscan.autoscan.pages.night import write_summary
from brightscan.errors import InputError

OBJ = "ZTF25aaaaaab"


class _Scripted:
    """A sink that answers from a script: a str is done, an exception is raised."""

    def __init__(self, *outcomes, rate_limited_per_call=0):
        self.outcomes, self.seen, self.rate_limited = list(outcomes), [], 0
        self.per_call = rate_limited_per_call

    def deliver(self, action):
        self.seen.append((action.idempotency_key, action.unconfirmed))
        self.rate_limited += self.per_call
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _store(tmp_path, kinds=("save", "followup")):
    store = open_store(f"sqlite:///{tmp_path / 'db'}")
    with store.transaction() as conn:
        conn.execute(sources.insert().values(object_id=OBJ, n_alerts=1, policy_state="passed", last_score=0.9,
                                             identified_jd=2461000.6, updated_at=0.0))
        conn.execute(alerts.insert().values(candid=1, object_id=OBJ, jd=2461000.6, magpsf=18.0, score=0.9,
                                            model_id="m", model_version="1", features={}, arrived_at=0.0,
                                            stored_at=0.0))
        for kind in kinds:
            outbox.enqueue(conn, kind, OBJ, {"score": 0.9}, arrived_at=0.0, now=0.0)
    return store


def _rows(store, table):
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()]


def _dispatch(store, sink, **kw):
    return outbox.dispatch(store, sink, retry_base_s=0.0, clock=lambda: 1e9, **kw)


def test_an_ambiguous_failure_makes_the_action_unconfirmed_until_settled(tmp_path):
    store = _store(tmp_path, kinds=("followup",))
    sink = _Scripted(SinkError("no answer within 0.3 s", retryable=True, ambiguous=True),
                     SinkError("request 5 is still 'pending submission'", retryable=True, ambiguous=True),
                     "follow-up request 5 exists (submitted)", rate_limited_per_call=2)
    for _ in range(3):
        _dispatch(store, sink)
        if _rows(store, actions)[0]["state"] == "unconfirmed":
            assert outbox.pending_count(store) == 1  # unconfirmed is still to deliver
    assert sink.seen == [(f"followup:{OBJ}", False), (f"followup:{OBJ}", True), (f"followup:{OBJ}", True)]
    assert [a["outcome"] for a in _rows(store, action_attempts)] == ["unconfirmed", "unconfirmed", "done"]
    assert [a["rate_limited"] for a in _rows(store, action_attempts)] == [2, 2, 2]
    assert _rows(store, actions)[0]["state"] == "done"
    store.dispose()


def test_a_replayed_failed_action_is_delivered_again_in_order(tmp_path):
    store = _store(tmp_path)
    refusal = SinkError("POST /api/sources: HTTP 400: Failed to post source: Cannot find group_id 7.",
                        retryable=False)
    _dispatch(store, _Scripted(refusal))
    save, followup = _rows(store, actions)
    assert (save["state"], followup["state"]) == ("failed", "failed")
    assert "earlier action" in followup["last_error"]
    history = outbox.replay(store, save["id"], now=5.0)
    assert history.action["state"] == "pending" and history.attempts[-1]["outcome"] == "replayed"
    with pytest.raises(InputError, match="is pending; only a failed action"):
        outbox.replay(store, save["id"], now=5.0)
    assert "Cannot find group_id 7" in history.attempts[-1]["detail"]
    outbox.replay(store, followup["id"], now=5.0)
    assert _rows(store, sources)[0]["followup_state"] == "pending"
    sink = _Scripted("saved to groups [7]", "follow-up request 3 created (submitted)")
    _dispatch(store, sink)
    assert [k for k, _ in sink.seen] == [f"save:{OBJ}", f"followup:{OBJ}"]
    assert [a["state"] for a in _rows(store, actions)] == ["done", "done"]
    with pytest.raises(InputError, match="no action with id 99"):
        outbox.action_history(store, 99)
    store.dispose()


def test_the_summary_counts_429s(tmp_path):
    store = _store(tmp_path, kinds=("save",))
    _dispatch(store, _Scripted("saved", rate_limited_per_call=3))
    store.dispose()
    page = write_summary(f"sqlite:///{tmp_path / 'db'}", "2025-11-21", tmp_path / "sum").read_text()
    assert "3 SkyPortal 429s (rate limited)" in _visible_text(page)  # the count, then its label


def _visible_text(html: str) -> str:
    """The text a reader sees, whitespace folded (not how the HTML spells it)."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.hidden = 0

        def handle_starttag(self, tag, attrs):
            self.hidden += tag in ("script", "style")

        def handle_endtag(self, tag):
            self.hidden -= tag in ("script", "style")

        def handle_data(self, data):
            if not self.hidden:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def test_a_version_1_database_gains_the_429_column(tmp_path):
    from brightscan.autoscan.store import MIGRATIONS, migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    migrate(engine, MIGRATIONS[:1])
    with engine.begin() as conn:  # what brightscan wrote before these columns existed
        conn.exec_driver_sql("ALTER TABLE action_attempts DROP COLUMN rate_limited")
        conn.exec_driver_sql("ALTER TABLE sources DROP COLUMN decision")
        conn.exec_driver_sql("ALTER TABLE actions DROP COLUMN lease_owner")
        conn.exec_driver_sql("ALTER TABLE actions DROP COLUMN lease_until")
        conn.exec_driver_sql("INSERT INTO action_attempts (id, action_id, attempt, outcome, detail, started_at, "
                             "finished_at) VALUES (1, 1, 1, 'done', 'ok', 0.0, 1.0)")
    engine.dispose()
    store = open_store(url)
    assert store.schema_version() == 4
    assert _rows(store, action_attempts)[0]["rate_limited"] == 0
    with store.engine.connect() as conn:  # migration 4: the lease columns
        assert {"lease_owner", "lease_until"} <= {c["name"] for c in sa.inspect(conn).get_columns("actions")}
    store.dispose()


def test_saves_go_first_and_each_objects_order_holds(tmp_path):
    """Under a rate limit, a newly passing object's save does not wait behind earlier objects'
    follow-ups and annotations; an object's own actions keep their order."""
    store = _store(tmp_path, kinds=("save", "followup", "annotation"))
    other = "ZTF25aaaaaac"
    with store.transaction() as conn:
        for kind in ("save", "followup", "annotation"):
            outbox.enqueue(conn, kind, other, {"score": 0.8}, arrived_at=1.0, now=1.0)
    sink = _Scripted(*["ok"] * 6)
    _dispatch(store, sink)
    assert [key for key, _ in sink.seen] == [
        f"save:{OBJ}", f"save:{other}", f"followup:{OBJ}", f"annotation:{OBJ}",
        f"followup:{other}", f"annotation:{other}"]
    store.dispose()


def test_a_follow_up_pending_at_the_facility_is_checked_until_its_end_date_not_failed_by_count(tmp_path):
    """SEDM may take longer than eight checks: a request still "pending submission" is asked about
    again past max_attempts, and given up only once its end date has passed."""
    store = _store(tmp_path, kinds=("followup",))
    end = 1e9 + 7 * 86400.0
    pending = [SinkError("follow-up request 5 is still 'pending submission'", retryable=True, wait_until=end)
               for _ in range(6)]
    sink = _Scripted(*pending, "follow-up request 5 exists (submitted)")
    for _ in range(7):  # max_attempts 3, yet six pending answers do not fail it
        outbox.dispatch(store, sink, max_attempts=3, retry_base_s=0.0, clock=lambda: 1e9)
    (action,) = _rows(store, actions)
    assert action["state"] == "done" and action["attempts"] == 7
    (tmp_path / "late").mkdir()
    late = _store(tmp_path / "late", kinds=("followup",))
    sink = _Scripted(SinkError("follow-up request 6 is still 'pending submission'", retryable=True, wait_until=end))
    outbox.dispatch(late, sink, max_attempts=3, retry_base_s=0.0, clock=lambda: end + 1)
    (action,) = _rows(late, actions)
    assert action["state"] == "failed" and "end date" in action["last_error"]
    store.dispose()
    late.dispose()


def test_an_unexpected_error_in_a_sink_is_a_recorded_attempt_not_a_crash(tmp_path):
    """Poison: a sink raising something other than SinkError (a bug, an answer it cannot read)
    neither stops dispatch nor goes unrecorded; it is retried as ambiguous, then failed."""
    store = _store(tmp_path, kinds=("save",))
    sink = _Scripted(ValueError("unexpected answer shape"), KeyError("id"))
    _dispatch(store, sink, max_attempts=2)
    (action,) = _rows(store, actions)
    assert action["state"] == "unconfirmed" and action["last_error"] == "unexpected ValueError: unexpected answer shape"
    _dispatch(store, sink, max_attempts=2)
    (action,) = _rows(store, actions)
    assert action["state"] == "failed" and action["last_error"].startswith("unexpected KeyError")
    assert len(_rows(store, action_attempts)) == 2
    store.dispose()


def test_a_claimed_action_is_skipped_and_an_expired_lease_is_taken_over_checking_first(tmp_path):
    store = _store(tmp_path, kinds=("save", "followup"))
    save_id = _rows(store, actions)[0]["id"]
    held = outbox.claim(store, save_id, "dead-process", lease_s=60.0, now=1e9)
    assert held is not None and not held.took_over
    assert outbox.claim(store, save_id, "another", lease_s=60.0, now=1e9 + 1) is None  # still held
    sink = _Scripted()
    stats = outbox.dispatch(store, sink, clock=lambda: 1e9 + 30, owner="me")
    # the save is held elsewhere, and the follow-up waits behind its save
    assert (sink.seen, stats.claimed_elsewhere) == ([], 1)
    sink = _Scripted("saved", "requested")
    outbox.dispatch(store, sink, clock=lambda: 1e9 + 61, owner="me")
    # the taker does not know what the dead holder sent: the sink must check before sending
    assert sink.seen == [(f"save:{OBJ}", True), (f"followup:{OBJ}", False)]
    assert {(r["state"], r["lease_owner"], r["lease_until"]) for r in _rows(store, actions)} == {("done", None, None)}


def test_an_outcome_is_recorded_only_by_the_lease_holder(tmp_path):
    store = _store(tmp_path, kinds=("save",))

    class _Stalls:
        """Delivers, but meanwhile its lease expired and another dispatcher took the action."""

        rate_limited = 0

        def deliver(self, action):
            assert outbox.claim(store, _rows(store, actions)[0]["id"], "taker", lease_s=60.0, now=2e9) is not None
            return "saved"

    outbox.dispatch(store, _Stalls(), clock=lambda: 1e9, owner="stalled", lease_s=5.0)
    row = _rows(store, actions)[0]
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("pending", "taker", 0)
    assert _rows(store, action_attempts)[0]["detail"].startswith("lease lost before recording")


def test_preempt_ends_a_pass_before_a_non_save_action_once_one_was_tried(tmp_path):
    """New actions announced: the pass ends (new saves go first in the next), but every pass
    tries one action at least, so a busy feed cannot starve follow-ups and annotations."""
    store = _store(tmp_path, kinds=("save", "followup", "annotation"))
    sink = _Scripted("saved", "requested", "annotated")
    passes = [outbox.dispatch(store, sink, clock=lambda: 1e9, preempt=lambda: True).done for _ in range(3)]
    assert passes == [1, 1, 1]
    assert [k for k, _ in sink.seen] == [f"save:{OBJ}", f"followup:{OBJ}", f"annotation:{OBJ}"]
    assert {r["state"] for r in _rows(store, actions)} == {"done"}


def test_next_due_is_the_end_of_another_dispatchers_lease(tmp_path):
    store = _store(tmp_path, kinds=("save",))
    assert outbox.claim(store, _rows(store, actions)[0]["id"], "other", lease_s=60.0, now=1e9) is not None
    assert outbox.next_due(store) == 1e9 + 60  # not the action's own due time (0): no busy loop
