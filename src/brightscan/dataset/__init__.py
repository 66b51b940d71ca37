"""On-disk datasets: building from labelled alerts, N_max thinning, source-disjoint splits,
bounded-memory loading, and import of the original BTSbot training-set layout."""

from __future__ import annotations

from brightscan.dataset.btsbot_import import import_btsbot
from brightscan.dataset.build import BuildConfig, build_dataset, read_labels
from brightscan.dataset.card import read_dataset_card
from brightscan.dataset.loader import SplitData, TripletReader, iter_batches, open_split
from brightscan.dataset.split import SPLITS, split_by_source
from brightscan.dataset.thin import thin_btsbot, thin_latest, thin_rows

__all__ = [
    "SPLITS",
    "BuildConfig",
    "SplitData",
    "TripletReader",
    "build_dataset",
    "import_btsbot",
    "iter_batches",
    "open_split",
    "read_dataset_card",
    "read_labels",
    "split_by_source",
    "thin_btsbot",
    "thin_latest",
    "thin_rows",
]
