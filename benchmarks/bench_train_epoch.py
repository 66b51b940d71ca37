"""Training seconds per epoch per architecture, on a real dataset, as ratios to ``mi_cnn.v1``.

Each preset trains ``--steps`` optimisation steps of its own recipe (batch size, N_max, the
dataset's thinning, class weights, rotations and flips) on the training split of ``DATASET``
through brightscan's loop (:func:`brightscan.train.train_epoch`), after ``--warmup`` steps that
are not timed. The wall-clock rate gives the seconds one epoch of that split would take (the
validation pass is not counted). Every measurement runs in a fresh child process, one at a time,
and the presets alternate over ``--rounds`` rounds (the machine may be shared); medians are
reported with the load average at the start and at the end::

    python benchmarks/bench_train_epoch.py DATASET --steps 40 --rounds 2 --threads 1 \\
        --presets mi_cnn.v1,mm_convnext_pico.btsbot2,frozen_fusion_convnext_pico.btsbot2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _child(dataset: Path, preset: str, steps: int, warmup: int, precision: str, threads: int) -> dict:
    import itertools

    import numpy as np
    import torch

    from brightscan.dataset import iter_batches, open_split
    from brightscan.dataset.card import read_dataset_card
    from brightscan.model import create_model
    from brightscan.preprocess import feature_names
    from brightscan.train import train_epoch
    from brightscan.train.recipe import recipe_for
    from brightscan.train.trainer import class_weights

    torch.set_num_threads(threads)
    model = create_model(preset, seed=0, device="cpu")
    recipe = recipe_for(preset)
    split = open_split(dataset, "train", feature_names(model.config.feature_set))
    card = read_dataset_card(dataset)
    thinning = (card.get("build") or {}).get("thinning", "latest")
    rows = split.thinned_indices(recipe.nmax, thinning, int(card.get("seed") or 0))
    batches = itertools.cycle(iter_batches(split, rows, recipe.batch_size, rng=np.random.default_rng(0),
                                           drop_last=True))
    opt = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas)
    weights, gen = class_weights(split.labels[rows]), torch.Generator().manual_seed(0)

    def run(n: int) -> int:
        stats = train_epoch(model, [next(batches) for _ in range(n)], opt, class_weights=weights,
                            device=torch.device("cpu"), augment=gen, precision=precision)
        return stats.alerts

    run(warmup)
    start = time.perf_counter()
    alerts = run(steps)
    rate = alerts / (time.perf_counter() - start)
    return {"preset": preset, "precision": precision, "batch": recipe.batch_size, "alerts_per_s": rate,
            "epoch_alerts": int(len(rows)), "s_per_epoch": len(rows) / rate,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--presets", default="mi_cnn.v1,mm_convnext_pico.btsbot2")
    parser.add_argument("--steps", type=int, default=40, help="timed optimisation steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.dataset, args.child, args.steps, args.warmup, args.precision, args.threads)))
        return
    presets = args.presets.split(",")
    load_start = os.getloadavg()[0]
    results: dict[str, list[dict]] = {p: [] for p in presets}
    for round_ in range(args.rounds):
        for preset in presets if round_ % 2 == 0 else presets[::-1]:
            out = subprocess.run([sys.executable, __file__, str(args.dataset), "--child", preset, "--steps",
                                  str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision,
                                  "--threads", str(args.threads)], check=True, capture_output=True, text=True)
            results[preset].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[preset][-1]), file=sys.stderr, flush=True)
    print(f"# {args.dataset}: {args.steps} steps x {args.rounds} rounds, {args.precision}, {args.threads} "
          f"thread(s); load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end")
    print("| preset | parameters | batch | alerts/s per round | alerts/s (median) | x mi_cnn.v1 | train alerts per epoch "
          "| s per epoch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    median = {p: statistics.median(r["alerts_per_s"] for r in rs) for p, rs in results.items()}
    base = median.get("mi_cnn.v1")
    for preset, rs in results.items():
        ratio = f"{median[preset] / base:.3f}" if base else "-"
        rounds = ", ".join(f"{r['alerts_per_s']:.1f}" for r in rs)
        print(f"| {preset} | {rs[0]['parameters']:,} | {rs[0]['batch']} | {rounds} | {median[preset]:.1f} | {ratio} | "
              f"{rs[0]['epoch_alerts']:,} | {rs[0]['epoch_alerts'] / median[preset]:.0f} |")


if __name__ == "__main__":
    main()
