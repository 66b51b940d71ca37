"""``brightscan dataset build --cluster``: the same dataset as :func:`brightscan.dataset.build_dataset`,
with the expensive work — decoding cutouts, computing features — done per partition on workers.

1. Each partition's history is collected by a task (``History.collect``, small), merged by the
   client in input order, and the splits and N_max thinning are planned exactly as in one
   process (:mod:`brightscan.dataset.build`). The plan is written to ``OUT/_plan-<digest>.pkl``; workers
   read it once each (the job's ``setup``).
2. Each partition's alerts are routed (unlabelled, duplicate and thinned ones are counted and left
   out), prepared by the one pipeline with the full history, and written, with label, class and
   split, to ``OUT/partitions/night=.../<name>.parquet`` (the triplet in a fixed-size column).
3. The client streams the partitions, in input order, into the usual layout
   (``OUT/<split>/triplets.npy`` + ``alerts.parquet``, ``OUT/rejected.parquet``,
   ``OUT/dataset.json``). An alert found in several partitions is kept in the first (the plan
   says which), as one process keeps its first copy.

Steps 1-2 resume like any partitioned run; step 3 is redone from the partitions each time.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brightscan.alerts import read_alerts
from brightscan.dataset.build import (
    BuildConfig, Router, SplitWriters, dataset_card, plan_split, read_labels, table_schema,
)
from brightscan.dataset.card import write_card
from brightscan.dataset.split import SPLITS
from brightscan.distributed.jobs import Counts, Job, read_triplets, triplet_length, write_chunks
from brightscan.distributed.partitions import Partition, RunLayout, plan_partitions
from brightscan.distributed.runner import map_partitions, run_partitioned
from brightscan.errors import InputError
from brightscan.preprocess.history import History
from brightscan.preprocess.pipeline import Pipeline
from brightscan.storage import REJECTION_SCHEMA, ParquetRowWriter

__all__ = ["DatasetJob", "build_dataset_partitioned", "collect_history"]


def collect_history(partition: Partition) -> History:
    """The history of a partition's alerts (:meth:`History.collect` over its files; a task)."""
    return History.collect(partition.paths)


@dataclass
class DatasetJob(Job):
    """Route, prepare and label a partition's alerts for a dataset (step 2 of the module)."""

    plan_path: str  # OUT/_plan-<digest>.pkl, readable by every worker
    config: BuildConfig = field(default_factory=BuildConfig)
    plan: Any = field(default=None, repr=False, compare=False)  # loaded by setup, never pickled

    data = "partitions"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "plan": None}

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        base = table_schema(self.config.feature_set)
        return (base.append(pa.field("split", pa.string())).append(pa.field("source", pa.string()))
                .append(pa.field("triplet", pa.list_(pa.float32(), triplet_length(self.config.feature_set)))))

    def setup(self, model_threads: int | None) -> None:
        if self.plan is None:
            with open(self.plan_path, "rb") as fh:
                self.plan = pickle.load(fh)

    def run_card(self) -> dict[str, Any]:
        from brightscan.preprocess import PREPROCESSING_VERSION

        return {"command": "dataset build", "plan": Path(self.plan_path).stem, "preprocessing_version": PREPROCESSING_VERSION,
                "feature_set": self.config.feature_set, "overflow": self.config.overflow}

    def _write(self, partition: Partition, data: Any, rejected: Any, counts: Counts) -> None:
        self.setup(None)
        plan = self.plan
        pipeline = Pipeline(self.config.feature_set, overflow=self.config.overflow,
                            history=History(plan["history"]), chunk_size=256)

        def extra(rows: list[dict[str, Any]]) -> dict[str, Any]:
            return {"label": [plan["labels"][r["objectId"]] for r in rows],
                    "class": [plan["classes"][r["objectId"]] for r in rows],
                    "split": [plan["assignment"][r["objectId"]] for r in rows]}

        router = Router(plan["assignment"], plan["train_keep"], owners=plan["shared"], here=partition.name)
        write_chunks(pipeline, router.routed(read_alerts(partition.paths)), self.schema, data, rejected, counts, extra)
        counts.skipped.update(router.skipped)


def build_dataset_partitioned(inputs: list[Any], labels_csv: str | Path, out_dir: str | Path,
                              config: BuildConfig = BuildConfig(), *, client: Any = None,
                              resume: bool = False, on_start: Any = None, on_done: Any = None) -> dict[str, Any]:
    """Build a dataset directory as :func:`brightscan.dataset.build_dataset` does, partition by
    partition (in this process when ``client`` is None); returns the dataset card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, classes = read_labels(labels_csv)
    partitions = plan_partitions(inputs)
    parts = map_partitions(collect_history, partitions, client)
    history = History.merged(parts)
    if not history:
        raise InputError(f"no alert could be read from {len(inputs)} input(s)")
    shared = _shared_alerts(partitions, parts)
    assignment, train_keep = plan_split(history, labels, classes, config)
    plan_path = _write_plan(out, history, assignment, train_keep, labels, classes, shared, partitions)
    job = DatasetJob(str(plan_path), config)
    summary = run_partitioned(job, inputs, out, client=client, resume=resume, on_start=on_start, on_done=on_done)
    counts, skipped = _consolidate(out, partitions, config.feature_set)
    card = dataset_card([str(p) for p in inputs], config, assignment, counts, skipped, labels)
    write_card(out, card)
    card["run"] = summary
    return card


def _shared_alerts(partitions: list[Partition], parts: list[History]) -> dict[int, str]:
    """``candid -> the partition that reads it first``, for the alerts found in several partitions
    (one process keeps an alert's first copy; so does the cluster)."""
    first: dict[int, str] = {}
    shared: dict[int, str] = {}
    for partition, part in zip(partitions, parts):
        for object_id in part.objects():
            for row in part.records(object_id):
                owner = first.setdefault(row["candid"], partition.name)
                if owner != partition.name:
                    shared[row["candid"]] = owner
    return shared


def _write_plan(out: Path, history: History, assignment: dict, train_keep: set, labels: dict,
                classes: dict, shared: dict, partitions: list[Partition]) -> Path:
    """``OUT/_plan-<digest>.pkl``: named by what it decides, so another plan never overwrites it."""
    import hashlib

    plan = {"history": {o: list(history.records(o)) for o in history.objects()}, "assignment": assignment,
            "train_keep": train_keep, "labels": {o: labels[o] for o in assignment},
            "classes": {o: classes[o] for o in assignment}, "shared": shared}
    digest = hashlib.sha1(repr((sorted(assignment.items()), sorted(train_keep), sorted(plan["labels"].items()),
                                sorted(plan["classes"].items()), [p.fingerprint for p in partitions])
                               ).encode()).hexdigest()[:16]
    path = out / f"_plan-{digest}.pkl"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


def _consolidate(out: Path, partitions: list[Partition], feature_set: str) -> tuple[dict, Counter]:
    """Stream the partitions, in input order, into OUT/<split>/ and OUT/rejected.parquet."""
    layout = RunLayout(out, "partitions")
    skipped: Counter = Counter()
    with SplitWriters(out, feature_set) as writers, \
            ParquetRowWriter(out / "rejected.parquet", REJECTION_SCHEMA) as rejected:
        for partition in partitions:
            skipped.update(layout.finished(partition)["skipped"])
            rejections = pq.read_table(layout.rejected(partition))
            rejected.write_table(rejections)
            skipped.update(f"rejected:{s}" for s in rejections.column("stage").to_pylist())
            source = pq.ParquetFile(layout.output(partition))
            for group in range(source.num_row_groups):
                _route_group(source.read_row_group(group), writers)
    return writers.counts, skipped


def _route_group(table: pa.Table, writers: SplitWriters) -> None:
    splits = table.column("split").to_pylist()
    for split in SPLITS:
        rows = [i for i, s in enumerate(splits) if s == split]
        if rows:
            part = table.take(rows)
            writers.write_table(split, read_triplets(part), part)
