"""Where a dask worker's extra CPU per alert goes: the same scoring job, in this process and in one
LocalCluster worker with brightscan's worker settings and with dask's defaults, in one invocation.

Unlike ``bench_cluster.py`` (which times whole runs, worker start-up, model loading and the
scheduler included), this counts only the scoring itself: CPU time (user, system) and minor page
faults of the process that scores, from after the model is loaded to the end of the run, so a
fixed cost per worker does not hide or inflate the cost per alert::

    python benchmarks/bench_worker_cpu.py [--sources 400] [--nights 8] [--rounds 1]

Configurations: ``A`` in-process, 1 model thread; ``C`` one worker x 1 thread with
:func:`brightscan.distributed.cluster.worker_settings`; ``E`` the same worker with dask's defaults
(``MALLOC_TRIM_THRESHOLD_=65536``, statistical profiler on: the settings before issue 22).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def usage() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and minor page faults so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime, u.ru_stime, u.ru_minflt


def _delta(before: tuple, after: tuple, alerts: int) -> dict:
    user, system, faults = (b - a for a, b in zip(before, after))
    return {"alerts": alerts, "user_s": round(user, 2), "system_s": round(system, 2),
            "cpu_ms_per_alert": round(1000 * (user + system) / alerts, 3), "minor_faults": int(faults)}


def in_process(model: Path, archives: Path, out: Path) -> dict:
    from brightscan.distributed import ScoreJob, run_partitioned

    job = ScoreJob(str(model), precision="float32", batch_size=32)
    job.setup(1)
    before = usage()
    summary = run_partitioned(job, [archives], out, model_threads=1)
    return _delta(before, usage(), summary.rows)


def in_worker(model: Path, archives: Path, out: Path, tuned: bool) -> dict:
    from brightscan.distributed import ClusterSpec, RunLayout, ScoreJob, open_client, plan_partitions
    from brightscan.distributed.worker import JobPlugin, run_partition

    job = ScoreJob(str(model), precision="float32", batch_size=32)
    layout = RunLayout(out, job.data)
    layout.start(job.run_card(), resume=False)
    with open_client(ClusterSpec("local", workers=1), tuned=tuned) as (client, _):
        client.register_plugin(JobPlugin(job, 1))  # the model is loaded before counting starts
        (before,) = client.run(usage).values()
        futures = [client.submit(run_partition, p, str(layout.root), layout.data, pure=False)
                   for p in plan_partitions([archives])]
        rows = client.gather(futures)
        (after,) = client.run(usage).values()
    return _delta(before, after, sum(r["rows"] for r in rows))


def main() -> None:
    import bench_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=400)
    parser.add_argument("--nights", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="repeat; the least CPU per alert is kept")
    args = parser.parse_args()
    from brightscan.simulate import SurveyConfig, simulate_survey

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate_survey(SurveyConfig(n_sources=args.sources, seed=7, n_nights=args.nights, n_workers=1,
                                     tarball=True), tmp / "survey")
        archives = tmp / "survey" / "alerts"
        model = bench_cluster._model(tmp, None)
        runs = {"A in-process": lambda: in_process(model, archives, tmp / "a"),
                "C worker, brightscan settings": lambda: in_worker(model, archives, tmp / "c", True),
                "E worker, dask defaults": lambda: in_worker(model, archives, tmp / "e", False)}
        results: dict[str, dict] = {}
        for round_ in range(args.rounds):
            for name in (list(runs) if round_ % 2 == 0 else list(reversed(runs))):
                load = os.getloadavg()[0]
                run = {**runs[name](), "load_before": round(load, 2)}
                if name not in results or run["cpu_ms_per_alert"] < results[name]["cpu_ms_per_alert"]:
                    results[name] = run
        base = results["A in-process"]["cpu_ms_per_alert"]
        report = {"cpu": bench_cluster._cpu(), "model": model.name, "runs": results,
                  "extra_cpu_per_alert": {k[0]: round(v["cpu_ms_per_alert"] / base - 1, 3) for k, v in results.items()
                                          if not k.startswith("A")},
                  "load_after": round(os.getloadavg()[0], 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
