"""Exactly once under SIGKILL: the service is killed at random points >= 20 times over a replayed
night against a fake SkyPortal that sometimes answers 500 (before or after doing the work) or
times out, restarted each time, and in the end every source that passed is saved, followed up
and annotated exactly once, and every alert is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from tests.autoscan.fakeportal import FakeSkyPortal

from .conftest import write_night

TOKEN = "kill-test-token"
N_KILLS = 22
SEED = 2025


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "autoscan.toml"
    path.write_text(f"""
[database]
url = "{db_url}"

[policy]
name = "gt1"
threshold = 0.0          # every source passes: many actions to get right

[sink]
kind = "skyportal"
group_ids = [7]
allocation_id = 3
timeout_s = 0.3
retries = 2
backoff_s = 0.02

[sink.payload]
priority = 5
observation_type = "IFU"

[service]
retry_base_s = 0.1
retry_max_s = 0.5
max_attempts = 1000
""")
    return path


def _launch(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        if b"autoscan started" in log.read_bytes():
            return True
        time.sleep(0.02)
    raise AssertionError(f"service did not start: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_or_repeats(real_avro_dir, tiny_model, tmp_path, db_url):
    """Runs on SQLite, and on PostgreSQL when BRIGHTSCAN_TEST_POSTGRES_URL is set (CI)."""
    rows = write_night(real_avro_dir, tmp_path / "night", n_sources=40, per_source=3, seed=SEED)
    objects = sorted({r["objectId"] for r in rows})
    config = _config(tmp_path, db_url)
    span_s = (max(r["jd"] for r in rows) - min(r["jd"] for r in rows)) * 86400
    speedup = span_s / 20.0  # ~20 s of replay: longer than the service runs between kills
    rng = np.random.default_rng(SEED)
    # idempotent=False: every POST that reaches the fake creates something, so the counts below
    # hold only because of the service (outbox + check-before-write), not SkyPortal's own
    # dedupe. Timed-out requests are dropped; one applied *after* the client's timeout is the
    # race covered in test_sinks with SkyPortal's semantics (see docs/autoscan.md).
    with FakeSkyPortal(TOKEN, error_rate=0.1, error_after_rate=0.1, timeout_rate=0.05, sleep_s=0.5,
                       seed=SEED, idempotent=False, timeout_applies=False) as portal:
        env = {**os.environ, "BRIGHTSCAN_SKYPORTAL_URL": portal.url, "BRIGHTSCAN_SKYPORTAL_TOKEN": TOKEN}
        cmd = [sys.executable, "-m", "brightscan", "-v", "autoscan", "run",
               "--feed", f"replay:{tmp_path / 'night'}", "--model", str(tiny_model),
               "--config", str(config), "--speedup", str(speedup)]
        kills = 0
        for launch in range(N_KILLS):
            log = tmp_path / f"run{launch}.log"
            proc = _launch(cmd, env, log)
            if not _wait_started(proc, log):
                break  # finished the night early (should not happen: see speedup)
            time.sleep(float(rng.uniform(0.0, 1.2)))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        final_log = tmp_path / "final.log"
        final = _launch(cmd, env, final_log)
        assert final.wait(timeout=120) == 0, final_log.read_text()[-3000:]
        saves, followups = portal.effective_saves(), portal.effective_followups()
        annotations = portal.effective_annotations()
        faults = [c.fault for c in portal.calls if c.fault]

    assert kills >= 20
    assert saves == {o: 1 for o in objects}
    assert followups == {o: 1 for o in objects}
    assert annotations == {o: 1 for o in objects}
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        candids = conn.execute(sa.text("SELECT candid FROM alerts")).scalars().all()
        states = dict(conn.execute(sa.text("SELECT state, count(*) FROM actions GROUP BY state")).all())
        consumed = conn.execute(sa.text("SELECT count(*) FROM consumed_inputs")).scalar()
        repeats = conn.execute(sa.text(
            "SELECT count(*) FROM action_attempts WHERE detail LIKE '%already%'")).scalar()
    engine.dispose()
    assert sorted(candids) == sorted(r["candid"] for r in rows)  # none lost, none twice
    assert consumed == len(rows)
    assert states == {"done": 3 * len(objects)}
    assert {"error_before", "error_after", "timeout"} <= set(faults)
    assert repeats > 0, "no action was ever delivered twice: the test exercised nothing"
