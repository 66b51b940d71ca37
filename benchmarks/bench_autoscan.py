"""Latency of autoscan: a simulated night replayed faster than real time against a fake SkyPortal.

    python benchmarks/bench_autoscan.py                          # busiest night of a small survey, 300x
    python benchmarks/bench_autoscan.py --speedup 10 --hours 1   # the first hour of the night at 10x
    python benchmarks/bench_autoscan.py --model DIR --policy bts_prod --threshold 0.85

It simulates a survey (``brightscan.simulate``), picks its busiest night, and runs the real service
(``python -m brightscan autoscan run --source replay:...``, a subprocess) with the SkyPortal sink
pointed at :class:`tests.autoscan.fakeportal.FakeSkyPortal` on 127.0.0.1. Latency is measured
per saved source, from the moment the file holding the alert that made it pass "arrived" (its
scheduled replay time) to SkyPortal's acknowledgement of the save, both read from the database.
Without ``--model`` a randomly initialised ``mi_cnn.tiny`` is used with ``gt1`` at threshold 0,
so every source is saved (the heaviest load on the action path).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake SkyPortal is test support
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


def _config(path: Path, db: str, policy: str, threshold: float | None) -> Path:
    lines = [f'[database]\nurl = "{db}"', f'[policy]\nname = "{policy}"']
    if threshold is not None:
        lines.append(f"threshold = {threshold}")
    lines.append('[sink]\nkind = "skyportal"\ngroup_ids = [1]\nallocation_id = 1\ntimeout_s = 2.0\n'
                 'retries = 3\nbackoff_s = 0.05\n[sink.payload]\npriority = 5')
    lines.append("[service]\nretry_base_s = 0.2\nretry_max_s = 2.0")
    path.write_text("\n\n".join(lines) + "\n")
    return path


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (50, 90, 99)} | {
        "max": round(float(values.max()), 4)}


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
    parser.add_argument("--faults", type=float, default=0.0, help="fraction of requests answered 500")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    args = parser.parse_args()

    from brightscan.simulate import SurveyConfig, simulate_survey

    work = Path(tempfile.mkdtemp(prefix="bench-autoscan-"))
    try:
        simulate_survey(SurveyConfig(n_sources=args.sources, seed=args.seed, n_nights=args.nights), work / "sim")
        night, n_files = _busiest_night(work / "sim", args.hours)
        model, threshold = args.model, args.threshold
        if model is None:
            from brightscan.model import create_model, save_model

            model = save_model(create_model("mi_cnn.tiny", seed=0), work / "model")
            threshold = 0.0 if threshold is None else threshold
        db = f"sqlite:///{work / 'autoscan.db'}"
        config = _config(work / "autoscan.toml", db, args.policy, threshold)
        with FakeSkyPortal(TOKEN, error_rate=args.faults, seed=args.seed) as portal:
            env = {**os.environ, "BRIGHTSCAN_SKYPORTAL_URL": portal.url, "BRIGHTSCAN_SKYPORTAL_TOKEN": TOKEN}
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "brightscan", "autoscan", "run", "--source", f"replay:{night}",
                            "--model", str(model), "--config", str(config), "--speedup", str(args.speedup)],
                           env=env, check=True)
            wall = time.time() - t0
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            save = np.array(conn.execute(sa.text(
                "SELECT acked_at - arrived_at FROM actions WHERE kind='save' AND state='done'")).scalars().all(), float)
            stored = np.array(conn.execute(sa.text("SELECT stored_at - arrived_at FROM alerts")).scalars().all(), float)
            jds = conn.execute(sa.text("SELECT min(jd), max(jd) FROM alerts")).one()
        engine.dispose()
        span_h = (jds[1] - jds[0]) * 24.0 if jds[0] is not None else 0.0
        report = {
            "alerts": n_files, "night_span_hours": round(span_h, 2), "speedup": args.speedup,
            "wall_seconds": round(wall, 1), "sources_saved": int(save.size),
            "latency_arrival_to_save_ack_s": _percentiles(save),
            "latency_arrival_to_stored_s": _percentiles(stored),
            "target_p99_s": 2.0, "meets_target": bool(save.size and np.percentile(save, 99) <= 2.0),
        }
        print(json.dumps(report, indent=2))
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
