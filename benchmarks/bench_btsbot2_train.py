"""Training seconds per epoch of the BTSbot 2 architectures, as ratios to ``mi_cnn.v1``.

An "epoch" is ``--alerts`` simulated alerts (seeded random triplets and features of the real
shapes: speed does not depend on the values) in batches of ``--batch-size``, trained by
brightscan's own epoch loop (:func:`brightscan.train.loop.train_epoch`) with each preset's recipe
optimizer (Adam for ``mi_cnn``, AdamW for the ``*.btsbot2`` presets), augmentation on, in fp32.
A ``frozen_fusion`` epoch is its head stage (both branches frozen, still run forward). Each
architecture runs in a fresh child process; one warm-up epoch, then the best of ``--repeats``.

    python benchmarks/bench_btsbot2_train.py --alerts 128 --batch-size 16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ARCHITECTURES = ("mi_cnn.v1", "um_nn.btsbot2", "mm_cnn.btsbot2", "convnext_pico.btsbot2",
                 "mm_convnext_pico.btsbot2", "frozen_fusion_convnext_pico.btsbot2",
                 "maxvit_tiny.btsbot2", "mm_maxvit_tiny.btsbot2")


def _child(preset: str, alerts: int, batch_size: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from brightscan.model import create_model
    from brightscan.train.loop import train_epoch
    from brightscan.train.recipe import recipe_for
    from brightscan.train.schedule import build_optimizer

    model = create_model(preset, seed=0, device="cpu")
    if hasattr(model, "branches"):  # frozen_fusion: the head stage
        for branch in model.branches():
            branch.requires_grad_(False)
    optimizer = build_optimizer(recipe_for(preset), model.parameters())
    c = model.config
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(batch_size, c.image_size, c.image_size, c.image_channels)).astype(np.float32),
                rng.normal(size=(batch_size, c.n_features)).astype(np.float32),
                (np.arange(batch_size) % 2).astype(np.float32)) for _ in range(max(1, alerts // batch_size))]
    run = lambda: train_epoch(model, batches, optimizer, class_weights=(1.0, 1.0),  # noqa: E731
                              device=torch.device("cpu"), augment=torch.Generator().manual_seed(0))
    run()  # warm-up epoch (oneDNN primitive creation)
    seconds = min(run().seconds for _ in range(repeats))
    return {"preset": preset, "seconds_per_epoch": seconds, "alerts": len(batches) * batch_size,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--presets", default=",".join(ARCHITECTURES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.alerts, args.batch_size, args.repeats)))
        return
    rows = []
    for preset in args.presets.split(","):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", preset, "--alerts", str(args.alerts),
                              "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{preset}: {rows[-1]['seconds_per_epoch']:.2f} s ({time.perf_counter() - start:.0f} s wall)",
              file=sys.stderr)
    base = next((r for r in rows if r["preset"] == "mi_cnn.v1"), rows[0])
    print(f"| architecture | trainable parameters | s per epoch ({base['alerts']} alerts) | x mi_cnn.v1 |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| `{r['preset']}` | {r['trainable_parameters']:,} | {r['seconds_per_epoch']:.2f} | "
              f"{r['seconds_per_epoch'] / base['seconds_per_epoch']:.1f}x |")


if __name__ == "__main__":
    main()
