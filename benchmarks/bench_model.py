"""Benchmark the scoring model: model-only and end-to-end throughput against the CPU's bound.

For each preset (``mi_cnn.icml2023`` from the published v03, ``mi_cnn.v1`` from v1.0.1) and each
backend (torch, onnx) with the same number of threads, prints:

- model-only alerts/s at batch 1, 32 and 256 (random inputs, warm; the torch scorer runs a CPU
  batch in 32-alert chunks, and the unchunked single-call rate at 256 is printed too),
- end-to-end alerts/s: Avro bytes -> decode -> preprocess -> score, preprocessing overlapped with
  the model in a background thread (the real Avro alerts of ../shared, repeated),
- the model's FLOPs per alert (multiply-adds x 2, convolutions and dense layers),
- the float32 matrix-multiply rate of this CPU measured in the same run, and the ratio
  ``(FLOPs x alerts/s at batch 256) / matmul rate`` (1.0 = at the compute bound),
- a bfloat16 row (torch, image branch in bf16) with the largest score difference to float32
  over the real alerts.

Usage::

    python benchmarks/bench_model.py [--threads 2] [--shared ../shared] [--repeat 20] \
        [--wait-quiet 600]
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from brightscan.alerts import decode_avro, read_alerts
from brightscan.model import ModelConfig, import_keras
from brightscan.model.onnx_export import export_onnx
from brightscan.score.scorer import Scorer

PUBLISHED = {"mi_cnn.icml2023": "v03", "mi_cnn.v1": "v1.0.1"}


def model_flops(config: ModelConfig) -> int:
    """FLOPs (2 x multiply-adds) of one alert through convolutions and dense layers."""
    flops, side, channels = 0, config.image_size, config.image_channels
    if config.uses_image:
        for block, pool in zip(config.conv_filters, config.pool_sizes):
            for filters in block:
                flops += 2 * side * side * config.kernel_size**2 * channels * filters
                channels = filters
            side //= pool
    widths = [config.n_features, *config.feature_units] if config.uses_features else []
    flops += sum(2 * a * b for a, b in zip(widths, widths[1:]))
    head = [config.image_out + config.features_out, *config.head_units, 1]
    return flops + sum(2 * a * b for a, b in zip(head, head[1:]))


def matmul_rate(dtype: torch.dtype = torch.float32, seconds: float = 2.0) -> float:
    """Best FLOP/s of square matrix products over a few sizes (torch's BLAS, current threads)."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            count += 1
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start))
    return best


def model_rate(scorer: Scorer, batch: int, seconds: float = 1.5) -> float:
    """Alerts/s of ``predict_logits`` on random inputs of one batch size."""
    config = scorer.loaded.config
    rng = np.random.default_rng(0)
    triplets = rng.normal(size=(batch, 63, 63, 3)).astype(np.float32)
    features = rng.normal(size=(batch, config.n_features)).astype(np.float32)
    scorer.batch_size = batch
    scorer.predict_logits(triplets, features)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        scorer.predict_logits(triplets, features)
        count += batch
    return count / (time.perf_counter() - start)


def end_to_end_rate(scorer: Scorer, blobs: list[bytes], batch: int = 32) -> tuple[float, int]:
    """Alerts/s from Avro bytes to scores (rejected alerts included in the count)."""

    def packets():
        for blob in blobs:
            yield from decode_avro(blob)

    scorer.batch_size = batch
    scorer.score_alerts(packets())  # warm-up
    start = time.perf_counter()
    results = scorer.score_alerts(packets())
    elapsed = time.perf_counter() - start
    return len(blobs) / elapsed, len(results)


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> None:
    """Sleep until the 1-minute load average drops below ``threshold`` (shared machines)."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] > threshold and time.monotonic() < deadline:
        time.sleep(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--repeat", type=int, default=20, help="copies of the 38 Avro alerts")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine's load to drop")
    args = parser.parse_args()
    wait_for_quiet(args.wait_quiet)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    torch.set_num_threads(args.threads)
    avro = sorted(glob.glob(str(args.shared / "data" / "real-alerts" / "ztf-avro" / "*.avro")))
    blobs = [Path(p).read_bytes() for p in avro] * args.repeat
    real = list(read_alerts([args.shared / "data" / "real-alerts"]))
    fp32_rate, bf16_rate = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    print(f"torch {torch.__version__}, {args.threads} threads; float32 matmul "
          f"{fp32_rate / 1e9:.0f} GFLOP/s, bfloat16 matmul {bf16_rate / 1e9:.0f} GFLOP/s")
    print(f"end-to-end input: {len(blobs)} Avro packets ({len(avro)} real alerts x {args.repeat})")
    header = ("preset", "backend", "precision", "MFLOP/alert", "b=1 /s", "b=32 /s", "b=256 /s",
              "bound ratio@256", "e2e /s", "max|dscore|")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    unchunked = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset, name in PUBLISHED.items():
            model_dir = import_keras(args.shared / "models" / "btsbot-published" / name,
                                     Path(tmp) / name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(model_dir)
            reference = Scorer(model_dir, device="cpu").score_alerts(real).score
            for backend, precision in (("torch", "float32"), ("onnx", "float32"),
                                       ("torch", "bfloat16")):
                scorer = Scorer(model_dir, backend=backend, precision=precision, device="cpu",
                                num_threads=args.threads)
                flops = model_flops(scorer.loaded.config)
                rates = [model_rate(scorer, b) for b in (1, 32, 256)]
                if (backend, precision) == ("torch", "float32"):
                    scorer._run.chunk = None  # the scorer's CPU chunking off: one call per batch
                    rate = model_rate(scorer, 256)
                    unchunked.append(f"{preset} {rate:.0f}/s, ratio {fp32_rate / (flops * rate):.2f}")
                    scorer._run.chunk = scorer._run.cpu_chunk
                bound = bf16_rate if precision == "bfloat16" else fp32_rate
                e2e, _ = end_to_end_rate(scorer, blobs)
                diff = np.abs(scorer.score_alerts(real).score - reference).max()
                print(f"{preset} | {backend} | {precision} | {flops / 1e6:.0f} | "
                      f"{rates[0]:.0f} | {rates[1]:.0f} | {rates[2]:.0f} | "
                      f"{bound / (flops * rates[2]):.2f} | {e2e:.0f} | {diff:.1e}")
    print(f"unchunked torch float32 forward at batch 256 (one oneDNN call): "
          f"{', '.join(unchunked)}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (figures are only valid near 0 + threads)")


if __name__ == "__main__":
    main()
