"""Partitioned runs in-process and on a real LocalCluster: the same scores as one process, one
file per night, reruns that skip finished partitions, and the faults: a worker killed mid-task,
the client killed mid-run then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.distributed import (
    ClusterSpec, PreprocessJob, RunLayout, ScoreJob, open_client, plan_partitions, read_triplets, run_partitioned,
)
from brightscan.errors import ConfigError
from tests.cluster.conftest import read_dataset

pytest.importorskip("distributed")
runner = CliRunner()


def _check_complete(out: Path, reference) -> None:
    """Every alert scored exactly once, with the in-process score."""
    got = read_dataset(out)
    assert not got["candid"].duplicated().any()
    got = got.set_index("candid").sort_index()
    assert list(got.index) == list(reference.index)
    np.testing.assert_allclose(got["score"], reference["score"], rtol=0, atol=1e-6)
    assert set(got["night"].astype(str)) == {p.night for p in plan_partitions([_inputs(out)])}


def _inputs(out: Path) -> Path:
    return Path(RunLayout(out, "scores").manifest()[0]["paths"][0]).parent


def test_in_process_run_matches_the_scorer_and_a_rerun_skips(nightly_archives, tiny_model, reference_scores,
                                                             tmp_path) -> None:
    out = tmp_path / "run"
    summary = run_partitioned(ScoreJob(str(tiny_model)), [nightly_archives], out)
    assert summary.partitions == 4 and summary.skipped == 0 and summary.rows == len(reference_scores)
    _check_complete(out, reference_scores)
    files = sorted((out / "scores").rglob("*.parquet"))
    assert len(files) == 4 and all(f.parent.name.startswith("night=2023") for f in files)
    again = run_partitioned(ScoreJob(str(tiny_model)), [nightly_archives], out)
    assert again.skipped == 4 and again.done == []
    other = tmp_path / "other"
    from brightscan.model import create_model, save_model

    save_model(create_model("mi_cnn.tiny", seed=4, device="cpu"), other)
    with pytest.raises(ConfigError, match="weights_sha256"):
        run_partitioned(ScoreJob(str(other)), [nightly_archives], out)


def test_a_worker_killed_mid_task_loses_nothing_and_duplicates_nothing(nightly_archives, tiny_model,
                                                                       reference_scores, tmp_path) -> None:
    out = tmp_path / "run"
    killed: dict = {}
    with open_client(ClusterSpec("local", workers=2)) as (client, threads):
        pids = client.run(os.getpid)

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                started = list((out / "scores").rglob(".*.tmp-*")) if (out / "scores").exists() else []
                if busy and started:  # a task has opened its output: it is mid-partition
                    worker, keys = next(iter(busy.items()))
                    killed.update(pid=pids[worker], key=keys[0])
                    os.kill(pids[worker], signal.SIGKILL)
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        summary = run_partitioned(ScoreJob(str(tiny_model)), [nightly_archives], out, client=client,
                                  model_threads=threads)
        killer.join()
    assert killed, "no worker was caught mid-task"
    assert summary.rows == len(reference_scores) and len(summary.done) == 4
    redone = [r for r in summary.done if f"partition-{r['name']}" == killed["key"]]
    assert redone and redone[0]["pid"] != killed["pid"]  # ran again in another process
    _check_complete(out, reference_scores)


def test_client_killed_mid_run_then_resumed(nightly_archives, tiny_model, reference_scores, tmp_path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "brightscan", "score", str(nightly_archives), "--model", str(tiny_model),
               "--out", str(out), "--cluster", "local:2"] if os.cpu_count() >= 2 else pytest.skip("needs 2 cores")
    # its own session, so the kill takes its cluster's processes too, as a crash of the machine would
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((out / "_manifest").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in (out / "_manifest").glob("*.json")}
    assert 1 <= len(finished) < 4, "the client was not killed mid-run"
    result = runner.invoke(app, ["score", str(nightly_archives), "--model", str(tiny_model), "--out", str(out),
                                 "--cluster", "local:2", "--resume"])
    assert result.exit_code == 0, result.output
    assert f"({len(finished)} already finished)" in result.output
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # finished partitions not redone
    _check_complete(out, reference_scores)


def test_preprocess_on_a_cluster_writes_triplets_per_night(nightly_archives, tmp_path) -> None:
    out = tmp_path / "prep"
    result = runner.invoke(app, ["preprocess", str(nightly_archives), "--out", str(out), "--cluster", "local:1"])
    assert result.exit_code == 0, result.output
    assert "dask dashboard: http://127.0.0.1:" in result.output
    serial = run_partitioned(PreprocessJob(), [nightly_archives], tmp_path / "serial")
    for row in serial.done:
        here = pq.read_table(tmp_path / "serial" / row["output"])
        there = pq.read_table(out / row["output"])
        assert here.equals(there)
        assert read_triplets(here).shape == (here.num_rows, 63, 63, 3)
