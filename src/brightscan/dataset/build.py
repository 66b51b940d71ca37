"""Build an on-disk dataset from labelled alerts: source-disjoint splits, N_max thinning.

Layout of a dataset directory::

    dataset.json              # the card (counts per split and class, N_max, seed, inputs, ...)
    rejected.parquet          # alerts that could not be used, with stage and reason
    <split>/triplets.npy      # (N, 63, 63, 3) float32, memory-mappable, for train, val, test
    <split>/alerts.parquet    # candid, objectId, jd, magpsf, fid, label, class, features (same rows)

Two passes over the inputs: the first collects every source's detections (the causal history)
and decides splits and thinning; the second computes triplets and features with
:class:`brightscan.preprocess.pipeline.Pipeline`, the pipeline the scorer and autoscan use, and
streams rows to disk, so memory stays bounded by the history, never by the images.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.dataset.card import write_card
from brightscan.dataset.split import SPLITS, check_fractions, split_by_source
from brightscan.dataset.thin import THINNING_MODES, thin_rows
from brightscan.errors import ConfigError, InputError
from brightscan.preprocess import OVERFLOW_MODES
from brightscan.preprocess.surveys import feature_set_names as feature_names
from brightscan.preprocess.surveys import input_size, preprocessing_version
from brightscan.preprocess.history import History
from brightscan.preprocess.pipeline import IDENTITY_COLUMNS, Pipeline, feature_table_schema, table_row
from brightscan.storage import REJECTION_SCHEMA, NpyAppender, ParquetRowWriter, read_csv_table

log = logging.getLogger(__name__)

__all__ = ["BuildConfig", "Router", "SplitWriters", "build_dataset", "dataset_card", "plan_split", "read_labels",
           "record_rejection", "table_schema"]

#: Scalar columns of a dataset split's ``alerts.parquet`` written before the features: the
#: identity, the object's label and its class.
LABELLED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    *IDENTITY_COLUMNS,
    ("label", pa.int8()),
    ("class", pa.string()),
)


#: What the source split is stratified by: the label alone, or the label and the source's class
#: (labels CSV column ``class``), so that val and test draw the same mix of SNe, AGN, variable
#: stars and artefacts as train even when small.
STRATIFY_MODES = ("class", "label")


@dataclass(frozen=True)
class BuildConfig:
    """How a dataset is built."""

    nmax: int | None = 60  # latest alerts kept per training source (None: keep all)
    fractions: tuple[float, float, float] = (0.81, 0.09, 0.10)  # source fractions train/val/test
    seed: int = 0  # seed of the source split
    feature_set: str = "v1"  # stored features (v1 holds every icml2023 feature)
    overflow: str = "reject"  # cutouts with overflow sentinels: "reject" or "production"
    stratify: str = "class"  # splits stratified by "label", or by label and class ("class")
    thinning: str = "btsbot"  # N_max rule: "btsbot" (random; latest for variables) or "latest" (dataset/thin.py)

    def __post_init__(self) -> None:
        check_fractions(self.fractions)
        if self.stratify not in STRATIFY_MODES:
            raise ConfigError(f"stratify must be one of {STRATIFY_MODES}, not {self.stratify!r}")
        if self.thinning not in THINNING_MODES:
            raise ConfigError(f"thinning must be one of {THINNING_MODES}, not {self.thinning!r}")
        if self.nmax is not None and self.nmax < 1:
            raise ConfigError(f"nmax must be at least 1, not {self.nmax}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"overflow must be one of {OVERFLOW_MODES}, not {self.overflow!r}")
        try:
            feature_names(self.feature_set)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None


def table_schema(feature_set: str) -> pa.Schema:
    """Schema of ``<split>/alerts.parquet`` for a feature set."""
    return feature_table_schema(LABELLED_COLUMNS, feature_set)


def read_labels(path: str | Path) -> tuple[dict[str, int], dict[str, str]]:
    """Read a labels CSV (``objectId``, ``label`` 0/1, optional ``class``).

    Returns
    -------
    labels, classes : dict, dict
        ``objectId -> label`` and ``objectId -> class`` (empty string when absent).

    Raises
    ------
    InputError
        Missing file or columns, labels other than 0/1, a source labelled twice differently.
    """
    frame = read_csv_table(path, ("objectId", "label"), "labels")
    frame = frame.dropna(subset=["objectId"])
    bad = ~frame["label"].isin([0, 1])
    if bad.any():
        raise InputError(f"{path}: labels must be 0 or 1 (row {int(np.flatnonzero(bad)[0]) + 2})")
    if frame.groupby("objectId")["label"].nunique().gt(1).any():
        raise InputError(f"{path}: a source has two different labels")
    frame = frame.drop_duplicates("objectId")
    classes = frame["class"].fillna("").astype(str) if "class" in frame else pd.Series("", index=frame.index)
    labels = dict(zip(frame["objectId"], frame["label"].astype(int)))
    return labels, dict(zip(frame["objectId"], classes))


def plan_split(
    history: History, labels: Mapping[str, int], classes: Mapping[str, str], config: BuildConfig
) -> tuple[dict[str, str], set[int]]:
    """Split the labelled sources seen in the input; the candids kept in the train split (after
    N_max thinning). The one plan of a build, in one process or on a cluster."""
    present = {o: labels[o] for o in history.objects() if o in labels}
    strata = classes if config.stratify == "class" else None
    assignment = split_by_source(present, config.fractions, seed=config.seed, strata=strata)
    ids, jds, candids = [], [], []
    for object_id, split in assignment.items():
        if split == "train":
            unique = {det["candid"]: det for det in history.records(object_id)}  # duplicates count once
            for det in unique.values():
                ids.append(object_id)
                jds.append(float(det["jd"]))
                candids.append(det["candid"])
    keep = thin_rows(config.thinning, np.array(ids, dtype=object), np.array(jds),
                     np.array([classes.get(o, "") for o in ids], dtype=object), config.nmax, seed=config.seed)
    return assignment, {candids[i] for i in keep}


def build_dataset(
    inputs: Iterable[Any],
    labels_csv: str | Path,
    out_dir: str | Path,
    config: BuildConfig = BuildConfig(),
    *,
    on_item: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Build a dataset directory from alert files and a labels CSV.

    Parameters
    ----------
    inputs : iterable of paths
        Alert files or directories (anything :func:`brightscan.alerts.read_alerts` reads).
    labels_csv : path
        ``objectId,label[,class]``; alerts of unlabelled sources are skipped and counted, and so
        are repeated copies of an alert (same ``candid``) after its first.
    out_dir : path
        Created if needed.
    config : BuildConfig
    on_item : callable, optional
        Called once per item of the second pass (progress bars).

    Returns
    -------
    dict
        The dataset card (also written to ``out_dir/dataset.json``).
    """
    inputs = [str(p) for p in inputs]
    labels, classes = read_labels(labels_csv)
    history = History.collect(inputs)
    if not history:
        raise InputError(f"no alert could be read from {len(inputs)} input(s)")
    assignment, train_keep = plan_split(history, labels, classes, config)
    pipeline = Pipeline(config.feature_set, overflow=config.overflow, history=history, chunk_size=256,
                        image_size=input_size(config.feature_set))
    out = Path(out_dir)
    router = Router(assignment, train_keep)
    names = feature_names(config.feature_set)
    with SplitWriters(out, config.feature_set) as writers, \
            ParquetRowWriter(out / "rejected.parquet", REJECTION_SCHEMA) as rejected:
        for chunk in pipeline.chunks(router.routed(read_alerts(inputs), on_item)):
            for rejection in chunk.rejections:
                record_rejection(rejection, rejected, router.skipped)
            for row, triplet, feats in zip(chunk.rows, chunk.triplets, chunk.features):
                object_id = row["objectId"]
                row = {**table_row(row, names, feats), "label": int(labels[object_id]),
                       "class": classes[object_id]}
                writers.write(assignment[object_id], triplet, row)
    card = dataset_card(inputs, config, assignment, writers.counts, router.skipped, labels)
    write_card(out, card)
    return card


class Router:
    """The one routing rule of a build, in one process or per partition on a cluster: an alert
    goes to its object's split, unless its object is unlabelled, it is a repeated copy (same
    ``candid``) of an alert already routed, or the train split's N_max thinning left it out.
    What is left out is counted in :attr:`skipped` by reason.

    Parameters
    ----------
    assignment : mapping
        ``objectId -> split`` (:func:`plan_split`).
    train_keep : set of int
        The candids the train split keeps.
    owners : mapping, optional
        ``candid -> name of the partition that reads it first``, for alerts found in several
        partitions; an alert is a duplicate in any other partition than its owner.
    here : str, optional
        The name of the partition being routed (with ``owners``).
    """

    def __init__(self, assignment: Mapping[str, str], train_keep: set[int],
                 owners: Mapping[int, str] | None = None, here: str | None = None) -> None:
        self.assignment, self.train_keep = assignment, train_keep
        self.owners, self.here = owners or {}, here
        self.skipped: Counter = Counter()
        self._done: set[int] = set()

    def split_of(self, alert: Alert) -> str | None:
        """The split ``alert`` goes to, or None (counted as unlabelled, duplicate or thinned)."""
        split = self.assignment.get(alert.object_id)
        reason = None
        if split is None:
            reason = "unlabelled"
        elif alert.candid in self._done or self.owners.get(alert.candid, self.here) != self.here:
            reason = "duplicate"
        else:
            self._done.add(alert.candid)
            if split == "train" and alert.candid not in self.train_keep:
                reason = "thinned"
        if reason is not None:
            self.skipped[reason] += 1
            return None
        return split

    def routed(self, items: Iterable[Alert | Rejection],
               on_item: Callable[[], None] | None = None) -> Iterator[Alert | Rejection]:
        """The items to prepare: rejections, and the alerts that go to a split."""
        for item in items:
            if on_item is not None:
                on_item()
            if isinstance(item, Rejection) or self.split_of(item) is not None:
                yield item


class SplitWriters:
    """The three splits' streaming writers (``<split>/triplets.npy`` + ``alerts.parquet``) and
    their counts of alerts by label: set up once for a build, in one process or when a cluster's
    partitions are consolidated."""

    def __init__(self, out: Path, feature_set: str) -> None:
        self.out, self.feature_set = out, feature_set
        self.schema = table_schema(feature_set)
        self.size = input_size(feature_set)  # triplet side: 63 (ZTF) or 48 (Rubin)
        self.counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
        self._open: dict[str, tuple[NpyAppender, ParquetRowWriter]] = {}

    def __enter__(self) -> SplitWriters:
        for split in SPLITS:
            (self.out / split).mkdir(parents=True, exist_ok=True)
            self._open[split] = (
                NpyAppender(self.out / split / "triplets.npy", (self.size, self.size, 3)),
                ParquetRowWriter(self.out / split / "alerts.parquet", self.schema),
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        for npy, table in self._open.values():
            npy.close()
            table.close()

    def write(self, split: str, triplet: np.ndarray, row: dict[str, Any]) -> None:
        """One alert: its triplet and its row (with ``label``)."""
        npy, table = self._open[split]
        npy.append(triplet)
        table.write(row)
        self.counts[split][row["label"]] += 1

    def write_table(self, split: str, triplets: np.ndarray, table: pa.Table) -> None:
        """Many alerts of one split at once: ``(n, 63, 63, 3)`` triplets and their rows."""
        npy, writer = self._open[split]
        npy.append(triplets)
        writer.write_table(table)
        self.counts[split].update(table.column("label").to_pylist())


def record_rejection(rejection: Rejection, rejected: ParquetRowWriter, skipped: Counter) -> None:
    """Write a rejection record and count it in ``skipped`` by stage (``rejected:<stage>``)."""
    rejected.write(rejection.as_row())
    skipped[f"rejected:{rejection.stage}"] += 1


def dataset_card(inputs: list[str], config: BuildConfig, assignment: Mapping[str, str],
                 counts: Mapping[str, Counter], skipped: Counter, labels: Mapping[str, int]) -> dict[str, Any]:
    """The dataset card of a build: its settings, inputs, and alerts and sources per split."""
    splits = {}
    for split in SPLITS:
        sources = [o for o, s in assignment.items() if s == split]
        splits[split] = {
            "alerts": int(sum(counts[split].values())),
            "alerts_per_label": {str(k): int(counts[split][k]) for k in (0, 1)},
            "sources": len(sources),
            "sources_per_label": {str(k): sum(labels[o] == k for o in sources) for k in (0, 1)},
        }
    return {
        "kind": "built",
        "build": {**asdict(config), "fractions": list(config.fractions)},
        "feature_set": config.feature_set,
        "features": list(feature_names(config.feature_set)),
        "preprocessing_version": preprocessing_version(config.feature_set),
        "nmax": config.nmax,
        "seed": config.seed,
        "inputs": inputs,
        "splits": splits,
        "skipped": dict(sorted(skipped.items())),
    }
