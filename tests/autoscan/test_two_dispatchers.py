"""Two real processes on one database, each with its own engine, against the stand-in SkyPortal on
loopback: nothing is delivered twice.

* Two cron passes (``autoscan scan`` on an empty folder) racing over the same outbox of many open
  actions: every save, follow-up request and annotation POST reaches the server exactly once, and
  both processes deliver some of them (the leases split the work).
* Two services (``autoscan run``) replaying the same night into one database: every alert is
  stored once, every file consumed once, every source saved and requested once.

Runs on SQLite, and on PostgreSQL when ``BRIGHTSCAN_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from brightscan.alerts import Alert, read_file
from brightscan.autoscan.actions import save_extras
from brightscan.autoscan.store import open_store
from brightscan.autoscan.write import outbox
from tests.autoscan.fakeportal import FakeSkyPortal

from .conftest import skyportal_config, write_night

TOKEN = "two-dispatchers-token"
POSTS = {"save": "/api/sources", "followup": "/api/followup_request"}


def _config(tmp_path: Path, db_url: str) -> Path:
    return skyportal_config(tmp_path / "autoscan.toml", db_url, skyportal="""
group_ids = [1]
filter_ids = [1]
timeout_s = 5.0
rate_limit = 15          # per process: the pass lasts seconds, so the two overlap
rate_burst = 5
""", service="""
retry_base_s = 0.1
retry_max_s = 0.5
lease_s = 2.0
""")


def _enqueue(db_url: str, night: Path) -> list[str]:
    """A save, a follow-up and an annotation for the first alert of every object in ``night``."""
    firsts: dict[str, Alert] = {}
    for path in sorted(night.glob("*.avro")):
        for alert in read_file(path):
            if isinstance(alert, Alert):
                firsts.setdefault(alert.object_id, alert)
    store = open_store(db_url)
    with store.transaction() as conn:
        for obj, alert in firsts.items():
            c = alert.candidate
            base = {"candid": alert.candid, "jd": alert.jd, "score": 0.9, "model_id": "mi_cnn.tiny",
                    "model_version": "1", "magpsf": c["magpsf"], "ra": c["ra"], "dec": c["dec"]}
            for kind in ("save", "followup", "annotation"):
                body = {**base, **save_extras(alert)} if kind == "save" else base
                outbox.enqueue(conn, kind, obj, body, arrived_at=0.0, now=0.0)
    store.dispose()
    return sorted(firsts)


def _race(cmds: list[list[str]], env: dict, tmp_path: Path) -> list[str]:
    """Start the commands together, wait for both; return their logs."""
    logs = [tmp_path / f"proc{i}.log" for i in range(len(cmds))]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
             for cmd, log in zip(cmds, logs)]
    codes = [p.wait(timeout=300) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0] * len(cmds), "\n".join(t[-3000:] for t in texts)
    return texts


def _posts_per_object(portal: FakeSkyPortal, path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in portal.calls:
        if call.method == "POST" and call.path.split("?")[0] == path and call.status == 200:
            obj = call.body.get("obj_id") or call.body.get("id")
            counts[obj] = counts.get(obj, 0) + 1
    return counts


def _annotation_posts(portal: FakeSkyPortal) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in portal.calls:
        parts = call.path.split("?")[0].split("/")  # /api/sources/{obj}/annotations
        if call.method == "POST" and parts[-1] == "annotations" and call.status == 200:
            counts[parts[3]] = counts.get(parts[3], 0) + 1
    return counts


def _states(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT state, count(*) FROM actions GROUP BY state")).all())
        leases = conn.execute(sa.text("SELECT count(*) FROM actions WHERE lease_owner IS NOT NULL")).scalar()
    engine.dispose()
    return {**states, "leased": leases}


@pytest.mark.slow
def test_two_scan_processes_deliver_each_action_once(real_avro_dir, tiny_model, tmp_path, db_url):
    write_night(real_avro_dir, tmp_path / "night", n_sources=24, per_source=1, seed=23)
    objects = _enqueue(db_url, tmp_path / "night")
    empty = tmp_path / "incoming"
    empty.mkdir()
    config = _config(tmp_path, db_url)
    with FakeSkyPortal(TOKEN) as portal:
        env = {**os.environ, "BRIGHTSCAN_SKYPORTAL_URL": portal.url, "BRIGHTSCAN_SKYPORTAL_TOKEN": TOKEN}
        cmd = [sys.executable, "-m", "brightscan", "-v", "autoscan", "scan", "--feed", f"dir:{empty}",
               "--model", str(tiny_model), "--config", str(config)]
        logs = _race([cmd, cmd], env, tmp_path)
        saves, requests = (_posts_per_object(portal, POSTS[k]) for k in ("save", "followup"))
        annotations = _annotation_posts(portal)
        stored = {what: portal.count(what) for what in ("sources", "followups", "annotations")}

    assert saves == requests == annotations == {o: 1 for o in objects}
    assert stored == {what: {o: 1 for o in objects} for what in stored}
    assert _states(db_url) == {"done": 3 * len(objects), "leased": 0}
    for log in logs:  # the work was shared, not done by one while the other waited
        assert log.count(": done (") > 0, log[-2000:]


@pytest.mark.slow
def test_two_services_on_one_night_store_and_deliver_once(real_avro_dir, tiny_model, tmp_path, db_url):
    rows = write_night(real_avro_dir, tmp_path / "night", n_sources=16, per_source=2, seed=24)
    objects = sorted({r["objectId"] for r in rows})
    config = _config(tmp_path, db_url)
    with FakeSkyPortal(TOKEN) as portal:
        env = {**os.environ, "BRIGHTSCAN_SKYPORTAL_URL": portal.url, "BRIGHTSCAN_SKYPORTAL_TOKEN": TOKEN}
        cmd = [sys.executable, "-m", "brightscan", "-v", "autoscan", "run", "--feed",
               f"replay:{tmp_path / 'night'}", "--model", str(tiny_model), "--config", str(config),
               "--speedup", "inf"]
        _race([cmd, cmd], env, tmp_path)
        saves, requests = (_posts_per_object(portal, POSTS[k]) for k in ("save", "followup"))
        annotations = _annotation_posts(portal)

    assert saves == requests == annotations == {o: 1 for o in objects}
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        candids = conn.execute(sa.text("SELECT candid FROM alerts")).scalars().all()
        consumed = conn.execute(sa.text("SELECT count(*) FROM consumed_inputs")).scalar()
    engine.dispose()
    assert sorted(candids) == sorted(r["candid"] for r in rows)
    assert consumed == len(rows)
    assert _states(db_url) == {"done": 3 * len(objects), "leased": 0}
