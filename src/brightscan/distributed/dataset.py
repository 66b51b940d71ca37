"""``brightscan dataset build --cluster``: the same dataset as :func:`brightscan.dataset.build_dataset`,
with the expensive work — decoding cutouts, computing features — done per partition on workers.

1. Each partition's detection records are collected by a task (the causal history, small), merged
   by the client in input order, and the splits and N_max thinning are planned exactly as in one
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

from brightscan.alerts import Alert, read_alerts
from brightscan.dataset.build import BuildConfig, dataset_card, plan_split, read_labels, table_schema
from brightscan.dataset.card import write_card
from brightscan.dataset.split import SPLITS
from brightscan.distributed.jobs import TRIPLET_LENGTH, _Counts, _Job, read_triplets, write_chunks
from brightscan.distributed.partitions import Partition, RunLayout, plan_partitions
from brightscan.distributed.runner import map_partitions, run_partitioned
from brightscan.errors import InputError
from brightscan.preprocess import STAMP_SIZE
from brightscan.preprocess.history import History, detection_record
from brightscan.preprocess.pipeline import Pipeline
from brightscan.storage import REJECTION_SCHEMA, NpyAppender

__all__ = ["DatasetJob", "build_dataset_partitioned", "collect_records"]


def collect_records(partition: Partition) -> dict[str, list[dict[str, Any]]]:
    """The detection records of a partition's alerts, by object, in reading order (a task)."""
    records: dict[str, list[dict[str, Any]]] = {}
    for item in read_alerts(partition.paths):
        if isinstance(item, Alert):
            records.setdefault(item.object_id, []).append(detection_record(item))
    return records


@dataclass
class DatasetJob(_Job):
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
                .append(pa.field("triplet", pa.list_(pa.float32(), TRIPLET_LENGTH))))

    def setup(self, model_threads: int | None) -> None:
        if self.plan is None:
            with open(self.plan_path, "rb") as fh:
                self.plan = pickle.load(fh)

    def run_card(self) -> dict[str, Any]:
        from brightscan.preprocess import PREPROCESSING_VERSION

        return {"command": "dataset build", "plan": Path(self.plan_path).stem, "preprocessing_version": PREPROCESSING_VERSION,
                "feature_set": self.config.feature_set, "overflow": self.config.overflow}

    def _write(self, partition: Partition, data: Any, rejected: Any, counts: _Counts) -> None:
        self.setup(None)
        plan = self.plan
        pipeline = Pipeline(self.config.feature_set, overflow=self.config.overflow,
                            history=History(plan["history"]), chunk_size=256)

        def extra(rows: list[dict[str, Any]]) -> dict[str, Any]:
            return {"label": [plan["labels"][r["objectId"]] for r in rows],
                    "class": [plan["classes"][r["objectId"]] for r in rows],
                    "split": [plan["assignment"][r["objectId"]] for r in rows]}

        write_chunks(pipeline, self._routed(read_alerts(partition.paths), partition.name, counts), self.schema,
                     data, rejected, counts, extra)

    def _routed(self, items: Any, name: str, counts: _Counts) -> Any:
        """Rejections, and the alerts that go to a split; the others are counted as in one process
        (an alert is a duplicate after its first copy, in this partition or an earlier one)."""
        plan, seen = self.plan, set()
        for item in items:
            if isinstance(item, Alert):
                split = plan["assignment"].get(item.object_id)
                reason = None
                if split is None:
                    reason = "unlabelled"
                elif item.candid in seen or plan["shared"].get(item.candid, name) != name:
                    reason = "duplicate"
                else:
                    seen.add(item.candid)
                    if split == "train" and item.candid not in plan["train_keep"]:
                        reason = "thinned"
                if reason is not None:
                    counts.skipped[reason] += 1
                    continue
            yield item


def build_dataset_partitioned(inputs: list[Any], labels_csv: str | Path, out_dir: str | Path,
                              config: BuildConfig = BuildConfig(), *, client: Any = None,
                              resume: bool = False, on_start: Any = None, on_done: Any = None) -> dict[str, Any]:
    """Build a dataset directory as :func:`brightscan.dataset.build_dataset` does, partition by
    partition (in this process when ``client`` is None); returns the dataset card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, classes = read_labels(labels_csv)
    partitions = plan_partitions(inputs)
    merged: dict[str, list[dict[str, Any]]] = {}
    first: dict[int, str] = {}  # candid -> the partition that reads it first
    shared: dict[int, str] = {}  # the same, for alerts found in more than one partition
    for partition, records in zip(partitions, map_partitions(collect_records, partitions, client)):
        for object_id, rows in records.items():
            merged.setdefault(object_id, []).extend(rows)
            for row in rows:
                owner = first.setdefault(row["candid"], partition.name)
                if owner != partition.name:
                    shared[row["candid"]] = owner
    history = History(merged)
    if not history:
        raise InputError(f"no alert could be read from {len(inputs)} input(s)")
    assignment, train_keep = plan_split(history, labels, classes, config)
    plan_path = _write_plan(out, history, assignment, train_keep, labels, classes, shared, partitions)
    job = DatasetJob(str(plan_path), config)
    summary = run_partitioned(job, inputs, out, client=client, resume=resume, on_start=on_start, on_done=on_done)
    counts, skipped = _consolidate(out, partitions, config.feature_set)
    card = dataset_card([str(p) for p in inputs], config, assignment, counts, skipped, labels)
    write_card(out, card)
    card["run"] = summary
    return card


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
    schema = table_schema(feature_set)
    counts = {s: Counter() for s in SPLITS}
    skipped: Counter = Counter()
    writers = {}
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        writers[split] = (NpyAppender(out / split / "triplets.npy", (STAMP_SIZE, STAMP_SIZE, 3)),
                          pq.ParquetWriter(out / split / "alerts.parquet", schema))
    rejected = pq.ParquetWriter(out / "rejected.parquet", REJECTION_SCHEMA)
    try:
        for partition in partitions:
            skipped.update(layout.finished(partition)["skipped"])
            rejections = pq.read_table(layout.rejected(partition))
            rejected.write_table(rejections)
            skipped.update(f"rejected:{s}" for s in rejections.column("stage").to_pylist())
            source = pq.ParquetFile(layout.output(partition))
            for group in range(source.num_row_groups):
                _route_group(source.read_row_group(group), writers, schema, counts)
    finally:
        for npy, table in writers.values():
            npy.close()
            table.close()
        rejected.close()
    return counts, skipped


def _route_group(table: pa.Table, writers: dict, schema: pa.Schema, counts: dict) -> None:
    splits = table.column("split").to_pylist()
    for split in SPLITS:
        rows = [i for i, s in enumerate(splits) if s == split]
        if not rows:
            continue
        part = table.take(rows)
        npy, writer = writers[split]
        npy.append(read_triplets(part))
        writer.write_table(part.select(schema.names).cast(schema))
        counts[split].update(part.column("label").to_pylist())
