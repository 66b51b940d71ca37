"""What a worker does with one partition: read its files, prepare (and score) its alerts, write
its outputs atomically, and return its manifest row.

A *job* holds the settings of a run and, once :meth:`setup` has run in a worker, the heavy objects
(the model): :class:`JobPlugin` runs ``setup`` once per worker when the client registers it, so the
model is loaded once per worker and never pickled into a task. A task is
:func:`run_partition` ``(partition, root)``: a partition's paths in, a small manifest row out.
Workers read and write the data themselves; the client only plans and collects.

The same job runs in-process (``job.setup(threads)``, then ``job(partition, layout)``), which is
how the cluster's overhead is measured against a plain loop.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from brightscan.alerts import DEFAULT_LIMITS, ReadLimits, read_alerts
from brightscan.errors import ConfigError
from brightscan.distributed.partitions import Partition, RunLayout, atomic_parquet, write_json_atomic
from brightscan.preprocess.pipeline import IDENTITY_COLUMNS, Pipeline
from brightscan.storage import REJECTION_SCHEMA

__all__ = ["PLUGIN_NAME", "PreprocessJob", "ScoreJob", "read_triplets", "triplet_length"]

log = logging.getLogger(__name__)

#: Name under which the job's plugin is registered on every worker.
PLUGIN_NAME = "brightscan-job"


def triplet_length(feature_set: str) -> int:
    """Length of the flattened triplet column for a feature set's survey: 63 * 63 * 3 for ZTF,
    48 * 48 * 3 for Rubin (:func:`brightscan.preprocess.surveys.input_size`)."""
    from brightscan.preprocess.surveys import input_size

    side = input_size(feature_set)
    return side * side * 3


def _rejection_table(rejections: list[Any]) -> pa.Table:
    return pa.Table.from_pylist([r.as_row() for r in rejections], schema=REJECTION_SCHEMA)


@dataclass
class Counts:
    """What a job did with one partition (its manifest row's counts)."""

    rows: int = 0
    rejections: int = 0
    skipped: Counter = field(default_factory=Counter)  # alerts left out on purpose, by reason


class Job:
    """What every job shares: the partition's bookkeeping around :meth:`_write` (subclasses)."""

    data = "alerts"  # folder of the data files
    schema: pa.Schema

    def setup(self, model_threads: int | None) -> None:
        """Build the heavy objects (once per worker)."""

    def check_partitioned(self) -> None:
        """Raise :class:`~brightscan.errors.ConfigError` when a setting cannot run per partition."""

    def run_card(self) -> dict[str, Any]:
        """What the run computes; a rerun into the same folder must compute the same."""
        raise NotImplementedError

    def stamp(self) -> dict[str, Any]:
        """What the worker resolved for itself (e.g. the precision ``auto`` chose on its CPU)."""
        return {}

    def __call__(self, partition: Partition, layout: RunLayout) -> dict[str, Any]:
        """Process one partition; its outputs are in place when this returns its manifest row."""
        t0 = time.perf_counter()
        counts = Counts()
        with atomic_parquet(layout.output(partition), self.schema) as data, \
                atomic_parquet(layout.rejected(partition), REJECTION_SCHEMA) as rejected:
            self._write(partition, data, rejected, counts)
        row = {
            **partition.as_dict(), "rows": counts.rows, "rejections": counts.rejections,
            "output": str(layout.output(partition).relative_to(layout.root)),
            "rejected": str(layout.rejected(partition).relative_to(layout.root)),
            "seconds": round(time.perf_counter() - t0, 3), "host": socket.gethostname(), "pid": os.getpid(),
            "skipped": dict(sorted(counts.skipped.items())), **self.stamp(),
        }
        write_json_atomic(row, layout.manifest_entry(partition))
        return row

    def _write(self, partition: Partition, data: Any, rejected: Any, counts: Counts) -> None:
        raise NotImplementedError


@dataclass
class ScoreJob(Job):
    """Score alerts with a model: every option of ``brightscan score``, built once from the command
    line. In-process, :meth:`score` runs it over all inputs; ``--cluster`` runs it per partition
    (:meth:`__call__`), so an option cannot reach one engine and miss the other."""

    model_dir: str  # model directory, readable by every worker
    backend: str | None = None  # torch or onnx (None: the precision's)
    precision: str = "auto"  # see brightscan.score.Scorer (auto: chosen on each worker's CPU)
    batch_size: int = 32  # alerts per model call (and per chunk written)
    device: str | None = None  # torch device; default cpu (cuda when asked)
    overflow: str = "reject"  # cutouts with overflow sentinels: reject or production
    threads: int | None = None  # model threads (None: the engine's budget, or the runtime's choice)
    causal: bool = False  # merge each object's earlier alerts in the input (in-process only)
    limits: ReadLimits = DEFAULT_LIMITS  # bounds on decompressed sizes and claimed counts
    scorer: Any = field(default=None, repr=False, compare=False)  # built by setup, never pickled
    _threads: int | None = field(default=None, init=False, repr=False, compare=False)  # as set up

    data = "scores"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "scorer": None, "_threads": None}  # the model travels as a path

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        from brightscan.score.results import ScoreResults

        return ScoreResults("", "").to_arrow().schema

    def check_partitioned(self) -> None:
        if self.causal:
            raise ConfigError("--causal needs every file's alerts at once; it is not available with --cluster "
                              "(each partition is scored with its packets' own history)")

    def setup(self, model_threads: int | None, device: str | None = "cpu") -> None:
        """Load the model once: with ``threads`` (else ``model_threads``) native threads, on
        ``device`` unless the job names one (workers default to the CPU; in-process, None lets
        the scorer choose cuda when present)."""
        from brightscan.score import Scorer

        if self.scorer is None:
            self._threads = self.threads or model_threads
            self.scorer = Scorer(self.model_dir, backend=self.backend, precision=self.precision,
                                 batch_size=self.batch_size, num_threads=self._threads,
                                 device=self.device or device, overflow=self.overflow,
                                 limits=self.limits)

    def run_card(self) -> dict[str, Any]:
        from brightscan.model.io import read_card

        card = read_card(self.model_dir)
        return {"command": "score", "model_id": card["model_id"], "model_version": card["model_version"],
                "weights_sha256": card["weights"].get("sha256"),
                "precision": self.precision, "backend": self.backend, "overflow": self.overflow,
                "causal": self.causal, "read_limits": asdict(self.limits)}

    def stamp(self) -> dict[str, Any]:
        if self.scorer is None:
            return {}
        threads = self._threads
        if self.scorer.backend == "torch":
            import torch

            threads = torch.get_num_threads()
        return {"precision": self.scorer.precision, "backend": self.scorer.backend,
                "batch_size": self.scorer.batch_size, "threads": threads}

    def score(self, items: Any, inputs: Any) -> Any:
        """Score ``items`` (read from ``inputs``) in this process; the history is collected from
        ``inputs`` first when the job is causal. Returns the ``ScoreResults``."""
        from brightscan.preprocess.history import History

        self.setup(None, device=None)
        earlier = History.collect(inputs, self.limits) if self.causal else None
        return self.scorer.score_alerts(items, earlier=earlier)

    def _write(self, partition: Partition, data: Any, rejected: Any, counts: Counts) -> None:
        from brightscan.score.results import ScoreResults

        self.setup(None)
        scorer = self.scorer
        for rows, scores, rejections in scorer.iter_scored(read_alerts(partition.paths, limits=self.limits), overlap=False):
            part = ScoreResults(scorer.model_id, scorer.model_version)
            part.extend(rows, scores, rejections)
            if rows:
                data.write_table(part.to_arrow())
            if rejections:
                rejected.write_table(_rejection_table(rejections))
            counts.rows += len(rows)
            counts.rejections += len(rejections)


@dataclass
class PreprocessJob(Job):
    """Prepare alerts (every option of ``brightscan preprocess``, built once from the command line):
    in-process, :meth:`to_dir` writes ``triplets.npy`` + ``alerts.parquet``; per partition
    (``--cluster``), identity, file, features, and the triplet flattened into one fixed-size
    float32 list per row."""

    feature_set: str = "v1"  # v1 (25) or icml2023 (14)
    overflow: str = "reject"  # cutouts with overflow sentinels: reject or production
    chunk_size: int = 256  # alerts per chunk (and per row group)
    causal: bool = False  # merge each object's earlier alerts in the input (in-process only)
    limits: ReadLimits = DEFAULT_LIMITS  # bounds on decompressed sizes and claimed counts

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        from brightscan.preprocess.batch import alerts_schema

        return alerts_schema(self.feature_set).append(
            pa.field("triplet", pa.list_(pa.float32(), triplet_length(self.feature_set))))

    def check_partitioned(self) -> None:
        if self.causal:
            raise ConfigError("--causal is not available with --cluster (each partition uses its "
                              "packets' own history)")

    def run_card(self) -> dict[str, Any]:
        from brightscan.preprocess import PREPROCESSING_VERSION

        return {"command": "preprocess", "feature_set": self.feature_set, "overflow": self.overflow,
                "causal": self.causal, "read_limits": asdict(self.limits),
                "preprocessing_version": PREPROCESSING_VERSION}

    def to_dir(self, inputs: Any, out: Any, on_item: Any = None) -> Any:
        """Run in this process into ``out`` (see :func:`brightscan.preprocess.batch.preprocess_to_dir`);
        returns its summary."""
        from brightscan.preprocess.batch import preprocess_to_dir

        return preprocess_to_dir(inputs, out, self.feature_set, overflow=self.overflow, causal=self.causal,
                                 chunk_size=self.chunk_size, limits=self.limits, on_item=on_item)

    def _write(self, partition: Partition, data: Any, rejected: Any, counts: Counts) -> None:
        pipeline = Pipeline(self.feature_set, overflow=self.overflow, chunk_size=self.chunk_size,
                            limits=self.limits)
        write_chunks(pipeline, read_alerts(partition.paths, limits=self.limits), self.schema, data, rejected, counts)


def chunk_columns(chunk: Any, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A prepared chunk as columns: identity, ``source``, the named features, the flat ``triplet``."""
    columns: dict[str, Any] = {name: [r[name] for r in chunk.rows] for name, _ in IDENTITY_COLUMNS}
    columns["source"] = [r["source"] for r in chunk.rows]
    features = chunk.feature_array()
    for i, name in enumerate(names):
        columns.setdefault(name, features[:, i])  # an identity column (magpsf) keeps its own value
    triplets = chunk.triplet_array()  # (n, side, side, 3): 63 px for ZTF, the model's size for Rubin
    flat = pa.array(triplets.reshape(-1), pa.float32())
    columns["triplet"] = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(triplets.shape[1:])))
    return columns


def write_chunks(pipeline: Pipeline, items: Any, schema: pa.Schema, data: Any, rejected: Any,
                 counts: Counts, extra: Any = None) -> None:
    """Prepare ``items`` chunk by chunk and write each chunk's rows (``schema``'s columns, with
    ``extra(rows) -> columns`` added) and rejections: one row group per chunk."""
    for chunk in pipeline.chunks(items):
        if chunk.rows:
            columns = chunk_columns(chunk, pipeline.names)
            if extra is not None:
                columns.update(extra(chunk.rows))
            data.write_table(pa.table([columns[f.name] for f in schema], schema=schema))
        if chunk.rejections:
            rejected.write_table(_rejection_table(chunk.rejections))
        counts.rows += len(chunk.rows)
        counts.rejections += len(chunk.rejections)


def read_triplets(table: pa.Table) -> np.ndarray:
    """The ``(n, side, side, 3)`` float32 triplets of a preprocessed partition's table (side 63 for
    ZTF, 48 for Rubin: read from the column's fixed list size)."""
    column = table.column("triplet").combine_chunks()
    side = math.isqrt(column.type.list_size // 3)
    return column.values.to_numpy().reshape(-1, side, side, 3)
