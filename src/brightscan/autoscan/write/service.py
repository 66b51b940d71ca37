"""The autoscan loop: consume a delivery → score → store → decide → enqueue, then drain the outbox.

Everything a delivery changes (its alerts, rejections, object states, the actions a newly passing
object triggers, and the record that its input was consumed) is written in ONE transaction, so a
process killed at any instant keeps all of it or none of it; the outbox is drained afterwards in
separate transactions (:mod:`brightscan.autoscan.write.outbox`).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from brightscan.alerts import Alert, Rejection
from brightscan.autoscan.write import outbox, quarantine
from brightscan.autoscan.write.dispatcher import DispatcherThread
from brightscan.autoscan.config import ServiceConfig
from brightscan.autoscan.actions import Sink, save_extras
from brightscan.autoscan.write.feeds import Feed, Delivery
from brightscan.autoscan.store import Store, alerts, consumed_inputs, rejections, sources
from brightscan.policy import ObjectState, ScoredAlert, decide, replay
from brightscan.preprocess.history import History
from brightscan.preprocess.pipeline import Pipeline
from brightscan.score.scorer import score_chunk

__all__ = ["AutoscanService", "DeliveryResult", "load_scorer"]

log = logging.getLogger(__name__)

_CHUNK = 500  # IN-list size for candid / objectId look-ups


def load_scorer(model_dir: str | Path, *, backend: str = "torch", overflow: str = "reject") -> Any:
    """The model package's :class:`~brightscan.score.scorer.Scorer` for a model directory, on CPU.

    It stamps ``model_id`` / ``model_version`` and knows its ``feature_set``.
    """
    from brightscan.score.scorer import Scorer

    return Scorer(model_dir, backend=backend, device="cpu" if backend == "torch" else None,
                  overflow=overflow)


@dataclass
class DeliveryResult:
    """What one delivery did."""

    stored: int = 0  # new alerts stored
    duplicates: int = 0  # alerts already stored (redelivery), skipped
    rejected: int = 0  # rejection records written
    passed: list[str] = field(default_factory=list)  # objects that passed for the first time
    skipped: bool = False  # the whole input was already consumed

    def add(self, other: DeliveryResult) -> None:
        """Add the counts of ``other`` (a chunk or an item processed on its own) to these."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.passed.extend(other.passed)


def _as_float(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class AutoscanService:
    """Turns deliveries of alerts into stored scores, policy decisions and outbox actions.

    Parameters
    ----------
    store : Store
        The opened database.
    scorer : object
        ``score_arrays(triplets, features)`` plus ``model_id``, ``model_version`` and
        ``feature_set`` (the model package's ``Scorer``, see :func:`load_scorer`).
    policy : object
        A ``brightscan.policy`` policy (``passes(history)``, ``to_dict()``).
    sink : Sink
        Where actions are delivered.
    config : ServiceConfig
        Loop settings.
    clock : callable
        Unix time source.
    """

    def __init__(self, store: Store, scorer: Any, policy: Any, sink: Sink,
                 config: ServiceConfig | None = None, clock: Callable[[], float] = time.time):
        self.store = store
        self.scorer = scorer
        self.policy = policy
        self.sink = sink
        self.config = config or ServiceConfig()
        self.clock = clock
        self.owner = outbox.new_owner()  # this service's name on the leases it takes

    # ---- consuming -------------------------------------------------------------------------
    def is_consumed(self, key: str) -> bool:
        """Whether an input with this key was already processed."""
        with self.store.engine.connect() as conn:
            query = sa.select(consumed_inputs.c.key).where(consumed_inputs.c.key == key)
            return conn.execute(query).first() is not None

    def process_delivery(self, delivery: Delivery) -> DeliveryResult:
        """Score, store and decide one delivery: one transaction per chunk of ``chunk_size`` items.

        A small input (one Avro file, a Kafka poll) is one chunk. A big one (a nightly tarball)
        commits chunk by chunk and is marked consumed with its last chunk; if the process dies
        in between, the file is read again and the chunks already stored are skipped by
        ``candid``, so the result is the same.
        """
        result = DeliveryResult()
        if delivery.key is not None and self.is_consumed(delivery.key):
            result.skipped = True
            return result
        items = quarantine.guard_reading(delivery.items, delivery.origin)
        chunk = list(itertools.islice(items, self.config.chunk_size))
        while True:
            following = list(itertools.islice(items, self.config.chunk_size))
            last = not following
            with self.store.transaction() as conn:
                self.store.serialize_writers(conn)
                if delivery.key is not None and _consumed(conn, delivery.key):  # another process won it
                    result.skipped = True
                    break
                self._process_guarded(conn, chunk, delivery, result)
                if last and delivery.key is not None:
                    conn.execute(consumed_inputs.insert().values(
                        key=delivery.key, n_alerts=result.stored, consumed_at=self.clock()))
            if last:
                break
            chunk = following
        log.info("%s: %d stored, %d duplicate, %d rejected, %d passed", delivery.origin, result.stored,
                 result.duplicates, result.rejected, len(result.passed))
        return result

    def _process_guarded(self, conn: Connection, items: list[Alert | Rejection], delivery: Delivery,
                         result: DeliveryResult) -> None:
        """Process a chunk; if it raises something unexpected, process its items one by one and
        quarantine those that raise (a database fault goes on up: the input stays unconsumed)."""
        part = DeliveryResult()
        try:
            with conn.begin_nested():
                self._process_chunk(conn, items, delivery, part)
        except Exception as exc:  # noqa: BLE001 - poison: isolated below, never fatal
            if quarantine.is_service_fault(exc):
                raise
            log.warning("%s: %s; processing its %d items one by one", delivery.origin,
                        quarantine.describe(exc), len(items))
            part = DeliveryResult()
            for item in sorted(items, key=quarantine.safe_order):
                part.add(self._process_one(conn, item, delivery))
        result.add(part)

    def _process_one(self, conn: Connection, item: Alert | Rejection, delivery: Delivery) -> DeliveryResult:
        one = DeliveryResult()
        try:
            with conn.begin_nested():
                self._process_chunk(conn, [item], delivery, one)
            return one
        except Exception as exc:  # noqa: BLE001 - poison: recorded, never fatal
            if quarantine.is_service_fault(exc):
                raise
            rej = quarantine.rejection_for(item, delivery.origin, exc, "processing")
        log.warning("quarantined %s (%s): %s", rej.candid, rej.source, rej.reason)
        one = DeliveryResult(rejected=len(self._new_rejections(conn, [rej])))
        if one.rejected:
            self._insert_rejections(conn, [rej], self.clock())
        return one

    def _process_chunk(self, conn: Connection, items: list[Alert | Rejection], delivery: Delivery,
                       result: DeliveryResult) -> None:
        new, duplicates = self._new_alerts(conn, items)
        history = History(self._load_detections(conn, {a.object_id for a in new}), grow=True)
        chunk = Pipeline(self.scorer.feature_set, overflow=self.config.overflow, history=history).prepare(new)
        scores, bad_scores = score_chunk(self.scorer, chunk)
        rejected = self._new_rejections(conn, [*chunk.rejections, *bad_scores,
                                               *(i for i in items if isinstance(i, Rejection))])
        scored = [_Scored(alert, triplet, dict(zip(_feature_names(self.scorer), features.tolist())), float(score))
                  for alert, triplet, features, score in zip(chunk.alerts, chunk.triplets, chunk.features, scores)
                  if math.isfinite(score)]  # never store a made-up score: the rejection says why
        now = self.clock()
        self._store_alerts(conn, scored, delivery, now)
        self._insert_rejections(conn, rejected, now)
        result.duplicates += duplicates
        result.rejected += len(rejected)
        result.stored += len(scored)
        by_object: dict[str, list[_Scored]] = {}
        for item in scored:  # jd order within each object
            by_object.setdefault(item.alert.object_id, []).append(item)
        for object_id, mine in by_object.items():
            if self._decide(conn, object_id, mine, delivery, now):
                result.passed.append(object_id)

    def _insert_rejections(self, conn: Connection, rejected: list[Rejection], now: float) -> None:
        for rej in rejected:
            conn.execute(rejections.insert().values(
                candid=rej.candid, object_id=rej.object_id, source=rej.source[:500],
                stage=rej.stage, reason=rej.reason, created_at=now))

    def _new_rejections(self, conn: Connection, items: list[Rejection]) -> list[Rejection]:
        """Rejections not recorded yet: a file re-read after a crash must not repeat them."""
        sources_ = sorted({r.source[:500] for r in items})
        known: set[tuple[Any, str, str]] = set()
        for i in range(0, len(sources_), _CHUNK):
            query = sa.select(rejections.c.candid, rejections.c.source, rejections.c.stage).where(
                rejections.c.source.in_(sources_[i:i + _CHUNK]))
            known.update((c, s, st) for c, s, st in conn.execute(query))
        return [r for r in items if (r.candid, r.source[:500], r.stage) not in known]

    def _new_alerts(self, conn: Connection, items: Iterable[Alert | Rejection]) -> tuple[list[Alert], int]:
        delivered = [i for i in items if not isinstance(i, Rejection)]  # ZTF Alerts and RubinAlerts
        unique = list({a.candid: a for a in reversed(delivered)}.values())[::-1]
        known: set[int] = set()
        candids = [a.candid for a in unique]
        for i in range(0, len(candids), _CHUNK):
            part = candids[i:i + _CHUNK]
            known.update(conn.execute(sa.select(alerts.c.candid).where(alerts.c.candid.in_(part))).scalars())
        new = sorted((a for a in unique if a.candid not in known), key=lambda a: (a.jd, a.candid))
        return new, len(delivered) - len(new)

    def _load_detections(self, conn: Connection, object_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
        """The stored detections (``candid``, ``jd``, ``magpsf``, ``fid``) of these objects."""
        history: dict[str, list[dict[str, Any]]] = {o: [] for o in object_ids}
        cols = [alerts.c.object_id, alerts.c.candid, alerts.c.jd, alerts.c.magpsf, alerts.c.fid]
        ids = sorted(object_ids)
        for i in range(0, len(ids), _CHUNK):
            query = sa.select(*cols).where(alerts.c.object_id.in_(ids[i:i + _CHUNK]))
            for row in conn.execute(query).mappings():
                history[row["object_id"]].append(dict(row))
        return history

    def _store_alerts(self, conn: Connection, scored: list[_Scored], delivery: Delivery, now: float) -> None:
        rows = [{"candid": s.alert.candid, "object_id": s.alert.object_id, "jd": s.alert.jd,
                 "magpsf": float(s.alert.candidate["magpsf"]), "fid": s.alert.candidate.get("fid"),
                 "score": s.score, "model_id": self.scorer.model_id, "model_version": self.scorer.model_version,
                 "features": {n: _as_float(v) for n, v in s.features.items()},
                 "input_key": delivery.key or delivery.origin[:500], "arrived_at": delivery.arrived_at, "stored_at": now}
                for s in scored]
        if rows:
            conn.execute(alerts.insert(), rows)

    def _decide(self, conn: Connection, object_id: str, mine: list[_Scored], delivery: Delivery, now: float) -> bool:
        """Run the object's new alerts through the decision core; on its first pass enqueue the
        configured actions. True if it passed in this chunk."""
        row = conn.execute(sa.select(sources).where(sources.c.object_id == object_id)).mappings().first()
        policy_key = self.policy.to_dict()  # once per object and chunk: stored beside the state
        state = self._state(conn, object_id, row, {s.alert.candid for s in mine}, policy_key)
        already = row is not None and row["policy_state"] == "passed"
        identified = None
        last_score = None if row is None else row["last_score"]
        for item in mine:
            alert = _scored_alert(item)
            if state.is_latest(alert):
                last_score = item.score
            decision = decide(self.policy, state, alert)
            state = decision.state
            if decision.first and not already and identified is None:
                identified = item
        values = {"n_alerts": state.n_alerts, "last_score": last_score, "updated_at": now,
                  "decision": {"policy": policy_key, "state": state.to_dict()}}
        if row is None:
            conn.execute(sources.insert().values(object_id=object_id, policy_state="watching", **values))
        else:
            conn.execute(sources.update().where(sources.c.object_id == object_id).values(**values))
        if identified is not None:
            self._identify(conn, object_id, identified, delivery, now)
        return identified is not None

    def _state(self, conn: Connection, object_id: str, row: Any, new_candids: set[int],
               policy_key: dict[str, Any]) -> ObjectState:
        """The object's decision state before this chunk: stored, or (first time under this
        policy, or a database from before the state was kept) rebuilt once from its stored alerts."""
        stored = None if row is None else row["decision"]
        if stored and stored.get("policy") == policy_key:
            return ObjectState.from_dict(stored["state"])
        query = sa.select(alerts.c.candid, alerts.c.jd, alerts.c.magpsf, alerts.c.score, alerts.c.features).where(
            alerts.c.object_id == object_id)
        earlier = [r for r in conn.execute(query).mappings() if r["candid"] not in new_candids]
        earlier.sort(key=lambda r: (r["jd"], r["candid"]))
        return replay(self.policy, [_scored_alert_from_row(r) for r in earlier])

    def _identify(self, conn: Connection, object_id: str, item: _Scored, delivery: Delivery, now: float) -> None:
        alert = item.alert
        conn.execute(sources.update().where(sources.c.object_id == object_id).values(
            policy_state="passed", policy=self.policy.to_dict(), identified_candid=alert.candid,
            identified_jd=alert.jd, identified_at=now,
            triplet=np.asarray(item.triplet, dtype=np.float16).tobytes(),
            followup_state="pending" if "followup" in self.config.actions else None))
        cand = alert.candidate
        payload = {"candid": alert.candid, "jd": alert.jd, "score": item.score,
                   "model_id": self.scorer.model_id, "model_version": self.scorer.model_version,
                   "magpsf": _as_float(cand.get("magpsf")), "ra": _as_float(cand.get("ra")),
                   "dec": _as_float(cand.get("dec"))}
        for kind in self.config.actions:  # save first: the dispatcher keeps this order per object
            # a save carries the light curve and the cutouts: the sink posts them before the save
            body = {**payload, **save_extras(alert)} if kind == "save" else payload
            outbox.enqueue(conn, kind, object_id, body, arrived_at=delivery.arrived_at, now=now)
        log.info("%s passed %s at candid %s (score %.3f)", object_id, self.policy, alert.candid, item.score)

    # ---- acting ----------------------------------------------------------------------------
    def dispatch(self, preempt: Callable[[], bool] | None = None) -> outbox.DispatchStats:
        """Deliver the due pending actions (``preempt``: see :func:`outbox.dispatch`)."""
        c = self.config
        return outbox.dispatch(self.store, self.sink, max_attempts=c.max_attempts,
                               retry_base_s=c.retry_base_s, retry_max_s=c.retry_max_s,
                               budget_s=c.dispatch_budget_s, clock=self.clock, owner=self.owner,
                               lease_s=c.lease_s, preempt=preempt)

    def drain(self, timeout_s: float | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
        """Dispatch until no action is pending (or ``timeout_s``); return how many remain.

        Actions another dispatcher holds are waited for (it settles them or its lease expires).
        """
        deadline = self.clock() + (self.config.drain_timeout_s if timeout_s is None else timeout_s)
        while (due := outbox.next_due(self.store)) is not None:
            if due > deadline:
                break
            if due > self.clock():
                sleep(min(due - self.clock(), 1.0))
                continue
            stats = self.dispatch()
            if not (stats.done or stats.retry or stats.failed):
                sleep(0.05)  # what is due is held elsewhere (or waits behind what is): do not spin
        return outbox.pending_count(self.store)

    def run(self, feed: Feed, *, drain: bool = True) -> int:
        """Consume ``feed`` until it ends (forever for directories/Kafka); return pending count.

        Actions left over from a previous (crashed) run are delivered first. With
        ``dispatch_thread`` (the default) a :class:`DispatcherThread` delivers while this thread
        ingests; otherwise a delivery pass follows each delivery.
        """
        if not self.config.dispatch_thread:
            self.dispatch()
            for delivery in feed.deliveries(self.is_consumed):
                if delivery is not None:
                    self.process_delivery(delivery)
                    feed.commit(delivery)
                self.dispatch()
        else:
            with DispatcherThread(self.dispatch, lambda: outbox.next_due(self.store), self.clock) as thread:
                for delivery in feed.deliveries(self.is_consumed):
                    thread.raise_if_failed()
                    if delivery is not None:
                        self.process_delivery(delivery)
                        feed.commit(delivery)
                        thread.wake()
        return self.drain() if drain else outbox.pending_count(self.store)


def _consumed(conn: Connection, key: str) -> bool:
    return conn.execute(sa.select(consumed_inputs.c.key).where(consumed_inputs.c.key == key)).first() is not None


@dataclass(frozen=True)
class _Scored:
    """A new alert of the chunk with its triplet, features (name -> value) and score."""

    alert: Alert
    triplet: np.ndarray
    features: dict[str, float]
    score: float


def _feature_names(scorer: Any) -> tuple[str, ...]:
    """The feature names of the scorer's feature set, in model order."""
    from brightscan.preprocess import feature_set_names as feature_names  # ZTF and Rubin sets

    return feature_names(scorer.feature_set)


def _scored_alert(item: _Scored) -> ScoredAlert:
    return _make_scored(item.alert.candid, item.alert.jd, item.score, float(item.alert.candidate["magpsf"]),
                        item.features)


def _scored_alert_from_row(row: Any) -> ScoredAlert:
    return _make_scored(row["candid"], row["jd"], row["score"], row["magpsf"], row["features"])


def _make_scored(candid: int, jd: float, score: float, magpsf: float, features: dict[str, Any]) -> ScoredAlert:
    ndethist = _as_float(features.get("ndethist"))
    return ScoredAlert(candid=candid, jd=jd, score=score, magpsf=magpsf,
                       peakmag_so_far=_as_float(features.get("peakmag_so_far")), age=_as_float(features.get("age")),
                       ndethist=None if ndethist is None else int(ndethist))
