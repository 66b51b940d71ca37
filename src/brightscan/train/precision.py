"""Which arithmetic a training run uses: ``auto`` picks bf16 only where it is native and faster.

bf16 autocast pays only where the hardware computes it: on CPUs with AMX (``amx_bf16``) or
AVX-512-BF16 (``avx512_bf16``), and on GPUs with bf16 tensor cores. Elsewhere torch emulates it,
and training ran 10x slower than float32 on an AVX2-only AMD EPYC (55 against 553 alerts/s,
``benchmarks/bench_train.py speed``). So ``auto`` (the default) means:

1. float32 on a CPU without those flags (or a GPU without bf16 support);
2. otherwise a short measurement on the run's own model and batch size -- a few optimisation steps
   of a throw-away copy in each precision, on random inputs, in interleaved rounds, each
   precision's best round counting -- and bf16 only when it was at least :data:`MIN_SPEEDUP`
   times faster.

The measurement is only as good as the machine is quiet. Interleaved best-of rounds absorb a
passing load; a sustained one (another training run on the same cores) can reverse the choice: on
an Intel Xeon with AMX, measured beside another bf16 run, ``auto`` read fp32 49 against bf16 27
alerts/s and chose fp32, where alone it reads 153 against 563. When the load average exceeds the
CPUs, the log says so: pass ``--precision`` to decide for a machine that will be quiet.

The resolved precision is recorded in the checkpoint and the model's provenance, and a resumed run
keeps it, so a run never mixes precisions. Asking for ``bf16`` where it is not native trains in
bf16 as asked, with a :class:`EmulatedPrecisionWarning`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from brightscan.errors import BrightscanWarning
from brightscan.score.precision import cpu_flags, native_precisions

__all__ = ["EmulatedPrecisionWarning", "MIN_SPEEDUP", "measure_precisions", "native_bf16", "resolve_precision"]

log = logging.getLogger(__name__)

#: bf16 must be at least this much faster than float32 for ``auto`` to choose it.
MIN_SPEEDUP = 1.1


class EmulatedPrecisionWarning(BrightscanWarning):
    """bf16 training was asked for on hardware that emulates bf16 (much slower than float32)."""


def native_bf16(device: torch.device, flags: Iterable[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 natively (CPU flags, or CUDA's bf16 support)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if flags is None:
        flags = cpu_flags()[0]
    return "bfloat16" in native_precisions(flags)


def measure_precisions(model: nn.Module, batch_size: int, device: torch.device, *, steps: int = 6,
                       rounds: int = 3, seed: int = 0) -> dict[str, float]:
    """Training alerts/s of a copy of ``model`` in fp32 and bf16 (random inputs; one warm-up step
    each): ``rounds`` rounds of ``steps`` steps, the precisions taking turns, each one's best round.

    ``model`` itself, its optimizer and the global RNG are untouched.
    """
    from brightscan.train.loop import train_epoch

    rng = np.random.default_rng(seed)
    config = model.config
    batch = (rng.normal(size=(batch_size, config.image_size, config.image_size, config.image_channels))
             .astype(np.float32), rng.normal(size=(batch_size, config.n_features)).astype(np.float32),
             (np.arange(batch_size) % 2).astype(np.float32))
    precisions = ("fp32", "bf16")
    measured: dict[str, list[float]] = {p: [] for p in precisions}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        probes = {p: copy.deepcopy(model) for p in precisions}
        optimizers = {p: torch.optim.Adam(probes[p].parameters(), lr=1e-6) for p in precisions}

        def run(precision: str, n: int) -> None:
            train_epoch(probes[precision], [batch] * n, optimizers[precision], class_weights=(1.0, 1.0),
                        device=device, augment=None, precision=precision)

        for precision in precisions:
            run(precision, 1)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(rounds):
            for precision in precisions:
                start = time.perf_counter()
                run(precision, steps)
                measured[precision].append(steps * batch_size / (time.perf_counter() - start))
    log.debug("precision rounds (alerts/s): %s", {p: [round(r, 1) for r in v] for p, v in measured.items()})
    return {p: max(v) for p, v in measured.items()}


def resolve_precision(requested: str, model: nn.Module, batch_size: int, device: torch.device, *,
                      flags: Iterable[str] | None = None, load: float | None = None) -> tuple[str, dict[str, float]]:
    """The precision a run trains in, and the rates measured to choose it (empty when none were).

    Parameters
    ----------
    requested : {"auto", "fp32", "bf16"}
        What the configuration asks for.
    model : nn.Module
        The run's model (only copies of it are trained here).
    batch_size : int
        The recipe's batch size (speed depends on it).
    device : torch.device
        Where the run trains.
    flags : iterable of str, optional
        CPU flags (default: this CPU's, from ``/proc/cpuinfo``).
    load : float, optional
        The machine's load while measuring (default: the 1-minute load average); above the CPU
        count the log warns that the choice may not hold on a quiet machine.
    """
    native = native_bf16(device, flags)
    if requested == "bf16" and not native:
        warnings.warn(f"bf16 training asked for on {device.type}, which has no native bf16 "
                      "(no amx_bf16/avx512_bf16 flag): it is emulated and can be several times "
                      "slower than fp32; use --precision auto or fp32", EmulatedPrecisionWarning, stacklevel=2)
    if requested != "auto":
        return requested, {}
    if not native:
        return "fp32", {}
    rates = measure_precisions(model, batch_size, device)
    chosen = "bf16" if rates["bf16"] >= MIN_SPEEDUP * rates["fp32"] else "fp32"
    log.info("precision auto: fp32 %.0f, bf16 %.0f alerts/s -> %s", rates["fp32"], rates["bf16"], chosen)
    if device.type == "cpu":
        if load is None and hasattr(os, "getloadavg"):
            load = os.getloadavg()[0]
        cpus = os.cpu_count() or 1
        if load is not None and load > cpus:
            log.warning("precision auto measured on a loaded machine (load average %.1f on %d CPUs): %s may "
                        "not be the faster once it is quiet; --precision fp32 or bf16 decides", load, cpus, chosen)
    return chosen, rates
