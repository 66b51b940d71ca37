"""``brightscan autoscan`` through Typer's CliRunner: run, scan, summary, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from brightscan.autoscan.write.runner import parse_time
from brightscan.cli.main import app
from brightscan.errors import InputError

from .conftest import NIGHT

runner = CliRunner()


def _config(tmp_path, **extra) -> str:
    path = tmp_path / "autoscan.toml"
    lines = ['[policy]', 'name = "gt1"', 'threshold = 0.0', '[sink]', 'kind = "log"', '[sink.log]',
             f'path = "{tmp_path / "actions.jsonl"}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _invoke(*args):
    return runner.invoke(app, list(args), env={"BRIGHTSCAN_SKYPORTAL_TOKEN": ""})


def test_run_replay_then_summary(night, tiny_model, tmp_path):
    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    res = _invoke("autoscan", "run", "--feed", f"replay:{night_dir}", "--model", str(tiny_model),
                  "--db", db, "--config", _config(tmp_path), "--speedup", "1e9")
    assert res.exit_code == 0, res.output
    n_obj = len({r["objectId"] for r in truth})
    assert f"alerts stored {len(truth)}, sources passed {n_obj}, actions done {3 * n_obj}" in res.output
    res = _invoke("autoscan", "summary", "--night", NIGHT, "--out", str(tmp_path / "sum"), "--db", db)
    assert res.exit_code == 0, res.output
    page = (tmp_path / "sum" / "index.html").read_text()
    assert all(r["objectId"] in page for r in truth)
    assert len(list((tmp_path / "sum").glob("source_*.png"))) == n_obj
    assert (tmp_path / "sum" / "latency.png").stat().st_size > 1000
    empty = _invoke("autoscan", "summary", "--night", "2020-01-01", "--out", str(tmp_path / "s2"), "--db", db)
    assert empty.exit_code == 0 and "ZTF25" not in (tmp_path / "s2" / "index.html").read_text()


def test_scan_is_one_pass_over_new_files(night, tiny_model, tmp_path):
    night_dir, truth = night
    watch = tmp_path / "incoming"
    watch.mkdir()
    files = sorted(night_dir.glob("*.avro"))
    for i, f in enumerate(files):
        shutil.copy(f, watch)
        os.utime(watch / f.name, (1.7e9 + i, 1.7e9 + i))  # arrival times 2023-11-14 22:13:20 + i s
    args = ["autoscan", "scan", "--source", f"dir:{watch}", "--model", str(tiny_model),
            "--db", f"sqlite:///{tmp_path / 'a.db'}", "--config", _config(tmp_path)]
    res = _invoke(*args, "--until", "2023-11-14T22:13:30")
    assert res.exit_code == 0, res.output
    assert "alerts stored 10," in res.output
    res = _invoke(*args, "--since", "2023-11-14T22:13:25")
    assert f"alerts stored {len(truth)}," in res.output
    res = _invoke(*args)  # nothing new: a no-op
    assert f"alerts stored {len(truth)}," in res.output


@pytest.mark.parametrize("args, code, message", [
    (["--feed", "ftp:/x"], 2, "feed must look like|unknown feed kind"),
    (["--feed", "replay:/nonexistent"], 2, "replay:/nonexistent.*does not exist"),
    (["--feed", "replay:NIGHT", "--policy", "nosuch"], 1, "unknown policy"),
    (["--feed", "replay:NIGHT", "--sink", "skyportal"], 1, "needs a URL"),
    (["--feed", "replay:NIGHT", "--sink", "fritz"], 2, "'fritz' is not one of"),
])
def test_errors_are_messages_with_exit_codes(night, tiny_model, tmp_path, args, code, message):
    args = [a.replace("NIGHT", str(night[0])) for a in args]
    res = _invoke("autoscan", "run", "--model", str(tiny_model), "--db", f"sqlite:///{tmp_path / 'a.db'}", *args)
    assert res.exit_code == code, res.output
    import re

    assert re.search(message, res.output), res.output
    assert "Traceback" not in res.output


def test_bad_config_file(tiny_model, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sink]\nkind = 'log'\nnope = 1\n")
    res = _invoke("autoscan", "run", "--source", "replay:/x", "--model", str(tiny_model), "--config", str(bad))
    assert res.exit_code == 1 and "unknown key" in res.output


def test_parse_time():
    assert parse_time("now", now=100.0) == 100.0
    assert parse_time("-30min", now=10_000.0) == 10_000.0 - 1800
    assert parse_time("-2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("2440587.5") == 0.0
    assert parse_time("1970-01-01T00:01:00") == 60.0
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time(None) is None
    with pytest.raises(InputError):
        parse_time("yesterday-ish")


def test_retry_shows_a_failed_action_and_replays_it(tmp_path):
    from brightscan.autoscan.write import outbox
    from brightscan.autoscan.actions import SinkError
    from brightscan.autoscan.store import open_store

    class _Refuses:
        def deliver(self, action):
            if action.kind != "followup":
                return "posted"
            raise SinkError("POST /api/followup_request: HTTP 400: Error submitting follow-up request: "
                            "Could not find allocation with ID 42.", retryable=False)

    db = f"sqlite:///{tmp_path / 'a.db'}"
    store = open_store(db)
    with store.transaction() as conn:
        outbox.enqueue(conn, "followup", "ZTF25aaaaaab", {"score": 0.9}, arrived_at=0.0, now=0.0)
        outbox.enqueue(conn, "annotation", "ZTF25aaaaaac", {"score": 0.8}, arrived_at=0.0, now=0.0)
    outbox.dispatch(store, _Refuses())
    store.dispose()
    res = _invoke("autoscan", "retry", "1", "--show", "--db", db)
    assert res.exit_code == 0, res.output
    assert "action 1 followup:ZTF25aaaaaab: failed, 1 attempt(s)" in res.output
    assert "#1 " in res.output and "Could not find allocation with ID 42." in res.output
    res = _invoke("autoscan", "retry", "1", "--deliver", "--db", db, "--config", _config(tmp_path))
    assert res.exit_code == 0, res.output
    assert "replayed 1 action(s)" in res.output and "delivered: done 1" in res.output
    lines = (tmp_path / "actions.jsonl").read_text().splitlines()
    assert [json.loads(x)["idempotency_key"] for x in lines] == ["followup:ZTF25aaaaaab"]
    res = _invoke("autoscan", "retry", "1", "--db", db)
    assert res.exit_code == 2 and "is done; only a failed action can be replayed" in res.output
    res = _invoke("autoscan", "retry", "7", "--db", db)
    assert res.exit_code == 2 and "no action with id 7" in res.output


def test_sigterm_stops_run_cleanly_and_the_handler_is_given_back(night, tiny_model, tmp_path):
    """systemd's stop (SIGTERM) ends a watching run with exit 0; in-process, run_autoscan leaves
    the caller's SIGTERM handler as it found it (a leaked handler turned CI's own timeout into a
    KeyboardInterrupt inside an unrelated test)."""
    night_dir, _ = night
    before = signal.getsignal(signal.SIGTERM)
    res = _invoke("autoscan", "run", "--feed", f"replay:{night_dir}", "--model", str(tiny_model),
                  "--db", f"sqlite:///{tmp_path / 'a.db'}", "--config", _config(tmp_path), "--speedup", "1e9")
    assert res.exit_code == 0, res.output
    assert signal.getsignal(signal.SIGTERM) is before

    watch = tmp_path / "incoming"
    watch.mkdir()
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "brightscan", "-v", "autoscan", "run", "--feed", f"dir:{watch}",
           "--model", str(tiny_model), "--db", f"sqlite:///{tmp_path / 'b.db'}", "--config", _config(tmp_path)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "BRIGHTSCAN_SKYPORTAL_TOKEN": ""})
    try:
        deadline = time.time() + 60
        while b"autoscan started" not in log.read_bytes():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:  # a failed assertion never leaves the service running
            proc.kill()
            proc.wait()
    assert "stopped; pending actions will be delivered by the next run" in log.read_text()
