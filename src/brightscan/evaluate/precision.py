"""Judge reduced precisions by the decisions they change, and by their speed on this CPU.

For each reduced precision (bf16 through torch, int8 through ONNX Runtime, calibrated on training
alerts), score a simulated test split and real alerts, replay every object through the decision
core (:func:`brightscan.evaluate.objects.apply_policy`) for ``gt1`` and ``bts_prod`` at their
thresholds, and count the objects whose decision — passed or not, and when — differs from float32.
The count stands next to the score deviation and the measured speed-up in ``MODEL/precision.json``,
under this CPU's signature; ``precision="auto"`` reads it (:mod:`brightscan.score.precision`).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brightscan.evaluate.objects import apply_policy, build_objects
from brightscan.policy import create_policy
from brightscan.score import Scorer
from brightscan.score.precision import RECORD_NAME, cpu_flags, cpu_signature, read_record

__all__ = ["EvalSet", "count_decision_changes", "judge_precisions", "load_real", "load_split"]

#: The policies whose decisions a reduced precision must not change.
POLICIES = ("gt1", "bts_prod")


@dataclass
class EvalSet:
    """Alerts to judge on: a table (objectId, jd, magpsf, candid, features...), triplets and the
    model's feature matrix."""

    name: str  # "sim" or "real"
    table: pd.DataFrame
    triplets: np.ndarray  # (n, 63, 63, 3) float32
    features: np.ndarray  # (n, F) float32, in the model's order


def load_split(dataset_dir: str | Path, split: str, feature_order: Sequence[str], name: str = "sim",
               limit: int | None = None) -> EvalSet:
    """A dataset split (e.g. the simulated test split) as an :class:`EvalSet`; with ``limit``, at
    most that many alerts spread evenly over the split (calibration sets)."""
    from brightscan.dataset import open_split

    data = open_split(dataset_dir, split, list(feature_order))
    triplets = np.load(Path(dataset_dir) / split / "triplets.npy", mmap_mode="r")
    rows = np.arange(len(triplets))
    if limit is not None and len(rows) > limit:
        rows = np.linspace(0, len(rows) - 1, limit).astype(int)
    return EvalSet(name, data.table.iloc[rows].reset_index(drop=True), np.asarray(triplets[rows], np.float32),
                   data.features[rows])


def load_real(inputs: Sequence[str | Path], feature_order: Sequence[str]) -> EvalSet:
    """Real alert files, prepared by the one pipeline (v1 features, which hold every feature)."""
    from brightscan.alerts import read_alerts
    from brightscan.preprocess.pipeline import Pipeline, table_row

    pipeline = Pipeline("v1")
    chunk = pipeline.prepare(read_alerts(list(inputs)))
    table = pd.DataFrame([table_row(r, pipeline.names, f) for r, f in zip(chunk.rows, chunk.features)])
    features = table[list(feature_order)].to_numpy(np.float32)
    return EvalSet("real", table, chunk.triplet_array(), features)


def _decisions(table: pd.DataFrame, scores: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    labelled = table if "label" in table else table.assign(label=0)
    sources = build_objects(labelled, scores)
    ids = [s.object_id for s in sources]
    return {name: (*apply_policy(create_policy(name), sources), ids) for name in POLICIES}


def count_decision_changes(table: pd.DataFrame, reference: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Objects whose gt1 or bts_prod decision (passed, and the jd it passed at) differs between
    two score vectors over the same alerts: per policy and in all."""
    ref, new = _decisions(table, reference), _decisions(table, scores)
    changed: set[str] = set()
    by_policy = {}
    for name in POLICIES:
        p0, t0, ids = ref[name]
        p1, t1, _ = new[name]
        differ = (p0 != p1) | (p0 & p1 & ~np.isclose(t0, t1, rtol=0, atol=1e-9))
        by_policy[name] = int(differ.sum())
        changed.update(np.asarray(ids, dtype=object)[differ].tolist())
    return {"objects": len(ref[POLICIES[0]][2]), "changed": len(changed), "by_policy": by_policy}


def _rate(scorer: Scorer, data: EvalSet, repeats: int) -> float:
    """Alerts per second, best of ``repeats`` passes (the least disturbed by other load)."""
    scorer.score_arrays(data.triplets[:64], data.features[:64])  # warm-up: kernels, caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        scorer.score_arrays(data.triplets, data.features)
        best = min(best, time.perf_counter() - t0)
    return len(data.triplets) / best


def judge_precisions(model_dir: str | Path, sets: Sequence[EvalSet], *, calibration: EvalSet | None = None,
                     precisions: Sequence[str] = ("bfloat16", "int8"), threads: int = 1, batch_size: int = 32,
                     repeats: int = 3, write: bool = True) -> dict[str, Any]:
    """Measure each reduced precision against float32 on this CPU; add the entry to precision.json.

    Parameters
    ----------
    model_dir : path
        The model directory (``model.int8.onnx`` is written there when int8 is judged).
    sets : sequence of EvalSet
        What decisions are counted on (the simulated test split and the real alerts); the first
        one is also timed.
    calibration : EvalSet, optional
        Training alerts for int8 calibration (required when judging int8).
    threads, batch_size, repeats :
        How the speed is measured (one thread: the per-core figure a worker sees).

    Returns
    -------
    dict
        This CPU's entry: float32's rate; per precision its rate, speed-up, score deviation
        (max, mean) and decision changes per set.
    """
    from brightscan.model.quantize import quantize_int8

    if "int8" in precisions:
        if calibration is None:
            raise ValueError("judging int8 needs calibration alerts (a training split)")
        quantize_int8(model_dir, calibration.triplets, calibration.features, description=calibration.name)
    flags, cpu = cpu_flags()

    def scorer(precision: str) -> Scorer:
        return Scorer(model_dir, precision=precision, num_threads=threads, batch_size=batch_size, device="cpu")

    reference = scorer("float32")
    base = {s.name: reference.score_arrays(s.triplets, s.features) for s in sets}
    entry: dict[str, Any] = {
        "cpu": cpu, "flags": sorted(flags & {"amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni"}),
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "threads": threads,
        "batch_size": batch_size, "timed_on": f"{sets[0].name} ({len(sets[0].triplets)} alerts)",
        "float32": {"alerts_per_s": round(_rate(reference, sets[0], repeats), 1)}, "precisions": {},
    }
    for precision in precisions:
        candidate = scorer(precision)
        result: dict[str, Any] = {"decisions_differ": {}, "by_policy": {}, "score_dev_max": {}, "score_dev_mean": {}}
        for data in sets:
            scores = candidate.score_arrays(data.triplets, data.features)
            dev = np.abs(scores - base[data.name])
            result["score_dev_max"][data.name] = float(dev.max())
            result["score_dev_mean"][data.name] = float(dev.mean())
            changes = count_decision_changes(data.table, base[data.name], scores)
            result["decisions_differ"][data.name] = changes["changed"]
            result["by_policy"][data.name] = {**changes["by_policy"], "objects": changes["objects"]}
        result["alerts_per_s"] = round(_rate(candidate, sets[0], repeats), 1)
        result["speedup"] = round(result["alerts_per_s"] / entry["float32"]["alerts_per_s"], 3)
        entry["precisions"][precision] = result
    if write:
        record = read_record(model_dir)
        record[cpu_signature(flags, cpu)] = entry
        (Path(model_dir) / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return entry
