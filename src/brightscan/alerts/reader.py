"""One entry point for every container: files, archives and directories, in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from brightscan.alerts.avro import count_avro_records, read_avro_stream
from brightscan.alerts.parquet import read_parquet_file
from brightscan.alerts.records import Alert, Rejection
from brightscan.alerts.tarball import read_tarball
from brightscan.errors import InputError

#: Suffixes we read; anything else found inside a directory is skipped.
SUFFIXES = (".avro", ".parquet", ".tar", ".tar.gz", ".tgz")

PathLike = str | os.PathLike


def read_alerts(inputs: PathLike | Iterable[PathLike]) -> Iterator[Alert | Rejection]:
    """Yield every alert (or rejection) found in files, archives and directories.

    Parameters
    ----------
    inputs : path or iterable of paths
        ``.avro`` (one or many packets), ``.parquet`` (broker layout), ``.tar``/``.tar.gz``
        nightly archives, or directories searched recursively in sorted order.

    Raises
    ------
    InputError
        When an input path does not exist or has a suffix we cannot read (a usage error);
        problems *inside* readable inputs become :class:`Rejection` records instead.
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise InputError(f"input {path} does not exist")
        if not path.is_dir() and not _readable_suffix(path):
            raise InputError(f"input {path}: cannot read this kind of file (expected one of {', '.join(SUFFIXES)})")
    for path in paths:
        for file in _expand(path):
            yield from read_file(file)


def read_file(path: Path) -> Iterator[Alert | Rejection]:
    """Read one file by its suffix."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from read_parquet_file(path)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        yield from read_tarball(path)
    else:
        try:
            with open(path, "rb") as stream:
                yield from read_avro_stream(stream, str(path))
        except OSError as exc:
            yield Rejection(None, None, str(path), "read", f"cannot open file: {exc}")


def count_alerts(inputs: PathLike | Iterable[PathLike]) -> int | None:
    """How many items :func:`read_alerts` will yield, when that is cheap to know (progress totals).

    Avro files are counted from their block headers and Parquet files from their metadata, without
    decoding anything; ``None`` when an input is a compressed archive (counting it would cost as
    much as reading it) or does not exist.
    """
    total = 0
    try:
        for file in iter_input_files(inputs):
            name = file.name.lower()
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                total += pq.ParquetFile(file).metadata.num_rows
            elif name.endswith((".tar", ".tar.gz", ".tgz")):
                return None
            else:
                with open(file, "rb") as stream:
                    total += count_avro_records(stream)
    except (OSError, ValueError):  # a count is a hint: the reader itself reports unreadable inputs
        return None
    return total


def iter_input_files(inputs: PathLike | Iterable[PathLike]) -> Iterator[Path]:
    """The files :func:`read_alerts` would read, in order (directories expanded)."""
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    for path in paths:
        yield from _expand(path)


def _expand(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                candidate = Path(root) / name
                if _readable_suffix(candidate):
                    yield candidate
    else:
        yield path


def _readable_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)
