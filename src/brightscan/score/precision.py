"""Which precision to score in on this CPU: read from its flags, and from a measured record.

Reduced precision pays only on CPUs that run it natively: bf16 on AMX (``amx_bf16``) or
AVX-512-BF16 (``avx512_bf16``), int8 on VNNI (``avx512_vnni``, ``avx_vnni``) or AMX-INT8
(``amx_int8``). Elsewhere it is emulated and slower than float32 (bf16 ran 3x slower than fp32
on an AVX-512 Xeon without them). So ``precision="auto"`` picks a reduced precision only when

1. this CPU has the flags for it, and
2. the model directory's ``precision.json`` holds a record *measured on this kind of CPU* (same
   model name and flags) by ``brightscan model judge-precision``, in which it was faster than
   float32 and changed **no** object-level decision (gt1, bts_prod, decision time) against
   float32, on a simulated test split and on real alerts.

Otherwise it is float32: nothing is ever chosen that was not measured faster and harmless here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["RECORD_NAME", "REDUCED_FLAGS", "choose_precision", "cpu_flags", "cpu_signature", "native_precisions"]

log = logging.getLogger(__name__)

RECORD_NAME = "precision.json"
#: CPU flags under which a reduced precision runs natively.
REDUCED_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16"), "int8": ("amx_int8", "avx512_vnni", "avx_vnni")}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[set[str], str]:
    """The flags and model name of this CPU (from ``/proc/cpuinfo``; empty off Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set(), "unknown"
    flags: set[str] = set()
    model = "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and model == "unknown":
            model = value.strip()
    return flags, model


def native_precisions(flags: Iterable[str]) -> list[str]:
    """The reduced precisions this CPU runs natively, by its flags."""
    flags = set(flags)
    return [p for p, needed in REDUCED_FLAGS.items() if flags & set(needed)]


def cpu_signature(flags: Iterable[str], model: str) -> str:
    """What makes two CPUs alike for these measurements: the model name and the relevant flags."""
    relevant = sorted(set(flags) & {f for needed in REDUCED_FLAGS.values() for f in needed})
    return f"{model} [{' '.join(relevant) or 'no bf16/int8 flags'}]"


def read_record(model_dir: str | Path) -> dict[str, Any]:
    """``MODEL/precision.json`` (CPU signature -> measurements), empty when absent."""
    path = Path(model_dir) / RECORD_NAME
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def choose_precision(model_dir: str | Path, *, flags: Iterable[str] | None = None, model: str | None = None,
                     available: Iterable[str] = ("bfloat16", "int8")) -> str:
    """The precision ``auto`` means for this model on this CPU (see the module docstring).

    Parameters
    ----------
    model_dir : path
        The model directory (its ``precision.json``; ``model.int8.onnx`` for int8).
    flags, model : optional
        The CPU's flags and model name; default: this machine's.
    available : iterable of str
        Reduced precisions the caller can run.
    """
    if flags is None or model is None:
        flags, model = cpu_flags()
    entry = read_record(model_dir).get(cpu_signature(flags, model), {})
    best, best_speed = "float32", 1.0
    for precision in native_precisions(flags):
        measured = entry.get("precisions", {}).get(precision)
        if precision not in available or not measured:
            continue
        if precision == "int8" and not (Path(model_dir) / "model.int8.onnx").is_file():
            continue
        harmless = all(n == 0 for n in measured.get("decisions_differ", {"?": None}).values())
        speedup = measured.get("speedup", 0.0)
        if harmless and speedup > best_speed:
            best, best_speed = precision, speedup
    log.info("precision auto -> %s on %s", best, model)
    return best
