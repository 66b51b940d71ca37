"""``/metrics``: scraped from a real uvicorn server over a database written by ``autoscan run``,
parsed with prometheus-client's own parser, and checked against the database."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa

from brightscan.autoscan.store import action_attempts, actions, alerts, open_store, rejections

from .test_web import Server, _replay

pytest.importorskip("prometheus_client", reason="/metrics needs the web extra")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _add_failed_attempt(db_url: str, object_id: str) -> None:
    """A failed annotation with a 503 and two 429s in its attempt, and one rejection, written as the
    service writes them."""
    store = open_store(db_url)
    now = time.time()
    with store.transaction() as conn:
        action_id = conn.execute(actions.insert().values(
            kind="annotation", object_id=object_id, idempotency_key=f"t-{object_id}", payload={}, state="failed",
            attempts=1, last_error="skyportal annotation: HTTP 503: down", next_attempt_at=now, created_at=now,
            updated_at=now)).inserted_primary_key[0]
        conn.execute(action_attempts.insert().values(
            action_id=action_id, attempt=1, outcome="failed", detail="skyportal annotation: HTTP 503: down",
            started_at=now, finished_at=now, rate_limited=2))
        conn.execute(rejections.insert().values(candid=1, object_id=object_id, source="x.avro", stage="cutouts",
                                                reason="cutout 2 is all zero: candid 1", created_at=now))
    store.dispose()


def _self_reference(db_url: str):
    """A reference built from the database's own alerts (the night then cannot drift from it)."""
    from brightscan.autoscan.drift import DriftMonitor
    from brightscan.autoscan.config import DriftConfig
    from brightscan.model.reference import build_reference

    store = open_store(db_url)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts.c.features, alerts.c.score)).all()
    store.dispose()
    names = sorted(rows[0][0])
    reference = build_reference([[r[0][n] for n in names] for r in rows], names, [r[1] for r in rows])
    return DriftMonitor(reference, DriftConfig(min_alerts=10))


def test_metrics_scraped_over_http_match_the_database(db_url, night, tiny_model, tmp_path):
    night_dir, truth = night
    db = db_url
    _replay(night_dir, tiny_model, db, tmp_path)
    _add_failed_attempt(db, truth[0]["objectId"])
    server = Server(db, token="s3cret", drift=_self_reference(db))
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        assert httpx.get(f"{server.url}/metrics", headers={"Host": "evil.example"}).status_code == 400
        answer = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        got = _samples(answer.text)
        with server.store.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar()
            by_state = conn.execute(sa.select(actions.c.kind, actions.c.state, sa.func.count())
                                    .group_by(actions.c.kind, actions.c.state)).all()
            done = conn.execute(sa.select(sa.func.count()).select_from(action_attempts)
                                .where(action_attempts.c.outcome == "done")).scalar()
            model = conn.execute(sa.select(alerts.c.model_id, alerts.c.model_version).limit(1)).one()
    finally:
        server.stop()
    assert stored == len(truth)
    assert got[("brightscan_alerts_stored_total", ())] == stored
    assert got[("brightscan_alerts_read_total", ())] == stored + 1
    assert got[("brightscan_alerts_rejected_total", (("reason", "cutout N is all zero"), ("stage", "cutouts")))] == 1
    assert got[("brightscan_alerts_scored_total", (("model_id", model[0]), ("model_version", model[1])))] == stored
    assert got[("brightscan_objects_passed_total", ())] == len({r["objectId"] for r in truth})
    for kind, state, n in by_state:
        assert got[("brightscan_actions", (("kind", kind), ("state", state)))] == n
    assert got[("brightscan_sink_answers_total", (("status", "2xx"),))] == done
    assert got[("brightscan_sink_answers_total", (("status", "503"),))] == 1
    assert got[("brightscan_sink_answers_total", (("status", "429"),))] == 2
    saves = got[("brightscan_action_latency_seconds_count", (("kind", "save"),))]
    assert saves == len({r["objectId"] for r in truth})
    assert got[("brightscan_action_latency_seconds_bucket", (("kind", "save"), ("le", "+Inf")))] == saves
    assert got[("brightscan_last_alert_stored_timestamp_seconds", ())] > 0
    assert got[("brightscan_drift_flagged_columns", ())] == 0  # the night is its own reference
    assert got[("brightscan_drift_psi", (("column", "fwhm"),))] == pytest.approx(0, abs=1e-9)
    assert got[("brightscan_drift_ks", (("column", "score"),))] == pytest.approx(0, abs=1e-9)
