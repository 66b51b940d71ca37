"""Preprocess many alerts to disk: ``triplets.npy``, ``alerts.parquet`` and ``rejected.parquet``."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from brightscan.alerts import Rejection, read_alerts
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.errors import InputError
from brightscan.preprocess.surveys import input_size
from brightscan.preprocess.history import History
from brightscan.preprocess.pipeline import IDENTITY_COLUMNS, Pipeline, feature_table_schema, table_row
from brightscan.storage import REJECTION_SCHEMA, NpyAppender, ParquetRowWriter

log = logging.getLogger(__name__)

#: Scalar columns of a preprocessed ``alerts.parquet`` written before the features, in this order:
#: the identity and the file each alert came from (also the first columns of a ``--cluster`` run's).
PREPARED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (*IDENTITY_COLUMNS, ("source", pa.string()))

#: Accepted alerts per chunk of work (bounded memory whatever the input size).
CHUNK_SIZE = 256


@dataclass
class PreprocessSummary:
    """What a run did: counts, and rejections grouped by stage and reason."""

    out_dir: Path
    feature_set: str
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def n_alerts_seen(self) -> int:
        """Alerts decoded (accepted, or rejected after decoding)."""
        return self.accepted + sum(n for (stage, _), n in self.rejected.items() if stage != "read")


def alerts_schema(feature_set: str) -> pa.Schema:
    """Schema of ``alerts.parquet`` for a feature set."""
    return feature_table_schema(PREPARED_COLUMNS, feature_set)


def preprocess_to_dir(
    inputs: Iterable[Any],
    out_dir: str | Path,
    feature_set: str = "v1",
    *,
    overflow: str = "reject",
    causal: bool = False,
    chunk_size: int = CHUNK_SIZE,
    on_item: Callable[[], None] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> PreprocessSummary:
    """Read alerts, build triplets and features, stream them to ``out_dir``.

    Parameters
    ----------
    inputs : iterable of paths
        Files or directories (see :func:`brightscan.alerts.read_alerts`).
    out_dir : path
        Created if needed; ``triplets.npy``, ``alerts.parquet`` and ``rejected.parquet`` are written.
    feature_set : str
        ``"v1"`` or ``"icml2023"``.
    overflow : {"reject", "production"}
        See :func:`brightscan.preprocess.make_triplet`.
    causal : bool
        Merge the source's other alerts in the input into the history (nothing later than the
        alert's own ``jd``); otherwise use the packet's ``prv_candidates`` only, as production.
    chunk_size : int
        Accepted alerts prepared together (memory is bounded by it).
    on_item : callable, optional
        Called once per alert or rejection (progress bars).
    limits : ReadLimits, optional
        Bounds on decompressed sizes and claimed counts while reading and inflating cutouts.

    Raises
    ------
    InputError
        When an input does not exist, or nothing at all could be read.
    """
    inputs = list(inputs)
    pipeline = Pipeline(feature_set, overflow=overflow, chunk_size=chunk_size, limits=limits,
                        history=History.collect(inputs, limits) if causal else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PreprocessSummary(out_dir=out, feature_set=feature_set)
    side = input_size(feature_set)  # 63 px for ZTF, 48 px for Rubin
    with (
        NpyAppender(out / "triplets.npy", (side, side, 3)) as triplets,
        ParquetRowWriter(out / "alerts.parquet", alerts_schema(feature_set)) as table,
        ParquetRowWriter(out / "rejected.parquet", REJECTION_SCHEMA) as rejected,
    ):
        for chunk in pipeline.chunks(read_alerts(inputs, limits=limits), on_item=on_item):
            for rejection in chunk.rejections:
                _record(summary, rejected, rejection)
            if chunk.rows:
                triplets.append(chunk.triplet_array())
            for row, features in zip(chunk.rows, chunk.features):
                table.write(table_row(row, pipeline.names, features))
            summary.accepted += len(chunk)
    if summary.n_alerts_seen == 0:
        raise InputError(f"no alert could be read from {len(inputs)} input(s); see {out / 'rejected.parquet'}")
    return summary


def _record(summary: PreprocessSummary, writer: ParquetRowWriter, rejection: Rejection) -> None:
    log.info("rejected %s (%s): %s", rejection.candid, rejection.source, rejection.reason)
    writer.write(rejection.as_row())
    summary.rejected[(rejection.stage, reason_kind(rejection.reason))] += 1


def reason_kind(reason: str) -> str:
    """A reason with its numbers and quoted values blanked, to group rejections in summaries."""
    return re.sub(r"\b\d+(\.\d+)?\b", "N", reason.split(" (", 1)[0])[:120]
