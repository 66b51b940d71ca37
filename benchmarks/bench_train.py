"""Training throughput, compute-bound fraction, precision check and peak memory.

Three modes (the docs quote the figures with these commands)::

    python benchmarks/bench_train.py speed  --alerts 4096 --seconds 8 --rounds 3 --threads 1 --clock cpu
    python benchmarks/bench_train.py auc    --sources 300 --epochs 6
    python benchmarks/bench_train.py memory --alerts 560000 --steps 300

``speed`` trains both presets on the same fabricated dataset, in the same process, with (a) the
original loop -- a per-sample ``torch.utils.data.Dataset`` reading one memory-mapped row at a
time, per-sample numpy rotations/flips, float32, NHWC -> NCHW per sample, ``DataLoader`` batch 16
-- and (b) brightscan's loop (batches gathered by positioned reads, one-gather augmentation,
channels-last convolutions) in fp32 and bf16 autocast, at batch 16 and larger, with and without
``torch.compile``. It also measures the CPU's float32 and bf16 matmul rates and counts the model's
FLOPs per alert (forward + backward, ``torch.utils.flop_counter``), and prints the fraction of
the matmul rate each loop reaches.

``auc`` trains the icml2023 preset on a simulated survey in fp32 and in bf16 (same seed) and
prints the validation loss and AUC of both. ``memory`` fabricates a large dataset, trains on it
in a child process and prints the child's peak RSS, then reads every training row once.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from brightscan.dataset import iter_batches, open_split
from brightscan.dataset.build import table_schema
from brightscan.dataset.card import write_card
from brightscan.model import create_model
from brightscan.preprocess import feature_names
from brightscan.storage import NpyAppender
from brightscan.train import TrainConfig, Trainer, train_epoch
from brightscan.train.trainer import class_weights

PRESETS = ("mi_cnn.icml2023", "mi_cnn.v1")
#: "cpu" (process CPU time x threads) or "wall"; set from --clock.
CLOCK = "cpu"


# --- data --------------------------------------------------------------------------------------


def fabricate_dataset(root: Path, sizes: dict[str, int], seed: int = 0, pool: int = 2048) -> Path:
    """Random unit-norm triplets (a pool of rows written repeatedly) and random features."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(pool, 63, 63, 3)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=(1, 2), keepdims=True)
    names = feature_names("v1")
    schema = table_schema("v1")
    for split, n in sizes.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        with NpyAppender(root / split / "triplets.npy", (63, 63, 3)) as npy, \
                pq.ParquetWriter(root / split / "alerts.parquet", schema) as writer:
            for start in range(0, n, pool):
                m = min(pool, n - start)
                npy.append(rows[:m])
                idx = np.arange(start, start + m)
                cols = {"candid": idx, "objectId": [f"ZTF{i // 60:08d}" for i in idx],
                        "jd": 2460000.0 + (idx % 60), "magpsf": rng.normal(18, 1, m), "fid": np.ones(m, np.int32),
                        "label": (idx // 60 % 2).astype(np.int8), "class": [""] * m}
                for name in names:
                    if name not in cols:
                        cols[name] = rng.normal(size=m).astype(np.float32)
                writer.write_table(pa.Table.from_pydict(cols, schema=schema))
    write_card(root, {"kind": "fabricated", "feature_set": "v1", "features": list(names), "nmax": None,
                      "seed": seed, "inputs": [], "splits": {s: {"alerts": n} for s, n in sizes.items()},
                      "skipped": {}})
    return root


class OriginalDataset(torch.utils.data.Dataset):
    """The original data path: one row at a time, numpy transforms, NCHW per sample."""

    def __init__(self, directory: Path, names: tuple[str, ...], seed: int) -> None:
        split = open_split(directory.parent, directory.name, names)
        self.triplets = split.triplets  # memory map
        self.features, self.labels = split.features, split.labels
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = np.asarray(self.triplets[i], dtype=np.float32)
        image = np.rot90(image, k=int(self.rng.integers(4)), axes=(0, 1))
        if self.rng.random() < 0.5:
            image = np.flip(image, axis=0)
        if self.rng.random() < 0.5:
            image = np.flip(image, axis=1)
        chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)  # NCHW per sample
        return torch.from_numpy(chw), torch.from_numpy(self.features[i].copy()), torch.tensor(self.labels[i])


# --- measurements ------------------------------------------------------------------------------


def matmul_rate(dtype: torch.dtype, seconds: float = 2.0, n: int = 2048, tries: int = 5) -> float:
    """Median FLOP/s of square matmuls in ``dtype`` over a few windows, per CPU time x threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    rates = []
    for _ in range(tries):
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        spent = wall if CLOCK == "wall" else cpu_s / torch.get_num_threads()
        rates.append(2 * n**3 * count / spent)
    return float(np.median(rates))


def flops_per_alert(preset: str) -> float:
    """Forward + backward FLOPs of one alert (counted on a batch of 16)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(preset, seed=0, device="cpu").train()
    n_features = model.config.n_features
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(16, 63, 63, 3), torch.randn(16, n_features)).sum().backward()
    return counter.get_total_flops() / 16


def _timed(step_fn, seconds: float, warmup: int) -> tuple[float, float]:
    """(warm-up seconds, alerts/s) of ``step_fn() -> alerts`` run for ``seconds``.

    With ``--clock cpu`` rates are per second of this process's CPU time divided by its thread
    count: on a shared machine that is the rate the loop would reach with its cores to itself
    (use it with one thread: idle OpenMP threads spin and inflate CPU time). ``--clock wall`` is
    plain elapsed time.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        step_fn()
    warm = time.perf_counter() - start
    alerts, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        alerts += step_fn()
    if CLOCK == "wall":
        return warm, alerts / (time.perf_counter() - start)
    return warm, alerts * torch.get_num_threads() / (time.process_time() - cpu)


def original_rate(ds: Path, preset: str, seconds: float) -> tuple[float, float]:
    model = create_model(preset, seed=0, device="cpu").train()
    data = OriginalDataset(ds / "train", feature_names(model.config.feature_set), seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = itertools.cycle(loader)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.99, 0.999))

    def step() -> int:
        x, f, y = next(batches)
        logits = model(x.permute(0, 2, 3, 1), f)  # the model takes NHWC; NCHW comes back contiguous
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return len(y)

    return _timed(step, seconds, warmup=3)


def brightscan_rate(ds: Path, preset: str, seconds: float, *, batch: int, precision: str,
                    compile_model: bool) -> tuple[float, float]:
    model = create_model(preset, seed=0, device="cpu")
    forward = torch.compile(model) if compile_model else model
    split = open_split(ds, "train", feature_names(model.config.feature_set))
    rows = itertools.cycle(iter_batches(split, np.arange(len(split)), batch, rng=np.random.default_rng(0),
                                        drop_last=True))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.99, 0.999))
    weights, gen = class_weights(split.labels), torch.Generator().manual_seed(0)

    def step() -> int:
        stats = train_epoch(forward, [next(rows)], opt, class_weights=weights, device=torch.device("cpu"),
                            augment=gen, precision=precision)
        return stats.alerts

    return _timed(step, seconds, warmup=4 if compile_model else 2)


def _speed_rows(ds: Path, preset: str, args: argparse.Namespace, peak: dict[str, float]) -> None:
    """Variants are measured in interleaved rounds (the machine may be shared); medians reported."""
    flops = flops_per_alert(preset)
    variants = [("fp32", 16, False), ("bf16", 16, False), ("fp32", 64, False), ("bf16", 64, False),
                ("bf16", 128, False)]
    rates: dict[tuple, list[float]] = {}
    ratios: dict[tuple, list[float]] = {}
    warmups: dict[tuple, float] = {}
    for _ in range(args.rounds):
        warmups["original"], base = original_rate(ds, preset, args.seconds)
        rates.setdefault("original", []).append(base)
        for precision, batch, comp in variants:
            warm, rate = brightscan_rate(ds, preset, args.seconds, batch=batch, precision=precision,
                                         compile_model=comp)
            key = (precision, batch, comp)
            warmups[key] = warm
            rates.setdefault(key, []).append(rate)
            ratios.setdefault(key, []).append(rate / base)
    if args.compile:  # compiled once (its warm-up is long); compared with the last original round
        for precision, batch in (("fp32", 16), ("bf16", 64)):
            key = (precision, batch, True)
            warmups[key], rate = brightscan_rate(ds, preset, args.seconds, batch=batch, precision=precision,
                                                 compile_model=True)
            rates[key], ratios[key] = [rate], [rate / rates["original"][-1]]
    base = float(np.median(rates["original"]))
    print(f"| {preset} ({flops / 1e6:.0f} MFLOP/alert) | original | fp32 | 16 | {base:.0f} | 1.00 | "
          f"{100 * base * flops / peak['fp32']:.1f} | {warmups['original']:.1f} |", flush=True)
    for key in [k for k in rates if k != "original"]:
        precision, batch, comp = key
        rate = float(np.median(rates[key]))
        name = "brightscan" + (" + compile" if comp else "")
        print(f"| {preset} | {name} | {precision} | {batch} | {rate:.0f} | {np.median(ratios[key]):.2f} | "
              f"{100 * rate * flops / peak[precision]:.1f} | {warmups[key]:.1f} |", flush=True)


def _print_auto(presets: list[str]) -> None:
    """What ``train --precision auto`` chooses on this CPU, and the rates it measured to choose."""
    try:
        from brightscan.train.precision import resolve_precision
    except ImportError:  # a checkout from before --precision auto
        return
    for preset in presets:
        chosen, rates = resolve_precision("auto", create_model(preset, device="cpu"), 16, torch.device("cpu"))
        measured = ", ".join(f"{k} {v:.0f} alerts/s (wall)" for k, v in rates.items()) or "not measured"
        print(f"# --precision auto for {preset}: {chosen} ({measured})", flush=True)


def run_speed(args: argparse.Namespace) -> None:
    global CLOCK
    CLOCK = args.clock
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        ds = fabricate_dataset(tmp / "ds", {"train": args.alerts, "val": 256})
        peak = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
              f"{os.getloadavg()[0]:.1f} at start; medians of {args.rounds} interleaved rounds of {args.seconds:.0f} s")
        print(f"matmul rate: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s")
        print(f"| preset | loop | precision | batch | alerts/s ({CLOCK}) | x original | % of matmul rate | warm-up s |")
        print("|---|---|---|---|---|---|---|---|")
        for preset in args.presets:
            _speed_rows(ds, preset, args, peak)
        _print_auto(args.presets)
        print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_auc(args: argparse.Namespace) -> None:
    from brightscan.dataset import BuildConfig, build_dataset
    from brightscan.simulate import SurveyConfig, simulate_survey

    tmp = Path(tempfile.mkdtemp(prefix="bench_auc_"))
    try:
        simulate_survey(SurveyConfig(n_sources=args.sources, seed=args.seed, n_nights=150), tmp / "sim")
        card = build_dataset([tmp / "sim" / "alerts"], tmp / "sim" / "labels.csv", tmp / "ds",
                             BuildConfig(nmax=60, fractions=(0.7, 0.3, 0.0), seed=args.seed))
        print(f"# simulated {args.sources} sources: train {card['splits']['train']['alerts']} alerts, "
              f"val {card['splits']['val']['alerts']} alerts")
        print("| precision | batch | epoch | val loss | val AUC | alerts/s |")
        print("|---|---|---|---|---|---|")
        for precision, batch in (("fp32", 16), ("bf16", 16), ("bf16", 64)):
            config = TrainConfig(preset="mi_cnn.icml2023", epochs=args.epochs, seed=args.seed, precision=precision,
                                 recipe={"batch_size": batch, "learning_rate": 1e-4 * batch / 16})
            result = Trainer(config).fit(tmp / "ds", tmp / f"m_{precision}_{batch}").result_
            for row in result.history:
                print(f"| {precision} | {batch} | {row['epoch']} | {row['val_loss']:.4f} | {row['val_auc']:.4f} | "
                      f"{row['alerts_per_s']:.0f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child(mode: str, ds: str, steps: int, preset: str) -> None:
    """Run in a fresh process so ru_maxrss is this workload's peak alone."""
    start = time.perf_counter()
    if mode == "train":
        config = TrainConfig(preset=preset, epochs=1, max_steps_per_epoch=steps, precision="bf16")
        Trainer(config).fit(ds, Path(ds) / "model")
        what = f"train {steps} steps of {preset}"
    else:
        split = open_split(ds, "train")
        n = sum(len(b[2]) for b in iter_batches(split, np.arange(len(split)), 512, rng=np.random.default_rng(0)))
        what = f"read all {n} training rows, shuffled, batch 512"
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{what}: peak RSS {peak_gib:.2f} GiB, {time.perf_counter() - start:.0f} s", flush=True)


def run_memory(args: argparse.Namespace) -> None:
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_mem_"))
    try:
        start = time.perf_counter()
        fabricate_dataset(root / "ds", {"train": args.alerts, "val": 4096})
        size = (root / "ds" / "train" / "triplets.npy").stat().st_size / 2**30
        print(f"# fabricated {args.alerts} training alerts ({size:.1f} GiB on disk) in "
              f"{time.perf_counter() - start:.0f} s")
        for mode in ("train", "read"):
            subprocess.run([sys.executable, __file__, "_child", mode, str(root / "ds"), str(args.steps),
                            args.preset], check=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--alerts", type=int, default=4096)
    speed.add_argument("--seconds", type=float, default=20.0, help="timed seconds per variant")
    speed.add_argument("--presets", nargs="+", default=list(PRESETS))
    speed.add_argument("--rounds", type=int, default=3)
    speed.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    speed.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    speed.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    auc = sub.add_parser("auc")
    auc.add_argument("--sources", type=int, default=300)
    auc.add_argument("--epochs", type=int, default=6)
    auc.add_argument("--seed", type=int, default=0)
    memory = sub.add_parser("memory")
    memory.add_argument("--alerts", type=int, default=560_000)
    memory.add_argument("--steps", type=int, default=400)
    memory.add_argument("--preset", default="mi_cnn.icml2023")
    memory.add_argument("--dir", default=None, help="where to fabricate the dataset (default: a temp dir)")
    args = parser.parse_args()
    {"speed": run_speed, "auc": run_auc, "memory": run_memory}[args.mode](args)


if __name__ == "__main__":
    main()
