"""Benchmark the survey simulator: alerts per second, peak memory, disk use; optional realism AUC.

    python benchmarks/bench_simulate.py --sources 1000                 # speed, extrapolated to 14,000
    python benchmarks/bench_simulate.py --sources 14000 --out /tmp/sim14k   # the full paper-sized run
    python benchmarks/bench_simulate.py --sources 2000 --realism /tmp/btsbot-v1.0.1

``--realism MODEL_DIR`` scores every simulated alert with that model (import the published one
first: ``brightscan model import-keras ../shared/models/btsbot-published/v1.0.1 --out DIR``) and
prints its ROC AUC on bright-SN alerts vs the rest, with per-class mean scores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from brightscan.simulate import SurveyConfig, simulate_survey

PAPER_SOURCES = 14_000


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tarball", action="store_true")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary folder, deleted)")
    parser.add_argument("--realism", type=Path, metavar="MODEL_DIR", help="score the alerts with this model")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-sim-")) / "survey"
    config = SurveyConfig(n_sources=args.sources, seed=args.seed, n_workers=args.workers, tarball=args.tarball)
    t0 = time.perf_counter()
    result = simulate_survey(config, out)
    seconds = time.perf_counter() - t0
    rss_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rate = result.n_alerts / seconds
    per_source = seconds / result.n_sources
    figures = {
        "sources": result.n_sources, "alerts": result.n_alerts, "seconds": round(seconds, 1),
        "alerts_per_s": round(rate, 1), "alerts_per_source": round(result.n_alerts / result.n_sources, 1),
        "positive_sources": result.n_positive_sources, "scanner_saves": result.n_saved,
        "peak_rss_parent_mib": round(rss_parent, 1), "peak_rss_worker_mib": round(rss_child, 1),
        "disk_mib": round(_du(out) / 2**20, 1), "workers": args.workers, "cpu_count": os.cpu_count(),
        "extrapolated_14000_sources_min": round(per_source * PAPER_SOURCES / 60, 1),
    }
    print(json.dumps(figures, indent=2))
    if args.realism:
        from brightscan.simulate.realism import realism_report

        t1 = time.perf_counter()
        report = realism_report(out, args.realism)
        report["seconds"] = round(time.perf_counter() - t1, 1)
        print(json.dumps(report, indent=2))
    if args.out is None:
        shutil.rmtree(out.parent)


if __name__ == "__main__":
    main()
