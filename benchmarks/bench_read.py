"""Reading speed of this checkout against a baseline revision, measured in one run.

``git archive`` puts the baseline's ``src/`` in a temporary folder; rounds then alternate between
a process importing the baseline and one importing this checkout, each pinned to one core
(``sched_setaffinity``, single-threaded BLAS, torch never imported), and measuring process CPU
time, which is steadier than wall time on a shared machine. Each round reads:

* ``real avro``: the real ZTF packets of ``../shared`` (``read_alerts`` over the folder);
* ``simulated avro``: a simulated survey's alert files (written once, ``SurveyConfig(seed=0)``);
* ``simulated tar.gz``: the same alerts in nightly archives;
* ``real + triplets``: the real packets read and turned into triplets (``make_triplet``: the
  bounded gunzip is on this path).

The best of the rounds is kept per (code, workload); the ratio is this checkout's alerts/s over
the baseline's.

    python benchmarks/bench_read.py --baseline main --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRIGHTSCAN_SHARED_DIR", REPO.parent / "shared"))

_CHILD = r"""
import json, os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from brightscan.alerts import Alert, read_alerts
from brightscan.errors import AlertError
from brightscan.preprocess import make_triplet

workloads, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for name, (inputs, triplets) in workloads.items():
    list(read_alerts(inputs))  # warm: schema cache, imports, page cache
    start, n = time.process_time(), 0
    for _ in range(repeat):
        for item in read_alerts(inputs):
            n += 1
            if triplets and isinstance(item, Alert):
                try:
                    make_triplet(item)
                except AlertError:
                    pass
    out[name] = n / (time.process_time() - start)
print(json.dumps(out))
"""


def cpu_line() -> str:
    """CPU model and the AMX / AVX-512 BF16 / VNNI flags it has."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", text)
    flags = sorted(set(re.findall(r"\b(amx_bf16|amx_tile|avx512_bf16|avx512_vnni|avx_vnni)\b", text)))
    return f"{model.group(1) if model else platform.processor()} ({os.cpu_count()} CPUs; {' '.join(flags) or 'no AMX/VNNI'})"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def simulated(folder: Path) -> tuple[str, str]:
    """A small simulated survey (alert files and nightly archives), written once."""
    from brightscan.simulate import SurveyConfig, simulate_survey

    alerts = folder / "sim"
    if not alerts.exists():
        simulate_survey(SurveyConfig(n_sources=60, seed=0, n_nights=20), alerts)
    files = sorted((alerts / "alerts").rglob("*.avro"))
    archive = folder / "sim.tar.gz"
    if not archive.exists():
        with tarfile.open(archive, "w:gz") as tar:
            for path in files:
                tar.add(path, arcname=path.relative_to(alerts))
    return str(alerts / "alerts"), str(archive)


def baseline_src(revision: str, folder: Path) -> Path:
    """The baseline's ``src/`` extracted from git (nothing checked out)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True,
                             capture_output=True).stdout
    target = folder / f"baseline-{revision.replace('/', '_')}"
    target.mkdir(exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def run_child(src: Path, workloads: dict, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(workloads), str(repeat)], env=env,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default main)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="passes over each workload per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        folder = Path(tmp)
        sim_dir, sim_tar = simulated(folder)
        real = str(SHARED / "data" / "real-alerts" / "ztf-avro")
        workloads = {"real avro": ([real], False), "simulated avro": ([sim_dir], False),
                     "simulated tar.gz": ([sim_tar], False), "real + triplets": ([real], True)}
        codes = {args.baseline: baseline_src(args.baseline, folder), "this checkout": REPO / "src"}
        best: dict[tuple[str, str], float] = {}
        print(f"CPU: {cpu_line()}; load average before: {load()}", flush=True)
        for round_ in range(args.rounds):
            for code, src in codes.items():
                for name, rate in run_child(src, workloads, args.repeat).items():
                    best[code, name] = max(best.get((code, name), 0.0), rate)
            print(f"round {round_ + 1}/{args.rounds} done, load {load()}", flush=True)
    print(f"\n| workload | {args.baseline} alerts/s | this checkout alerts/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name in workloads:
        base, ours = best[args.baseline, name], best["this checkout", name]
        print(f"| {name} | {base:,.0f} | {ours:,.0f} | {ours / base:.3f} |")
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
