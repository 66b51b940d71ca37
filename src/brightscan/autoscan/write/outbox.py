"""The transactional outbox: actions are enqueued with the alerts that caused them, then drained.

:func:`enqueue` runs inside the chunk's transaction, so an action exists if and only if the alert
that triggered it was stored. :func:`dispatch` hands open actions to the sink one at a time and
records each outcome in its own transaction. A crash between the sink's acknowledgement and that
record leaves the action open; it is delivered again after restart, and the sink's
check-before-write (see :mod:`brightscan.autoscan.actions`) turns the repeat into a no-op.

Action states: ``pending`` (to deliver), ``unconfirmed`` (to deliver; a request it sent may have
been applied without an answer, so the sink must find out before sending again), ``done`` and
``failed`` (given up on; :func:`replay` makes it pending again).

One dispatcher per action, however many run: before delivering, a dispatcher *claims* the action
with a lease (:func:`claim`, one atomic conditional update checked by its row count), keeps it
renewed while the sink works, and clears it in the transaction that records the outcome. Another
process (a second ``autoscan run``, a cron ``scan``, ``retry --deliver``) skips a claimed action and
takes only unclaimed work. A lease found expired was left by a dispatcher that died mid-delivery:
the taker treats the attempt as ambiguous and the sink checks before sending anything.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from brightscan.autoscan.actions import ActionRequest, Sink, SinkError
from brightscan.autoscan.store import action_attempts, actions, sources, Store
from brightscan.errors import InputError

__all__ = ["DEFAULT_LEASE_S", "OPEN_STATES", "Claim", "DispatchStats", "action_history", "claim",
           "dispatch", "enqueue", "new_owner", "pending_count", "replay"]

#: States of an action still to be delivered.
OPEN_STATES = ("pending", "unconfirmed")
#: How long a claim holds without renewal (a dispatcher renews it every third of this while delivering).
DEFAULT_LEASE_S = 60.0

log = logging.getLogger(__name__)


def enqueue(conn: Connection, kind: str, object_id: str, payload: dict[str, Any], *,
            arrived_at: float | None, now: float) -> bool:
    """Add an action unless one with the same idempotency key exists; True when added."""
    key = f"{kind}:{object_id}"
    exists = conn.execute(sa.select(actions.c.id).where(actions.c.idempotency_key == key)).first()
    if exists is not None:
        return False
    conn.execute(actions.insert().values(
        kind=kind, object_id=object_id, idempotency_key=key, payload=payload, state="pending",
        attempts=0, next_attempt_at=now, arrived_at=arrived_at, created_at=now, updated_at=now))
    return True


def pending_count(store: Store) -> int:
    """Actions still waiting to be delivered (pending or unconfirmed)."""
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(actions).where(actions.c.state.in_(OPEN_STATES))
        return int(conn.execute(query).scalar() or 0)


def next_due(store: Store) -> float | None:
    """Earliest time an open action can be attempted (None when none is open): its
    ``next_attempt_at``, or the end of another dispatcher's lease on it."""
    due = sa.case((actions.c.lease_until > actions.c.next_attempt_at, actions.c.lease_until),
                  else_=actions.c.next_attempt_at)
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.min(due)).where(actions.c.state.in_(OPEN_STATES))).scalar()
        return None if value is None else float(value)


def new_owner() -> str:
    """A dispatcher's lease owner name: ``host:pid:random`` (unique per dispatch call site)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Claim:
    """A claimed action: its row as read under the claim, and whether an expired lease was taken over."""

    row: Any  # the actions row (mapping), fresh
    took_over: bool  # another dispatcher held it and died (or stalled) mid-delivery: ambiguous


def claim(store: Store, action_id: int, owner: str, *, lease_s: float, now: float) -> Claim | None:
    """Claim one open, due action for ``owner`` until ``now + lease_s``; None when it cannot be had.

    One conditional ``UPDATE ... WHERE id AND state open AND due AND (no lease or lease expired)``
    whose row count says whether this dispatcher won. On PostgreSQL the row is locked first
    (``SELECT ... FOR UPDATE``) so reading who held it and taking it are one step; SQLite's
    ``BEGIN IMMEDIATE`` serialises the whole transaction.
    """
    where = sa.and_(actions.c.id == action_id, actions.c.state.in_(OPEN_STATES),
                    actions.c.next_attempt_at <= now,
                    sa.or_(actions.c.lease_until.is_(None), actions.c.lease_until < now))
    with store.transaction() as conn:
        held_by = conn.execute(sa.select(actions.c.lease_owner).where(actions.c.id == action_id)
                               .with_for_update()).scalar()
        won = conn.execute(actions.update().where(where).values(lease_owner=owner, lease_until=now + lease_s))
        if won.rowcount != 1:
            return None
        row = conn.execute(sa.select(actions).where(actions.c.id == action_id)).mappings().one()
    if held_by is not None:
        log.warning("%s: took over an expired lease of %s; checking before sending", row["idempotency_key"],
                    held_by)
    return Claim(row=row, took_over=held_by is not None)


class _LeaseKeeper:
    """Renews a claim every third of the lease while the sink works (a long follow-up POST)."""

    def __init__(self, store: Store, action_id: int, owner: str, lease_s: float, clock: Callable[[], float]):
        self._args = (store, action_id, owner, lease_s, clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{action_id}", daemon=True)

    def _run(self) -> None:
        store, action_id, owner, lease_s, clock = self._args
        while not self._stop.wait(lease_s / 3.0):
            with store.transaction() as conn:
                conn.execute(actions.update().where(actions.c.id == action_id, actions.c.lease_owner == owner)
                             .values(lease_until=clock() + lease_s))

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class DispatchStats:
    """What one dispatch pass did."""

    done: int = 0  # actions the sink acknowledged
    retry: int = 0  # attempts that failed and will be retried
    failed: int = 0  # actions given up on
    claimed_elsewhere: int = 0  # due actions another dispatcher holds (skipped, with their object's later ones)


def dispatch(store: Store, sink: Sink, *, max_attempts: int = 8, retry_base_s: float = 2.0,
             retry_max_s: float = 300.0, budget_s: float | None = None,
             clock: Callable[[], float] = time.time, owner: str | None = None,
             lease_s: float = DEFAULT_LEASE_S, preempt: Callable[[], bool] | None = None) -> DispatchStats:
    """Deliver the due pending actions: every save first, then the other actions, in creation order.

    The pass ends early after a retryable failure (the sink is probably down: trying every
    other action now would only stall ingestion behind timeouts) and, with ``budget_s``, once
    that many seconds have gone; what is left waits for the next pass.

    Actions of one object are delivered in order: when one is not done (not yet due, or failed
    this time), later actions of the same object wait, so a follow-up request never overtakes
    the save it depends on. When one has failed for good, the later ones are marked failed
    without being sent (a follow-up for an object that could not be saved needs a human).

    Each action is claimed (:func:`claim`) as ``owner`` (default: a new name) before anything is
    sent; one another dispatcher holds is skipped, and so are its object's later actions.

    ``preempt`` is asked before each action that is not a save, once the pass has tried one: True
    ends the pass, because new actions were enqueued meanwhile (the dispatcher thread's wake-up),
    so a newly passing object's save waits behind one follow-up or annotation, not a pass of them.
    """
    owner = owner or new_owner()
    stats = DispatchStats()
    with store.engine.connect() as conn:
        # saves first, then the rest, each in creation order: under SkyPortal's rate limit a
        # newly passing object's save does not queue behind earlier objects' follow-ups and
        # annotations. An object's save is created before its other actions, so the order within
        # one object is unchanged.
        rows = conn.execute(sa.select(actions).where(actions.c.state.in_(OPEN_STATES))
                            .order_by(sa.case((actions.c.kind == "save", 0), else_=1), actions.c.id)
                            ).mappings().all()
        # object -> its earliest failed action: a later action of that object is not sent
        failed_objects = dict(conn.execute(
            sa.select(actions.c.object_id, sa.func.min(actions.c.id)).where(
                actions.c.state == "failed", actions.c.object_id.in_({r["object_id"] for r in rows}))
            .group_by(actions.c.object_id)).all())
    blocked: set[str] = set()
    started = clock()
    for row in rows:
        if budget_s is not None and clock() - started > budget_s:
            break
        tried = stats.done + stats.retry + stats.failed
        if preempt is not None and tried and row["kind"] != "save" and preempt():
            break  # after one action at least, so a busy feed cannot starve the follow-ups
        if row["object_id"] in blocked or row["next_attempt_at"] > clock():
            blocked.add(row["object_id"])
            continue
        claimed = claim(store, row["id"], owner, lease_s=lease_s, now=clock())
        if claimed is None:  # another dispatcher has it (or has just settled it)
            blocked.add(row["object_id"])
            stats.claimed_elsewhere += 1
            continue
        row = claimed.row
        if failed_objects.get(row["object_id"], row["id"]) < row["id"]:
            _record(store, row, owner, "failed", "not sent: an earlier action of this source failed",
                    {"state": "failed", "last_error": "an earlier action of this source failed"},
                    clock(), clock())
            stats.failed += 1
            continue
        with _LeaseKeeper(store, row["id"], owner, lease_s, clock):
            outcome = _attempt(store, sink, row, owner, claimed.took_over, max_attempts, retry_base_s,
                               retry_max_s, clock)
        kind = "retry" if outcome == "unconfirmed" else outcome
        setattr(stats, kind, getattr(stats, kind) + 1)
        if outcome == "failed":
            failed_objects.setdefault(row["object_id"], row["id"])
        elif kind == "retry":
            break
    return stats


def _attempt(store: Store, sink: Sink, row: Any, owner: str, took_over: bool, max_attempts: int,
             retry_base_s: float, retry_max_s: float, clock: Callable[[], float]) -> str:
    request = ActionRequest(row["kind"], row["object_id"], row["idempotency_key"], row["payload"],
                            unconfirmed=row["state"] == "unconfirmed" or took_over)
    started, limited = clock(), getattr(sink, "rate_limited", 0)
    try:
        detail = sink.deliver(request)
        outcome, error, ambiguous = "done", None, False
    except SinkError as exc:
        detail = error = str(exc)
        ambiguous = exc.ambiguous
        waiting = exc.wait_until is not None and clock() < exc.wait_until  # not counted against max_attempts
        gave_up = not exc.retryable or (row["attempts"] + 1 >= max_attempts and not waiting)
        if exc.wait_until is not None and not waiting:
            detail = error = f"{exc} -- still so at its end date; giving up"
            gave_up = True
        outcome = "failed" if gave_up else ("unconfirmed" if ambiguous else "retry")
    except Exception as exc:  # noqa: BLE001 - poison: any other error is a recorded, retried attempt
        # Documented decision (docs/autoscan.md): a bug or an unexpected answer in one action must
        # not stop dispatch nor crash-loop the service. The attempt is recorded with the error's
        # type, and treated as ambiguous (it may have sent something): the next attempt checks first.
        log.exception("unexpected error delivering %s", row["idempotency_key"])
        detail = error = f"unexpected {type(exc).__name__}: {exc}"[:1000]
        ambiguous = True
        gave_up = row["attempts"] + 1 >= max_attempts
        outcome = "failed" if gave_up else "unconfirmed"
    finished = clock()
    attempts = row["attempts"] + 1
    values: dict[str, Any] = {"attempts": attempts, "updated_at": finished, "last_error": error}
    if outcome == "done":
        values.update(state="done", acked_at=finished)
    elif outcome == "failed":
        values.update(state="failed")
        log.error("giving up on %s after %d attempt(s): %s", row["idempotency_key"], attempts, error)
    else:
        values.update(state="unconfirmed" if ambiguous else "pending",
                      next_attempt_at=finished + min(retry_max_s, retry_base_s * 2 ** (attempts - 1)))
        log.warning("%s failed (attempt %d), will retry: %s", row["idempotency_key"], attempts, error)
    rate_limited = getattr(sink, "rate_limited", 0) - limited
    _record(store, row, owner, outcome, detail, values, started, finished, rate_limited)
    log.info("%s: %s (%s)", row["idempotency_key"], outcome, detail)
    return outcome


def _record(store: Store, row: Any, owner: str, outcome: str, detail: str, values: dict[str, Any],
            started: float, finished: float, rate_limited: int = 0) -> None:
    """One transaction: the action's new state with its lease cleared, its attempt history row, the
    object's state (its ``sources`` row).

    Only while ``owner`` still holds the lease: a dispatcher that stalled past its lease (and was
    taken over) records its attempt in the history but leaves the action to the new holder.
    """
    values = {"attempts": row["attempts"] + 1, "updated_at": finished, **values,
              "lease_owner": None, "lease_until": None}
    with store.transaction() as conn:
        held = conn.execute(actions.update().where(actions.c.id == row["id"], actions.c.lease_owner == owner)
                            .values(**values)).rowcount == 1
        if not held:
            log.error("%s: lease lost during delivery (another dispatcher took it over); its attempt is "
                      "kept in the history only", row["idempotency_key"])
            detail = f"lease lost before recording: {detail}"
        conn.execute(action_attempts.insert().values(
            action_id=row["id"], attempt=values["attempts"], outcome=outcome, detail=detail,
            started_at=started, finished_at=finished, rate_limited=rate_limited))
        if held:
            _update_object(conn, row, outcome, finished)


def _update_object(conn: Connection, row: Any, outcome: str, now: float) -> None:
    where = sources.c.object_id == row["object_id"]
    if row["kind"] == "save" and outcome == "done":
        conn.execute(sources.update().where(where).values(saved_at=now, updated_at=now))
    elif row["kind"] == "followup" and outcome in ("done", "failed"):
        state = "requested" if outcome == "done" else "failed"
        conn.execute(sources.update().where(where).values(followup_state=state, updated_at=now))


@dataclass
class ActionHistory:
    """An action and every attempt at it, oldest first (what ``autoscan retry`` shows)."""

    action: dict[str, Any]  # the actions row
    attempts: list[dict[str, Any]]  # its action_attempts rows


def action_history(store: Store, action_id: int) -> ActionHistory:
    """Read one action and its attempts; :class:`InputError` when there is no such action."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(actions).where(actions.c.id == action_id)).mappings().first()
        if row is None:
            raise InputError(f"no action with id {action_id} in this database")
        tries = conn.execute(sa.select(action_attempts).where(action_attempts.c.action_id == action_id)
                             .order_by(action_attempts.c.id)).mappings().all()
    return ActionHistory(dict(row), [dict(t) for t in tries])


def replay(store: Store, action_id: int, *, now: float) -> ActionHistory:
    """Make a failed action pending again, with a fresh attempt budget; return its history.

    The next dispatch pass (a running service, or ``autoscan retry --deliver``) delivers it,
    starting, like every attempt, by checking what already exists.
    """
    history = action_history(store, action_id)
    row = history.action
    if row["state"] != "failed":
        raise InputError(f"action {action_id} ({row['idempotency_key']}) is {row['state']}; "
                         "only a failed action can be replayed")
    with store.transaction() as conn:
        conn.execute(actions.update().where(actions.c.id == action_id, actions.c.state == "failed")
                     .values(state="pending", attempts=0, next_attempt_at=now, updated_at=now,
                             lease_owner=None, lease_until=None))
        conn.execute(action_attempts.insert().values(
            action_id=action_id, attempt=0, outcome="replayed", started_at=now, finished_at=now,
            detail=f"replayed by hand; it had failed with: {row['last_error']}"))
        if row["kind"] == "followup":
            conn.execute(sources.update().where(sources.c.object_id == row["object_id"])
                         .values(followup_state="pending", updated_at=now))
    return action_history(store, action_id)
