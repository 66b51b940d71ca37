"""Preprocess many alerts to disk: ``triplets.npy``, ``alerts.parquet`` and ``rejected.parquet``."""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.errors import AlertError, InputError
from brightscan.preprocess import PREPROCESSING_VERSION, feature_names, preprocess_alert
from brightscan.preprocess.cutouts import STAMP_SIZE
from brightscan.storage import REJECTION_SCHEMA, NpyAppender, ParquetRowWriter

log = logging.getLogger(__name__)

#: Identity columns of every alert table we write (preprocess output and dataset splits).
IDENTITY_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("candid", pa.int64()),
    ("objectId", pa.string()),
    ("jd", pa.float64()),
    ("magpsf", pa.float64()),
    ("fid", pa.int32()),
)
#: Scalar columns of ``alerts.parquet`` written before the features, in this order.
ID_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (*IDENTITY_COLUMNS, ("source", pa.string()))


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
    return feature_table_schema(ID_COLUMNS, feature_set)


def feature_table_schema(id_columns: tuple[tuple[str, pa.DataType], ...], feature_set: str) -> pa.Schema:
    """Identity columns, then the feature set's columns (float32) in model order.

    A feature that is also an identity column (``magpsf``) is stored once, in full precision.
    """
    fields = [pa.field(name, dtype) for name, dtype in id_columns]
    id_names = {name for name, _ in id_columns}
    fields += [pa.field(name, pa.float32()) for name in feature_names(feature_set) if name not in id_names]
    return pa.schema(fields, metadata={"preprocessing_version": PREPROCESSING_VERSION, "feature_set": feature_set})


def collect_history(inputs: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """First pass of causal mode: every alert's candidate essentials, grouped by source."""
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in read_alerts(inputs):
        if isinstance(item, Alert):
            cand = item.candidate
            history[item.object_id].append(
                {"candid": item.candid, "jd": cand.get("jd"), "magpsf": cand.get("magpsf"), "fid": cand.get("fid")}
            )
    return history


def preprocess_to_dir(
    inputs: Iterable[Any],
    out_dir: str | Path,
    feature_set: str = "v1",
    *,
    overflow: str = "reject",
    causal: bool = False,
    on_item: Callable[[], None] | None = None,
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
    on_item : callable, optional
        Called once per alert or rejection (progress bars).

    Raises
    ------
    InputError
        When an input does not exist, or nothing at all could be read.
    """
    inputs = list(inputs)
    feature_names(feature_set)  # fail fast on an unknown set
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history: Mapping[str, list[dict[str, Any]]] = collect_history(inputs) if causal else {}
    summary = PreprocessSummary(out_dir=out, feature_set=feature_set)
    names = feature_names(feature_set)
    with (
        NpyAppender(out / "triplets.npy", (STAMP_SIZE, STAMP_SIZE, 3)) as triplets,
        ParquetRowWriter(out / "alerts.parquet", alerts_schema(feature_set)) as table,
        ParquetRowWriter(out / "rejected.parquet", REJECTION_SCHEMA) as rejected,
    ):
        for item in read_alerts(inputs):
            if on_item is not None:
                on_item()
            if isinstance(item, Rejection):
                _record(summary, rejected, item)
                continue
            try:
                triplet, features = preprocess_alert(
                    item, feature_set, earlier=history.get(item.object_id, ()), overflow=overflow
                )
            except AlertError as exc:
                _record(summary, rejected, Rejection(item.candid, item.object_id, item.source, exc.stage, exc.reason))
                continue
            triplets.append(triplet)
            table.write(_row(item, names, features))
            summary.accepted += 1
    if summary.n_alerts_seen == 0:
        raise InputError(f"no alert could be read from {len(inputs)} input(s); see {out / 'rejected.parquet'}")
    return summary


def _row(alert: Alert, names: tuple[str, ...], features: Any) -> dict[str, Any]:
    cand = alert.candidate
    row = {
        "candid": alert.candid,
        "objectId": alert.object_id,
        "jd": float(cand["jd"]),
        "magpsf": _float_or_none(cand.get("magpsf")),
        "fid": cand.get("fid") if isinstance(cand.get("fid"), int) else None,
        "source": alert.source,
    }
    for name, value in zip(names, features):
        row.setdefault(name, float(value))
    return row


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _record(summary: PreprocessSummary, writer: ParquetRowWriter, rejection: Rejection) -> None:
    log.info("rejected %s (%s): %s", rejection.candid, rejection.source, rejection.reason)
    writer.write(rejection.as_row())
    summary.rejected[(rejection.stage, reason_kind(rejection.reason))] += 1


def reason_kind(reason: str) -> str:
    """A reason with its numbers and quoted values blanked, to group rejections in summaries."""
    return re.sub(r"\b\d+(\.\d+)?\b", "N", reason.split(" (", 1)[0])[:120]
