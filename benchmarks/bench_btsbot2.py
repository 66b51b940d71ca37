"""Scoring speed and peak memory of the BTSbot 2 architectures, as ratios to ``mi_cnn.v1``.

Every architecture scores the same alerts (the real ZTF alerts of ``../shared``, repeated to
``--alerts``) through brightscan's torch backend, in float32 and in bfloat16 (the reduced
precision ``--precision auto`` may pick on a CPU with avx512_bf16 / AMX). Weights are seeded
random: speed and memory do not depend on their values. Each measurement runs in a fresh child
process, so its peak resident memory (``ru_maxrss``) is that architecture's alone.

    python benchmarks/bench_btsbot2.py --alerts 64 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ARCHITECTURES = ("mi_cnn.v1", "um_nn.btsbot2", "mm_cnn.btsbot2", "convnext_pico.btsbot2",
                 "mm_convnext_pico.btsbot2", "frozen_fusion_convnext_pico.btsbot2",
                 "maxvit_tiny.btsbot2", "mm_maxvit_tiny.btsbot2")


def _child(preset: str, precision: str, alerts: int, repeats: int, shared: Path) -> dict:
    import numpy as np
    import torch

    from brightscan.alerts import read_alerts
    from brightscan.model import create_model
    from brightscan.model.io import LoadedModel
    from brightscan.preprocess.pipeline import Pipeline
    from brightscan.score.backends import TorchBackend

    torch.manual_seed(0)
    model = create_model(preset, seed=0, device="cpu")
    chunk = Pipeline(model.config.feature_set).prepare(read_alerts(shared / "data" / "real-alerts" / "ztf-avro"))
    reps = -(-alerts // len(chunk))
    triplets = np.concatenate([chunk.triplet_array()] * reps)[:alerts]
    features = np.concatenate([chunk.feature_array()] * reps)[:alerts]
    backend = TorchBackend(LoadedModel(model=model, card={}, path=Path(".")), precision)
    backend(triplets[:8], features[:8])  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend(triplets, features)
        times.append(time.perf_counter() - start)
    return {"preset": preset, "precision": precision, "alerts_per_s": alerts / min(times),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.alerts, args.repeats, args.shared)))
        return
    rows = []
    for precision in args.precisions.split(","):
        for preset in ARCHITECTURES:
            out = subprocess.run([sys.executable, __file__, "--alerts", str(args.alerts), "--repeats",
                                  str(args.repeats), "--shared", str(args.shared), "--child", preset, precision],
                                 check=True, capture_output=True, text=True, env=os.environ)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"load average: {os.getloadavg()}")
    print("| architecture | precision | parameters | alerts/s | x mi_cnn.v1 | peak RSS MiB | x mi_cnn.v1 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        base = next(r for r in rows if r["preset"] == "mi_cnn.v1" and r["precision"] == row["precision"])
        print(f"| {row['preset']} | {row['precision']} | {row['parameters']:,} | {row['alerts_per_s']:.1f} | "
              f"{row['alerts_per_s'] / base['alerts_per_s']:.3f} | {row['peak_rss_mib']:.0f} | "
              f"{row['peak_rss_mib'] / base['peak_rss_mib']:.2f} |")


if __name__ == "__main__":
    main()
