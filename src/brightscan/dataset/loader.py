"""Reading a dataset split with bounded memory: features in memory, triplets read on demand.

``<split>/triplets.npy`` can be paged in with ``np.load(mmap_mode="r")`` (see
:attr:`SplitData.triplets`), but a training loop that touches every row of a memory map leaves
every touched page resident in the process, so its RSS grows to the file's size. The batch
iterator therefore gathers rows with positioned reads (``os.pread``) into one reused buffer:
indices are sorted within a batch and contiguous runs are read at once, the operating system's
page cache does the rest, and the process holds one batch of images at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from brightscan.dataset.card import read_dataset_card
from brightscan.dataset.thin import thin_rows
from brightscan.errors import InputError

__all__ = ["SplitData", "TripletReader", "open_split", "iter_batches"]


class TripletReader:
    """Positioned reads of rows of a ``.npy`` array of shape (N, *item) without memory-mapping it.

    Parameters
    ----------
    path : path
        A C-ordered float32 ``.npy`` file (as written by :class:`brightscan.storage.NpyAppender`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._fd = -1
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path} not found")
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or np.dtype(dtype) != np.dtype("<f4") or len(shape) < 2:
            raise InputError(f"{self.path}: expected a C-ordered float32 array, got {dtype} {shape}")
        self.shape = tuple(shape)
        self.row_bytes = int(np.prod(shape[1:])) * 4
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``indices`` (in that order), shape ``(len(indices), *item)``."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        n = len(indices)
        if out is None or out.shape[0] < n:
            out = np.empty((n, *self.shape[1:]), dtype=np.float32)
        buf = out[:n]
        if n == 0:
            return buf
        flat = buf.reshape(n, -1).view(np.uint8).reshape(n, self.row_bytes)
        # Runs of consecutive rows are one read each; rows land in sorted order, then permute.
        breaks = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
        start = 0
        for stop in (*breaks.tolist(), n):
            first = int(sorted_idx[start])
            view = memoryview(flat[start:stop].reshape(-1))
            got = os.preadv(self._fd, [view], self.offset + first * self.row_bytes)
            if got != view.nbytes:
                raise InputError(f"{self.path} is truncated")
            start = stop
        if not np.array_equal(order, np.arange(n)):
            buf[order] = buf.copy()
        return buf

    def close(self) -> None:
        """Close the file descriptor (also done when the reader is garbage-collected)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


@dataclass
class SplitData:
    """One split: the row table, the feature matrix for a feature set, labels, and the triplets."""

    directory: Path  # DS/<split>
    table: pd.DataFrame  # candid, objectId, jd, magpsf, label, ... one row per alert
    features: np.ndarray  # (N, F) float32, columns in the order of ``feature_names``
    labels: np.ndarray  # (N,) float32, 0 or 1
    feature_names: tuple[str, ...]  # column order of ``features``
    reader: TripletReader = field(repr=False)  # positioned reads of triplets.npy

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def triplets(self) -> np.ndarray:
        """The whole triplet array as a read-only memory map, shape (N, 63, 63, 3)."""
        return np.load(self.directory / "triplets.npy", mmap_mode="r")

    def thinned_indices(self, nmax: int | None, mode: str = "latest", seed: int = 0) -> np.ndarray:
        """Rows kept when each source keeps ``nmax`` alerts under the rule ``mode``
        (:func:`~brightscan.dataset.thin.thin_rows`)."""
        classes = self.table["class"].to_numpy(dtype=object) if "class" in self.table else None
        return thin_rows(mode, self.table["objectId"].to_numpy(), self.table["jd"].to_numpy(), classes,
                         nmax, seed=seed)


def open_split(dataset_dir: str | os.PathLike, split: str, feature_names: Sequence[str] | None = None) -> SplitData:
    """Open ``DS/<split>``, selecting feature columns by name (default: the dataset's set).

    Raises
    ------
    InputError
        Missing files, or a requested feature the dataset does not store.
    """
    card = read_dataset_card(dataset_dir)
    directory = Path(dataset_dir) / split
    names = tuple(feature_names or card["features"])
    path = directory / "alerts.parquet"
    if not path.is_file():
        raise InputError(f"{path} not found")
    table = pq.read_table(path).to_pandas()
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise InputError(f"dataset {dataset_dir} does not store feature(s) {', '.join(missing)} "
                         f"(it has {card['feature_set']}); rebuild it with --features v1")
    features = table.loc[:, list(names)].to_numpy(dtype=np.float32)
    reader = TripletReader(directory / "triplets.npy")
    if len(reader) != len(table):
        raise InputError(f"{directory}: {len(reader)} triplets but {len(table)} table rows")
    labels = table["label"].to_numpy(dtype=np.float32)
    return SplitData(directory, table, features, labels, names, reader)


def iter_batches(
    data: SplitData,
    indices: np.ndarray,
    batch_size: int,
    *,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
    weights: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(triplets, features, labels)`` batches over ``indices`` (with ``weights``:
    ``(triplets, features, labels, weights)``).

    Parameters
    ----------
    data : SplitData
    indices : array of int
        Rows to visit (e.g. a thinned selection).
    batch_size : int
    rng : numpy.random.Generator, optional
        Shuffles the order of the rows when given; otherwise rows come in the given order.
    drop_last : bool
        Skip a final short batch.
    weights : array of float, shape (len(data),), optional
        A loss weight per row of the split, yielded as a fourth array.

    Notes
    -----
    Each batch's rows are sorted before reading (locality on disk); the returned arrays keep
    that sorted order, which is harmless since a batch is unordered. The triplet array is a
    fresh copy per batch, so a consumer may keep it.
    """
    order = np.asarray(indices, dtype=np.int64)
    if rng is not None:
        order = order[rng.permutation(len(order))]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        rows = np.sort(order[start:start + batch_size])
        if len(rows) == 0:
            break
        if weights is None:
            yield data.reader.read(rows), data.features[rows], data.labels[rows]
        else:
            yield data.reader.read(rows), data.features[rows], data.labels[rows], weights[rows]
