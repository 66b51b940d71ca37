"""``/metrics``: the autoscan database as Prometheus metrics (``prometheus-client``'s text format).

The service (``autoscan run``) and the page (``autoscan serve``) are different processes, and the
service may restart at any time; the database is the one record both share. So nothing is counted
in memory: a custom collector computes every metric from the database at scrape time, and a
counter can never reset or count twice across restarts (rows are never deleted). The numbers are
the ones the status page shows.

| metric | type | from |
| --- | --- | --- |
| ``brightscan_alerts_read_total`` | counter | stored alerts + rejection records |
| ``brightscan_alerts_stored_total`` | counter | ``alerts`` rows |
| ``brightscan_alerts_rejected_total{stage,reason}`` | counter | ``rejections`` (reason without numbers, cut at ``:``) |
| ``brightscan_alerts_scored_total{model_id,model_version}`` | counter | ``alerts`` rows (``rate()`` = scored per second) |
| ``brightscan_objects_passed_total`` | counter | objects the policy passed |
| ``brightscan_actions{kind,state}`` | gauge | ``actions`` by kind and state |
| ``brightscan_action_attempts_total{kind,outcome}`` | counter | ``action_attempts`` |
| ``brightscan_sink_answers_total{status}`` | counter | attempts: ``2xx`` (done), the HTTP status of a failed one, ``none`` (no answer); ``429`` from ``rate_limited`` |
| ``brightscan_action_latency_seconds{kind}`` | histogram | arrival of the input to the sink's acknowledgement |
| ``brightscan_last_alert_stored_timestamp_seconds`` | gauge | newest ``alerts.stored_at`` |
| ``brightscan_drift_psi{column}``, ``brightscan_drift_ks{column}`` | gauge | the newest judged night |
| ``brightscan_drift_flagged_columns`` | gauge | its flagged columns (0: passes) |
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from brightscan.autoscan.drift import DriftMonitor
from brightscan.autoscan.store import Store, action_attempts, actions, alerts, rejections, sources

__all__ = ["LATENCY_BUCKETS", "DatabaseCollector", "render_metrics"]

#: Histogram buckets of the action latency, seconds (a save is expected within a minute).
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")


def reason_class(reason: str) -> str:
    """A rejection reason without its particulars (numbers, text after the first ``:``), so the
    label has few values: ``'cutout 2 is all zero: ...'`` -> ``'cutout N is all zero'``."""
    head = re.sub(r"\d+(\.\d+)?", "N", reason.split(":", 1)[0]).strip()
    return head[:80] or "unknown"


def _scalar(conn: sa.Connection, query: Any) -> float:
    return float(conn.execute(query).scalar() or 0)


class DatabaseCollector:
    """A ``prometheus_client`` collector reading the autoscan database on each scrape."""

    def __init__(self, store: Store, drift: DriftMonitor | None = None) -> None:
        self.store = store
        self.drift = drift

    def collect(self) -> Iterator[Any]:
        with self.store.engine.connect() as conn:
            yield from self._alerts(conn)
            yield from self._actions(conn)
            yield from self._latency(conn)
            yield from self._drift(conn)

    def _alerts(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stored = _scalar(conn, sa.select(sa.func.count()).select_from(alerts))
        rejected = CounterMetricFamily("brightscan_alerts_rejected", "Alerts (or files) rejected, by stage and reason.",
                                       labels=["stage", "reason"])
        by_reason: dict[tuple[str, str], int] = {}
        for stage, reason, n in conn.execute(sa.select(rejections.c.stage, rejections.c.reason, sa.func.count())
                                             .group_by(rejections.c.stage, rejections.c.reason)):
            key = (stage, reason_class(reason or ""))
            by_reason[key] = by_reason.get(key, 0) + int(n)
        for key, n in sorted(by_reason.items()):
            rejected.add_metric(list(key), n)
        yield CounterMetricFamily("brightscan_alerts_read", "Alerts read: stored plus rejected.",
                                  value=stored + sum(by_reason.values()))
        yield CounterMetricFamily("brightscan_alerts_stored", "Alerts scored and stored.", value=stored)
        yield rejected
        scored = CounterMetricFamily("brightscan_alerts_scored", "Alerts scored, by model (rate(): scored per second).",
                                     labels=["model_id", "model_version"])
        for model_id, version, n in conn.execute(sa.select(alerts.c.model_id, alerts.c.model_version, sa.func.count())
                                                 .group_by(alerts.c.model_id, alerts.c.model_version)):
            scored.add_metric([model_id, version], int(n))
        yield scored
        yield CounterMetricFamily("brightscan_objects_passed", "Objects the policy passed (first passes).",
                                  value=_scalar(conn, sa.select(sa.func.count()).select_from(sources)
                                                .where(sources.c.policy_state == "passed")))
        last = conn.execute(sa.select(sa.func.max(alerts.c.stored_at))).scalar()
        yield GaugeMetricFamily("brightscan_last_alert_stored_timestamp_seconds",
                                "Unix time the newest alert was stored (0: none yet).", value=float(last or 0))

    def _actions(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        states = GaugeMetricFamily("brightscan_actions", "Actions by kind and state.", labels=["kind", "state"])
        for kind, state, n in conn.execute(sa.select(actions.c.kind, actions.c.state, sa.func.count())
                                           .group_by(actions.c.kind, actions.c.state)):
            states.add_metric([kind, state], int(n))
        yield states
        attempts = CounterMetricFamily("brightscan_action_attempts", "Delivery attempts by kind and outcome.",
                                       labels=["kind", "outcome"])
        answers: dict[str, float] = {}
        query = (sa.select(actions.c.kind, action_attempts.c.outcome, action_attempts.c.detail,
                           action_attempts.c.rate_limited)
                 .join(actions, actions.c.id == action_attempts.c.action_id))
        counts: dict[tuple[str, str], int] = {}
        for kind, outcome, detail, limited in conn.execute(query.execution_options(yield_per=5000)):
            counts[(kind, outcome)] = counts.get((kind, outcome), 0) + 1
            found = _HTTP_STATUS.search(detail or "") if outcome != "done" else None
            status = "2xx" if outcome == "done" else (found.group(1) if found else "none")
            if outcome != "replayed":
                answers[status] = answers.get(status, 0) + 1
            if limited:
                answers["429"] = answers.get("429", 0) + int(limited)
        for key, n in sorted(counts.items()):
            attempts.add_metric(list(key), n)
        yield attempts
        family = CounterMetricFamily("brightscan_sink_answers", "Sink (SkyPortal) answers by HTTP status: 2xx for "
                                     "acknowledged attempts, 429 for rate-limited answers, none without an answer.",
                                     labels=["status"])
        for status, n in sorted(answers.items()):
            family.add_metric([status], n)
        yield family

    def _latency(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily("brightscan_action_latency_seconds",
                                       "Seconds from the arrival of the triggering input to the sink's acknowledgement.",
                                       labels=["kind"])
        by_kind: dict[str, list[float]] = {}
        for kind, seconds in conn.execute(
                sa.select(actions.c.kind, actions.c.acked_at - actions.c.arrived_at)
                .where(actions.c.state == "done", actions.c.arrived_at.is_not(None), actions.c.acked_at.is_not(None))):
            by_kind.setdefault(kind, []).append(float(seconds))
        for kind, values in sorted(by_kind.items()):
            buckets = [(str(b), sum(v <= b for v in values)) for b in LATENCY_BUCKETS] + [("+Inf", len(values))]
            family.add_metric([kind], buckets, sum_value=math.fsum(values))
        yield family

    def _drift(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        psi = GaugeMetricFamily("brightscan_drift_psi", "PSI of the newest judged night against the reference.",
                                labels=["column"])
        ks = GaugeMetricFamily("brightscan_drift_ks", "KS statistic of the newest judged night against the reference.",
                               labels=["column"])
        judged = [r for r in (self.drift.recent(conn) if self.drift and self.drift.reference else []) if not r.skipped]
        flagged = 0.0
        if judged:
            for column in judged[0].columns:
                if not math.isnan(column.psi):
                    psi.add_metric([column.name], column.psi)
                    ks.add_metric([column.name], column.ks)
            flagged = float(len(judged[0].flagged))
        yield psi
        yield ks
        yield GaugeMetricFamily("brightscan_drift_flagged_columns",
                                "Columns beyond the [drift] thresholds on the newest judged night (0: it passes).",
                                value=flagged)


def render_metrics(store: Store, drift: DriftMonitor | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition of the database, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, drift))
    return generate_latest(registry), CONTENT_TYPE_LATEST
