"""GPU check: scoring parity and speed against the CPU, and a short training run, on a CUDA machine.

Run with ``bash benchmarks/gpu_check.sh`` (which also records ``nvidia-smi``). Exits 1 when a
parity check fails, 2 when no CUDA device is visible. Scores: the published ``v1.0.1`` model on
the real alerts in ``../shared`` when present, else a seeded ``mi_cnn.v1`` on a small simulated
survey; the GPU's float32 scores must be within 1e-4 of the CPU's (cuDNN convolutions sum in
another order), bf16 within the 1e-2 measured on CPUs. Training: two epochs of a few steps
each on CPU and GPU from the same seed; both must finish with finite losses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _inputs(tmp: Path) -> tuple[Path, list[Path]]:
    """A model directory and alert inputs: the published model and real alerts when available."""
    from brightscan.model import create_model, import_keras, save_model

    published = SHARED / "models" / "btsbot-published" / "v1.0.1"
    real = SHARED / "data" / "real-alerts"
    if published.exists() and real.exists():
        return import_keras(published, tmp / "v1.0.1"), [real]
    from brightscan.simulate import SurveyConfig, simulate_survey

    simulate_survey(SurveyConfig(n_sources=400, seed=1, n_nights=20, n_workers=1), tmp / "sim")
    return save_model(create_model("mi_cnn.v1", seed=0, device="cpu"), tmp / "v1"), [tmp / "sim" / "alerts"]


def _rate(scorer, triplets: np.ndarray, features: np.ndarray, sync: bool) -> float:
    scorer.predict_logits(triplets[:256], features[:256])
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        scorer.predict_logits(triplets, features)
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return len(triplets) / best


def check_scoring(model_dir: Path, inputs: list[Path], batch: int) -> dict:
    from brightscan.alerts import read_alerts
    from brightscan.preprocess.pipeline import Pipeline
    from brightscan.score import Scorer

    cpu = Scorer(model_dir, device="cpu", precision="float32", batch_size=batch)
    chunk = Pipeline(cpu.feature_set).prepare(read_alerts(inputs))
    triplets, features = chunk.triplet_array(), chunk.feature_array()
    reps = max(1, 4096 // max(len(triplets), 1))  # time on at least ~4096 alerts
    big_t, big_f = np.concatenate([triplets] * reps), np.concatenate([features] * reps)
    ref = cpu.score_arrays(triplets, features)
    out = {"alerts": len(triplets), "cpu_float32_alerts_per_s": round(_rate(cpu, big_t, big_f, False), 1)}
    for precision, bound in (("float32", 1e-4), ("bfloat16", 1e-2)):
        gpu = Scorer(model_dir, device="cuda", precision=precision, batch_size=batch)
        dev = float(np.abs(gpu.score_arrays(triplets, features) - ref).max())
        out[f"gpu_{precision}"] = {"max_abs_dev_vs_cpu": dev, "bound": bound, "ok": dev <= bound,
                                   "alerts_per_s": round(_rate(gpu, big_t, big_f, True), 1)}
    return out


def check_training(tmp: Path) -> dict:
    from brightscan.dataset import BuildConfig, build_dataset
    from brightscan.simulate import SurveyConfig, simulate_survey
    from brightscan.train import Trainer, load_train_config

    simulate_survey(SurveyConfig(n_sources=200, seed=2, n_nights=20, n_workers=1), tmp / "tsim")
    build_dataset([tmp / "tsim" / "alerts"], tmp / "tsim" / "labels.csv", tmp / "ds", BuildConfig(nmax=60, seed=1))
    out = {}
    for device in ("cpu", "cuda"):
        cfg = load_train_config(None, preset="mi_cnn.v1", epochs=2, seed=0, device=device,
                                max_steps_per_epoch=20)
        t0 = time.perf_counter()
        result = Trainer(cfg).fit(tmp / "ds", tmp / f"model-{device}").result_
        out[device] = {"seconds": round(time.perf_counter() - t0, 2), "best_val_loss": result.best_val_loss,
                       "ok": bool(np.isfinite(result.best_val_loss))}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="alerts per model call")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir, inputs = _inputs(tmp)
        report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                  "scoring": check_scoring(model_dir, inputs, args.batch), "training": check_training(tmp)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    checks = [v["ok"] for k, v in report["scoring"].items() if k.startswith("gpu_")]
    checks += [v["ok"] for v in report["training"].values()]
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
