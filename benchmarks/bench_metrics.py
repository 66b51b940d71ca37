"""Cost of a ``/metrics`` scrape and of the drift check over a big autoscan database, against the
status page's own query (``status_view``, what every reload of the page already costs), measured in
one run on one SQLite file.

    python benchmarks/bench_metrics.py                         # 200,000 alerts over 7 nights
    python benchmarks/bench_metrics.py --alerts 50000 --repeats 5

The database is filled with synthetic rows in the service's schema (alerts with 14 features,
objects, actions, attempts, rejections). Timed: one scrape (``render_metrics`` without drift), the
drift of one night (``night_drift``), the last 7 nights' drift cold and warm (``DriftMonitor``
keeps a night's report until its alert count changes), and one scrape with drift, warm.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from brightscan.autoscan.config import DriftConfig
from brightscan.autoscan.drift import DriftMonitor, night_drift
from brightscan.autoscan.pages.metrics import render_metrics
from brightscan.autoscan.pages.views import status_view
from brightscan.autoscan.store import action_attempts, actions, alerts, open_readonly, open_store, rejections, sources
from brightscan.model.reference import build_reference
from brightscan.preprocess import feature_names

JD0 = 2461000.55  # 2025-11-21 01:12 UTC
NAMES = list(feature_names("icml2023"))


def _fill(url: str, n: int, rng: np.random.Generator) -> None:
    store = open_store(url)
    now = time.time()
    n_objects = n // 5
    with store.transaction() as conn:
        conn.execute(sources.insert(), [{"object_id": f"ZTF{i:09d}", "n_alerts": 5, "policy_state":
                                         "passed" if i % 100 == 0 else "watching", "updated_at": now}
                                        for i in range(n_objects)])
        features = rng.normal(0, 1, (n, len(NAMES)))
        rows = [{"candid": i, "object_id": f"ZTF{i % n_objects:09d}", "jd": JD0 + (i * 7 // n) + rng.uniform(0, 0.4),
                 "magpsf": 18.0, "fid": 1, "score": float(rng.uniform()), "model_id": "mi_cnn.icml2023",
                 "model_version": "v1", "features": dict(zip(NAMES, map(float, features[i]))),
                 "arrived_at": now - 60, "stored_at": now - 30} for i in range(n)]
        for start in range(0, n, 20_000):
            conn.execute(alerts.insert(), rows[start:start + 20_000])
        n_actions = n_objects // 100 * 3
        conn.execute(actions.insert(), [{"kind": ("save", "followup", "annotation")[i % 3], "object_id": f"ZTF{i:09d}",
                                         "idempotency_key": f"k{i}", "payload": {}, "state": "done", "attempts": 1,
                                         "next_attempt_at": now, "arrived_at": now - 60, "acked_at": now - 50,
                                         "created_at": now, "updated_at": now} for i in range(n_actions)])
        conn.execute(action_attempts.insert(), [{"action_id": i + 1, "attempt": 1, "outcome": "done", "detail": "ok",
                                                 "started_at": now, "finished_at": now} for i in range(n_actions)])
        conn.execute(rejections.insert(), [{"candid": -i, "stage": "cutouts", "reason": f"cutout {i % 3} is all zero",
                                            "created_at": now} for i in range(n // 100)])
    store.dispose()


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _fill(url, args.alerts, rng)
        store = open_readonly(url)
        reference = build_reference(rng.normal(0, 1, (20_000, len(NAMES))), NAMES, rng.uniform(size=20_000))
        config = DriftConfig()
        with store.engine.connect() as conn:
            base = _median_s(lambda: status_view(conn, time.time()), args.repeats)
            night = _median_s(lambda: night_drift(conn, reference, "2025-11-24", config), args.repeats)
            cold = _median_s(lambda: DriftMonitor(reference, config).recent(conn), args.repeats)
            monitor = DriftMonitor(reference, config)
            monitor.recent(conn)
            warm = _median_s(lambda: monitor.recent(conn), args.repeats)
        scrape = _median_s(lambda: render_metrics(store), args.repeats)
        scrape_drift = _median_s(lambda: render_metrics(store, monitor), args.repeats)
        store.dispose()
    print(f"{args.alerts:,} alerts over 7 nights; {platform.processor() or platform.machine()}, "
          f"load {os.getloadavg()[0]:.2f}; median of {args.repeats}")
    for name, value in [("status page query (baseline)", base), ("/metrics scrape, no drift", scrape),
                        ("drift of one night", night), ("drift of 7 nights, cold", cold),
                        ("drift of 7 nights, warm", warm), ("/metrics scrape with drift, warm", scrape_drift)]:
        print(f"{name:34} {value * 1000:9.1f} ms  ({value / base:5.2f}x baseline)")


if __name__ == "__main__":
    main()
