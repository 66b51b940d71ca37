"""Training steps of ``mi_cnn.icml2023`` per second with 1 or 2 torch threads, fp32 or bf16, on
whatever load the machine has now: the measurement behind ``learning-curve --threads 1``.

    python benchmarks/bench_threads.py                 # 12 s per variant
    python benchmarks/bench_threads.py --seconds 30

Each variant runs in its own process (torch's thread pool is fixed once used), on random batches
of 16 alerts (the recipe's batch), and prints alerts per wall second and per CPU second. On an idle
machine two threads should win; on cores shared with other busy processes, OpenMP threads spin
waiting for a descheduled sibling and a single thread does more work per CPU second.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time


def _variant(threads: int, precision: str, seconds: float) -> None:
    import torch
    import torch.nn.functional as F

    from brightscan.model import create_model

    torch.set_num_threads(threads)
    model = create_model("mi_cnn.icml2023", seed=0)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 63, 63, 3, generator=gen)  # (N, H, W, C) triplets
    f = torch.randn(16, model.config.n_features, generator=gen)
    y = torch.randint(0, 2, (16,), generator=gen).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x, f).float().squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += 16
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"threads {threads} {precision}: {n / wall:.0f} alerts/s wall, {n / cpu:.0f} alerts per CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--variant", nargs=2, metavar=("THREADS", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        _variant(int(args.variant[0]), args.variant[1], args.seconds)
        return
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    for threads in (1, 2):
        for precision in ("bf16", "fp32"):
            subprocess.run([sys.executable, __file__, "--seconds", str(args.seconds),
                            "--variant", str(threads), precision], check=True)


if __name__ == "__main__":
    main()
