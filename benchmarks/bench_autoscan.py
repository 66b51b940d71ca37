"""Autoscan against a stand-in SkyPortal on loopback: latency of a replayed night, and the
throughput of the action path under SkyPortal's rate limit.

    python benchmarks/bench_autoscan.py                          # busiest night of a small survey, 300x
    python benchmarks/bench_autoscan.py --speedup 10 --hours 1   # the first hour of the night at 10x
    python benchmarks/bench_autoscan.py --model DIR --policy bts_prod --threshold 0.85
    python benchmarks/bench_autoscan.py --speedup 10 --hours 1 --baseline   # limits off, then on
    python benchmarks/bench_autoscan.py --speedup 10 --hours 1 --compare-inline  # old loop, then thread
    python benchmarks/bench_autoscan.py --throughput 40          # actions/s, 40 sources x 3 actions

It simulates a survey (``brightscan.simulate``) and picks its busiest night. The stand-in is
:class:`tests.autoscan.fakeportal.FakeSkyPortal` (the real handlers' behaviour) with SkyPortal's
nginx limit (``--server-rate`` r/s, burst 10; 0 = none); the client limits itself to ``--rate``
(default 5 r/s, burst 10; 0 = off).

*Latency*: the real service (``python -m brightscan autoscan run --feed replay:...``, a
subprocess, whose saves carry the alert's light curve and cutouts) with the
SkyPortal sink. Measured per saved source, from the moment the file holding the alert that made it
pass "arrived" (its scheduled replay time) to SkyPortal's acknowledgement of the save, both read
from the database. Without ``--model`` a randomly initialised ``mi_cnn.tiny`` is used with ``gt1``
at threshold 0, so every source is saved (the heaviest load on the action path).

*Throughput* (``--throughput N``): N sources' save, follow-up and annotation actions enqueued in
a SQLite outbox and delivered by ``outbox.dispatch`` through the SkyPortal sink in this process,
three ways in the same run: no limit anywhere (the baseline: what loopback allows), the client
limiter against the server's limit, and no client limiter against the server's limit (429s and
``Retry-After`` waits).

``--compare-inline`` replays the same night twice with the limits on: first with
``[service] dispatch_thread = false`` (a delivery pass after each file, in the ingesting thread:
the loop before issue 23), then with the dispatcher thread (the default), and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fake SkyPortal is test support
from tests.autoscan.fakeportal import FakeSkyPortal  # noqa: E402

TOKEN = "bench-token"


def _busiest_night(sim_dir: Path, hours: float | None) -> tuple[Path, int]:
    """Copy the busiest night's files (optionally only its first ``hours``) into a folder."""
    from brightscan.alerts import Alert, read_file

    nights = [d for d in (sim_dir / "alerts").iterdir() if d.is_dir()]
    night = max(nights, key=lambda d: len(list(d.glob("*.avro"))))
    files = sorted(night.glob("*.avro"))
    if hours is not None:
        jds = {f: next(a.jd for a in read_file(f) if isinstance(a, Alert)) for f in files}
        start = min(jds.values())
        files = [f for f in files if jds[f] - start <= hours / 24.0]
    out = sim_dir / "replay"
    out.mkdir()
    for f in files:
        shutil.copy(f, out)
    return out, len(files)


def _config(path: Path, db: str, policy: str, threshold: float | None, rate: float,
            dispatch_thread: bool = True) -> Path:
    lines = [f'[database]\nurl = "{db}"', f'[policy]\nname = "{policy}"']
    if threshold is not None:
        lines.append(f"threshold = {threshold}")
    lines.append('[sink]\nkind = "skyportal"\n\n[sink.skyportal]\ngroup_ids = [1]\nfilter_ids = [1]\n'
                 f'timeout_s = 2.0\nretries = 3\nbackoff_s = 0.05\nrate_limit = {rate}\nrate_burst = 10\n\n'
                 '[sink.skyportal.followup]\nallocation_id = 1\nfacility = "SEDM"\npriority = 5\n'
                 'observation_type = "IFU"')
    lines.append("[service]\nretry_base_s = 0.2\nretry_max_s = 2.0\n"
                 f"dispatch_thread = {str(dispatch_thread).lower()}")
    path.write_text("\n\n".join(lines) + "\n")
    return path


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (50, 90, 99)} | {
        "max": round(float(values.max()), 4)}


def _latency(args: argparse.Namespace, work: Path, night: Path, n_files: int) -> dict:
    """The replay with the configured limits; with ``--baseline`` first without any, same night."""
    if args.compare_inline:
        inline = _replay(argparse.Namespace(**{**vars(args), "dispatch_thread": False}), work / "inline", night,
                         n_files)
        thread = _replay(args, work / "thread", night, n_files)
        p99 = {k: r["latency_arrival_to_save_ack_s"].get("p99") for k, r in (("i", inline), ("t", thread))}
        return {"inline_dispatch": inline, "dispatcher_thread": thread,
                "p99_ratio_thread_to_inline": round(p99["t"] / p99["i"], 2) if p99["i"] else None}
    if not args.baseline:
        return _replay(args, work, night, n_files)
    free = _replay(argparse.Namespace(**{**vars(args), "rate": 0.0, "server_rate": 0.0}), work / "free", night,
                   n_files)
    limited = _replay(args, work / "limited", night, n_files)
    p99 = {k: r["latency_arrival_to_save_ack_s"].get("p99") for k, r in (("free", free), ("limited", limited))}
    return {"baseline_no_limits": free, "rate_limited": limited,
            "p99_ratio_limited_to_baseline": round(p99["limited"] / p99["free"], 2) if p99["free"] else None}


def _replay(args: argparse.Namespace, work: Path, night: Path, n_files: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    model, threshold = args.model, args.threshold
    if model is None:
        from brightscan.model import create_model, save_model

        model = save_model(create_model("mi_cnn.tiny", seed=0), work / "model")
        threshold = 0.0 if threshold is None else threshold
    db = f"sqlite:///{work / 'autoscan.db'}"
    config = _config(work / "autoscan.toml", db, args.policy, threshold, args.rate,
                     getattr(args, "dispatch_thread", True))
    with FakeSkyPortal(TOKEN, rate=args.server_rate, burst=10, error_rate=args.faults, seed=args.seed) as portal:
        env = {**os.environ, "BRIGHTSCAN_SKYPORTAL_URL": portal.url, "BRIGHTSCAN_SKYPORTAL_TOKEN": TOKEN}
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "brightscan", "autoscan", "run", "--feed", f"replay:{night}",
                        "--model", str(model), "--config", str(config), "--speedup", str(args.speedup)],
                       env=env, check=True)
        wall = time.time() - t0
        answered_429 = sum(1 for c in portal.calls if c.status == 429)
        requests = len(portal.calls)
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        save = np.array(conn.execute(sa.text(
            "SELECT acked_at - arrived_at FROM actions WHERE kind='save' AND state='done'")).scalars().all(), float)
        stored = np.array(conn.execute(sa.text("SELECT stored_at - arrived_at FROM alerts")).scalars().all(), float)
        jds = conn.execute(sa.text("SELECT min(jd), max(jd) FROM alerts")).one()
        states = dict(conn.execute(sa.text("SELECT state, count(*) FROM actions GROUP BY state")).all())
    engine.dispose()
    span_h = (jds[1] - jds[0]) * 24.0 if jds[0] is not None else 0.0
    return {
        "alerts": n_files, "night_span_hours": round(span_h, 2), "speedup": args.speedup,
        "client_rate_limit": args.rate, "server_rate_limit": args.server_rate,
        "dispatch_thread": getattr(args, "dispatch_thread", True),
        "wall_seconds": round(wall, 1), "sources_saved": int(save.size), "actions": states,
        "requests": requests, "answered_429": answered_429,
        "latency_arrival_to_save_ack_s": _percentiles(save),
        "latency_arrival_to_stored_s": _percentiles(stored),
        "target_p99_s": 2.0, "meets_target": bool(save.size and np.percentile(save, 99) <= 2.0),
    }


def _enqueue_night(db: str, night: Path, n_sources: int) -> int:
    """Save, follow-up and annotation actions for the first alert of ``n_sources`` objects."""
    from brightscan.alerts import Alert, read_file
    from brightscan.autoscan.write import outbox
    from brightscan.autoscan.actions import save_extras
    from brightscan.autoscan.store import open_store

    firsts: dict[str, Alert] = {}
    for f in sorted(night.glob("*.avro")):
        for alert in read_file(f):
            if isinstance(alert, Alert) and len(firsts) < n_sources:
                firsts.setdefault(alert.object_id, alert)
    store = open_store(db)
    with store.transaction() as conn:
        for obj, a in firsts.items():
            c = a.candidate
            base = {"candid": a.candid, "jd": a.jd, "score": 0.9, "model_id": "mi_cnn.tiny", "model_version": "1",
                    "magpsf": c.get("magpsf"), "ra": c.get("ra"), "dec": c.get("dec")}
            for kind in ("save", "followup", "annotation"):
                payload = {**base, **save_extras(a)} if kind == "save" else base
                outbox.enqueue(conn, kind, obj, payload, arrived_at=None, now=0.0)
    store.dispose()
    return 3 * len(firsts)


def _deliver_all(work: Path, night: Path, n_sources: int, client_rate: float, server_rate: float,
                 label: str) -> dict:
    from brightscan.autoscan.write import outbox
    from brightscan.autoscan.build import build_sink
    from brightscan.autoscan.config import SinkConfig
    from brightscan.autoscan.store import open_store

    db = f"sqlite:///{work / f'throughput-{label}.db'}"
    n_actions = _enqueue_night(db, night, n_sources)
    store = open_store(db)
    with FakeSkyPortal(TOKEN, rate=server_rate, burst=10) as portal:
        sink = build_sink(SinkConfig(kind="skyportal", url=portal.url, token=TOKEN, group_ids=[1], filter_ids=[1],
                                    allocation_id=1, facility="SEDM", priority=5, observation_type="IFU",
                                    rate_limit=client_rate, rate_burst=10))
        t0 = time.perf_counter()
        while outbox.pending_count(store):
            outbox.dispatch(store, sink, retry_base_s=0.05, retry_max_s=1.0)
        wall = time.perf_counter() - t0
        requests, answered_429 = len(portal.calls), sum(1 for c in portal.calls if c.status == 429)
    store.dispose()
    return {"actions": n_actions, "seconds": round(wall, 1), "actions_per_s": round(n_actions / wall, 2),
            "requests": requests, "requests_per_s": round(requests / wall, 2), "answered_429": answered_429,
            "client_rate_limit": client_rate, "server_rate_limit": server_rate}


def _throughput(args: argparse.Namespace, work: Path, night: Path) -> dict:
    limit = args.server_rate or 5.0
    runs = {
        "baseline_no_limits": _deliver_all(work, night, args.throughput, 0.0, 0.0, "baseline"),
        "client_limiter_vs_server_limit": _deliver_all(work, night, args.throughput, args.rate, limit, "limited"),
        "no_client_limiter_vs_server_limit": _deliver_all(work, night, args.throughput, 0.0, limit, "429s"),
    }
    base = runs["baseline_no_limits"]["actions_per_s"]
    for run in runs.values():
        run["ratio_to_baseline"] = round(run["actions_per_s"] / base, 3)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1500, help="simulated sources")
    parser.add_argument("--nights", type=int, default=3, help="survey length (fewer nights = busier)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speedup", type=float, default=300.0, help="replay speed vs real time (>= 10)")
    parser.add_argument("--hours", type=float, default=None, help="replay only the night's first hours")
    parser.add_argument("--model", type=Path, help="model directory (default: random mi_cnn.tiny)")
    parser.add_argument("--policy", default="gt1")
    parser.add_argument("--threshold", type=float, default=None, help="policy threshold (default 0 w/o --model)")
    parser.add_argument("--faults", type=float, default=0.0, help="fraction of requests answered 502")
    parser.add_argument("--rate", type=float, default=5.0, help="client rate limit, requests/s (0: off)")
    parser.add_argument("--server-rate", type=float, default=5.0, help="the stand-in's nginx limit (0: none)")
    parser.add_argument("--baseline", action="store_true",
                        help="latency: first replay the same night without any rate limit")
    parser.add_argument("--compare-inline", action="store_true",
                        help="latency: first replay with dispatch_thread = false (the old loop), then the thread")
    parser.add_argument("--throughput", type=int, default=0, metavar="N",
                        help="measure actions/s over N sources instead of the replay latency")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    args = parser.parse_args()

    from brightscan.simulate import SurveyConfig, simulate_survey

    work = Path(tempfile.mkdtemp(prefix="bench-autoscan-"))
    try:
        simulate_survey(SurveyConfig(n_sources=args.sources, seed=args.seed, n_nights=args.nights), work / "sim")
        night, n_files = _busiest_night(work / "sim", args.hours)
        if args.throughput:
            report = _throughput(args, work, night)
        else:
            report = _latency(args, work, night, n_files)
        print(json.dumps(report, indent=2))
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
