"""The autoscan loop: consume a delivery → score → store → decide → enqueue, then drain the outbox.

Everything a delivery changes (its alerts, rejections, source states, the actions a newly passing
source triggers, and the record that its input was consumed) is written in ONE transaction, so a
process killed at any instant keeps all of it or none of it; the outbox is drained afterwards in
separate transactions (:mod:`brightscan.autoscan.outbox`).
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
from brightscan.autoscan import outbox
from brightscan.autoscan.config import ServiceConfig
from brightscan.autoscan.sinks import Sink
from brightscan.autoscan.feeds import Feed, Delivery
from brightscan.autoscan.store import Store, alerts, consumed_inputs, rejections, sources
from brightscan.errors import AlertError

__all__ = ["AutoscanService", "DeliveryResult", "load_scorer"]

log = logging.getLogger(__name__)

_CHUNK = 500  # IN-list size for candid / objectId look-ups


def load_scorer(model_dir: str | Path, *, backend: str = "torch", overflow: str = "reject") -> Any:
    """The model package's :class:`~brightscan.model.scorer.Scorer` for a model directory, on CPU.

    It stamps ``model_id`` / ``model_version`` and knows its ``feature_set``.
    """
    from brightscan.model.scorer import Scorer

    return Scorer(model_dir, backend=backend, device="cpu" if backend == "torch" else None,
                  overflow=overflow)


@dataclass
class DeliveryResult:
    """What one delivery did."""

    stored: int = 0  # new alerts stored
    duplicates: int = 0  # alerts already stored (redelivery), skipped
    rejected: int = 0  # rejection records written
    passed: list[str] = field(default_factory=list)  # sources that passed for the first time
    skipped: bool = False  # the whole input was already consumed


def _candidate_row(alert: Alert) -> dict[str, Any]:
    c = alert.candidate
    return {"candid": alert.candid, "jd": float(c["jd"]), "magpsf": c.get("magpsf"), "fid": c.get("fid")}


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
        items = iter(delivery.items)
        chunk = list(itertools.islice(items, self.config.chunk_size))
        while True:
            following = list(itertools.islice(items, self.config.chunk_size))
            last = not following
            with self.store.transaction() as conn:
                self._process_chunk(conn, chunk, delivery, result)
                if last and delivery.key is not None:
                    conn.execute(consumed_inputs.insert().values(
                        key=delivery.key, n_alerts=result.stored, consumed_at=self.clock()))
            if last:
                break
            chunk = following
        log.info("%s: %d stored, %d duplicate, %d rejected, %d passed", delivery.origin, result.stored,
                 result.duplicates, result.rejected, len(result.passed))
        return result

    def _process_chunk(self, conn: Connection, items: list[Alert | Rejection], delivery: Delivery,
                       result: DeliveryResult) -> None:
        new, duplicates = self._new_alerts(conn, items)
        history = self._load_history(conn, {a.object_id for a in new})
        prepared, rejected = self._prepare(new, history)
        rejected = self._new_rejections(conn, rejected + [i for i in items if isinstance(i, Rejection)])
        now = self.clock()
        self._store_alerts(conn, prepared, history, delivery, now)
        for rej in rejected:
            conn.execute(rejections.insert().values(
                candid=rej.candid, object_id=rej.object_id, source=rej.source[:500],
                stage=rej.stage, reason=rej.reason, created_at=now))
        result.duplicates += duplicates
        result.rejected += len(rejected)
        result.stored += len(prepared)
        for object_id in dict.fromkeys(p["alert"].object_id for p in prepared):
            if self._decide(conn, object_id, history[object_id], prepared, delivery, now):
                result.passed.append(object_id)

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
        batch_alerts = [i for i in items if isinstance(i, Alert)]
        unique = list({a.candid: a for a in reversed(batch_alerts)}.values())[::-1]
        known: set[int] = set()
        candids = [a.candid for a in unique]
        for i in range(0, len(candids), _CHUNK):
            part = candids[i:i + _CHUNK]
            known.update(conn.execute(sa.select(alerts.c.candid).where(alerts.c.candid.in_(part))).scalars())
        new = sorted((a for a in unique if a.candid not in known), key=lambda a: (a.jd, a.candid))
        return new, len(batch_alerts) - len(new)

    def _load_history(self, conn: Connection, object_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
        history: dict[str, list[dict[str, Any]]] = {o: [] for o in object_ids}
        cols = [alerts.c.object_id, alerts.c.candid, alerts.c.jd, alerts.c.magpsf, alerts.c.fid,
                alerts.c.score, alerts.c.features]
        ids = sorted(object_ids)
        for i in range(0, len(ids), _CHUNK):
            query = sa.select(*cols).where(alerts.c.object_id.in_(ids[i:i + _CHUNK]))
            for row in conn.execute(query).mappings():
                history[row["object_id"]].append(dict(row))
        return history

    def _prepare(self, new: list[Alert], history: dict[str, list[dict[str, Any]]]
                 ) -> tuple[list[dict[str, Any]], list[Rejection]]:
        """Triplets and causal features of the new alerts (jd order), stored earlier ones first."""
        from brightscan.preprocess import preprocess_alert

        prepared, rejected = [], []
        earlier: dict[str, list[dict[str, Any]]] = {o: [dict(r) for r in rows] for o, rows in history.items()}
        for alert in new:
            try:
                triplet, feats = preprocess_alert(alert, self.scorer.feature_set,
                                                  earlier=earlier[alert.object_id],
                                                  overflow=self.config.overflow)
            except AlertError as exc:
                rejected.append(Rejection(alert.candid, alert.object_id, alert.source, exc.stage, exc.reason))
                continue
            except Exception:
                # a bug, not bad data: log which alert, roll the delivery back, stop (restart retries it)
                log.exception("unexpected error preprocessing candid %s (%s)", alert.candid, alert.object_id)
                raise
            earlier[alert.object_id].append(_candidate_row(alert))
            prepared.append({"alert": alert, "triplet": triplet, "features": feats})
        if prepared:
            scores = self.scorer.score_arrays(np.stack([p["triplet"] for p in prepared]).astype(np.float32),
                                              np.stack([p["features"] for p in prepared]).astype(np.float32))
            for p, score in zip(prepared, scores):
                p["score"] = float(score)
            for p in [p for p in prepared if not math.isfinite(p["score"])]:
                # never store a made-up score: the alert is rejected with the reason
                a = p["alert"]
                rejected.append(Rejection(a.candid, a.object_id, a.source, "score", "model score is not finite"))
                prepared.remove(p)
        return prepared, rejected

    def _store_alerts(self, conn: Connection, prepared: list[dict[str, Any]],
                      history: dict[str, list[dict[str, Any]]], delivery: Delivery, now: float) -> None:
        from brightscan.preprocess import feature_names

        names = feature_names(self.scorer.feature_set)
        rows = []
        for p in prepared:
            alert, cand = p["alert"], p["alert"].candidate
            features = {n: _as_float(v) for n, v in zip(names, p["features"])}
            row = {"candid": alert.candid, "object_id": alert.object_id, "jd": alert.jd,
                   "magpsf": float(cand["magpsf"]), "fid": cand.get("fid"), "score": p["score"],
                   "model_id": self.scorer.model_id, "model_version": self.scorer.model_version,
                   "features": features, "input_key": delivery.key or delivery.origin[:500],
                   "arrived_at": delivery.arrived_at, "stored_at": now}
            rows.append(row)
            history[alert.object_id].append(row)
        if rows:
            conn.execute(alerts.insert(), rows)

    def _decide(self, conn: Connection, object_id: str, rows: list[dict[str, Any]],
                prepared: list[dict[str, Any]], delivery: Delivery, now: float) -> bool:
        """Update the source; on its first pass enqueue the configured actions. True if it passed."""
        from brightscan.policy import ScoredAlert

        state = conn.execute(sa.select(sources).where(sources.c.object_id == object_id)).mappings().first()
        scored = sorted(rows, key=lambda r: (r["jd"], r["candid"]))
        last = max(rows, key=lambda r: (r["jd"], r["candid"]))
        values = {"n_alerts": len(rows), "last_score": last["score"], "updated_at": now}
        if state is None:
            conn.execute(sources.insert().values(object_id=object_id, policy_state="watching", **values))
        else:
            conn.execute(sources.update().where(sources.c.object_id == object_id).values(**values))
        if state is not None and state["policy_state"] == "passed":
            return False
        mine = [p for p in prepared if p["alert"].object_id == object_id]
        new_candids = {p["alert"].candid for p in mine}
        known = [r for r in scored if r["candid"] not in new_candids]
        for p in mine:  # arrival (jd) order: the first new alert at which the source passes
            known = sorted([*known, next(r for r in rows if r["candid"] == p["alert"].candid)],
                           key=lambda r: (r["jd"], r["candid"]))
            history = [ScoredAlert(candid=r["candid"], jd=r["jd"], score=r["score"], magpsf=r["magpsf"],
                                   peakmag_so_far=r["features"].get("peakmag_so_far"),
                                   age=r["features"].get("age"),
                                   ndethist=_as_int(r["features"].get("ndethist")))
                       for r in known]
            if self.policy.passes(history):
                self._identify(conn, object_id, p, delivery, now)
                return True
        return False

    def _identify(self, conn: Connection, object_id: str, p: dict[str, Any], delivery: Delivery, now: float) -> None:
        alert = p["alert"]
        conn.execute(sources.update().where(sources.c.object_id == object_id).values(
            policy_state="passed", policy=self.policy.to_dict(), identified_candid=alert.candid,
            identified_jd=alert.jd, identified_at=now,
            triplet=np.asarray(p["triplet"], dtype=np.float16).tobytes(),
            followup_state="pending" if "followup" in self.config.actions else None))
        cand = alert.candidate
        payload = {"candid": alert.candid, "jd": alert.jd, "score": p["score"],
                   "model_id": self.scorer.model_id, "model_version": self.scorer.model_version,
                   "magpsf": _as_float(cand.get("magpsf")), "ra": _as_float(cand.get("ra")),
                   "dec": _as_float(cand.get("dec"))}
        for kind in self.config.actions:  # save first: the dispatcher keeps this order per source
            outbox.enqueue(conn, kind, object_id, payload, arrived_at=delivery.arrived_at, now=now)
        log.info("%s passed %s at candid %s (score %.3f)", object_id, self.policy, alert.candid, p["score"])

    # ---- acting ----------------------------------------------------------------------------
    def dispatch(self) -> outbox.DispatchStats:
        """Deliver the due pending actions."""
        c = self.config
        return outbox.dispatch(self.store, self.sink, max_attempts=c.max_attempts,
                               retry_base_s=c.retry_base_s, retry_max_s=c.retry_max_s,
                               budget_s=c.dispatch_budget_s, clock=self.clock)

    def drain(self, timeout_s: float | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
        """Dispatch until no action is pending (or ``timeout_s``); return how many remain."""
        deadline = self.clock() + (self.config.drain_timeout_s if timeout_s is None else timeout_s)
        while (due := outbox.next_due(self.store)) is not None:
            if due > deadline:
                break
            if due > self.clock():
                sleep(min(due - self.clock(), 1.0))
                continue
            self.dispatch()
        return outbox.pending_count(self.store)

    def run(self, source: Feed, *, drain: bool = True) -> int:
        """Consume ``source`` until it ends (forever for directories/Kafka); return pending count.

        Actions left over from a previous (crashed) run are delivered first.
        """
        self.dispatch()
        for delivery in source.deliveries(self.is_consumed):
            if delivery is not None:
                self.process_delivery(delivery)
                source.commit(delivery)
            self.dispatch()
        return self.drain() if drain else outbox.pending_count(self.store)


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)
