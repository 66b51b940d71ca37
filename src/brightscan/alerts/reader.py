"""One entry point for every container, wherever it is: files, archives, directories, globs, URLs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from brightscan.alerts.avro import count_avro_records, read_avro_stream
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.locations import SUFFIXES, InputFile, PathLike, is_url, resolve_inputs, walk_inputs
from brightscan.alerts.parquet import read_parquet_file
from brightscan.alerts.records import Alert, Rejection
from brightscan.alerts.tarball import read_tarball
from brightscan.errors import InputError

__all__ = ["SUFFIXES", "count_alerts", "iter_input_files", "read_alerts", "read_file"]

log = logging.getLogger(__name__)


def read_alerts(inputs: PathLike | Iterable[PathLike], *,
                limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Yield every alert (or rejection) found in files, archives, directories, globs and URLs.

    Parameters
    ----------
    inputs : path, URL, pattern, or an iterable of them
        ``.avro`` (one or many packets, any codec), ``.parquet`` (broker layouts),
        ``.tar``/``.tar.gz`` nightly archives; directories (searched recursively, in sorted
        order, skipping ``.``/``_``-prefixed names); glob patterns (``night/*.avro``,
        ``**`` recursive); fsspec URLs (``memory://``, ``file://``, and ``s3://``, ``gs://``,
        ``https://`` with the ``remote`` extra) of any of these.
    limits : ReadLimits, optional
        Bounds on decompressed sizes and claimed counts; whatever exceeds one is rejected with a
        reason naming it (default :data:`~brightscan.alerts.limits.DEFAULT_LIMITS`).

    Raises
    ------
    InputError
        When an input does not exist, a pattern matches nothing, or a file has a suffix we
        cannot read (a usage error, raised before anything is read); problems *inside*
        readable inputs become :class:`Rejection` records instead.
    """
    for file in walk_inputs(resolve_inputs(inputs)):
        yield from read_file(file, limits)


def iter_input_files(inputs: PathLike | Iterable[PathLike]) -> Iterator[InputFile]:
    """The files :func:`read_alerts` would read, in order: local ones as :class:`Path`, URLs as str."""
    return walk_inputs(resolve_inputs(inputs))


def read_file(path: InputFile, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Read one file (a local path, or a URL opened through fsspec) by its suffix.

    A file that cannot be opened, or whose reading fails part-way (a disk or network error),
    yields one rejection saying so after whatever was read before.
    """
    if isinstance(path, str) and is_url(path):
        yield from _read_remote(path, limits)
        return
    source = str(path)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, after a lazy read
    except OSError as exc:
        yield Rejection(None, None, source, "read", f"cannot open file: {exc}")
        return
    with stream:
        yield from _guarded(_read_stream(stream, source, limits), source, (OSError, EOFError))


def _read_remote(url: str, limits: ReadLimits) -> Iterator[Alert | Rejection]:
    import fsspec

    try:
        opened = fsspec.open(url, "rb").open()
    except Exception as exc:  # noqa: BLE001 - each protocol's client raises its own errors; a rejection, logged
        log.warning("cannot open %s", url, exc_info=True)
        yield Rejection(None, None, url, "read", f"cannot open file: {type(exc).__name__}: {exc}")
        return
    with opened:
        stream = _random_access(opened, url) if url.lower().endswith(".parquet") else opened
        yield from _guarded(_read_stream(stream, url, limits), url, (Exception,))


def _random_access(opened: BinaryIO, url: str) -> BinaryIO:
    """Parquet is read from its footer: a web server that ignores range requests gets the whole
    file read into memory instead (object stores and common web servers honour ranges)."""
    import fsspec

    try:
        opened.seek(-8, io.SEEK_END)
        opened.read(8)
        opened.seek(0)
        return opened
    except ValueError:  # fsspec: "doesn't appear to support range requests", or a streaming file
        log.info("%s: no random access, reading the whole file", url)
        with fsspec.open(url, "rb", block_size=0) as whole:
            return io.BytesIO(whole.read())


def _read_stream(stream: BinaryIO, source: str, limits: ReadLimits) -> Iterator[Alert | Rejection]:
    name = source.lower()
    if name.endswith(".parquet"):
        yield from read_parquet_file(stream, source, limits)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        yield from read_tarball(stream, source, limits)
    else:
        yield from read_avro_stream(stream, source, limits)


def _guarded(items: Iterator[Alert | Rejection], source: str,
             errors: tuple[type[BaseException], ...]) -> Iterator[Alert | Rejection]:
    # A read error part-way through a file ends that file with a rejection, never the batch.
    count = 0
    try:
        for item in items:
            count += 1
            yield item
    except errors as exc:
        log.warning("reading %s failed after %d item(s)", source, count, exc_info=True)
        yield Rejection(None, None, source, "read", f"reading failed after {count} item(s): "
                                                    f"{type(exc).__name__}: {exc}")


def count_alerts(inputs: PathLike | Iterable[PathLike]) -> int | None:
    """How many items :func:`read_alerts` will yield, when that is cheap to know (progress totals).

    Local Avro files are counted from their block headers and Parquet files from their metadata,
    without decoding anything; ``None`` when an input is a compressed archive (counting it would
    cost as much as reading it), is behind a URL (counting would cost requests), or does not exist.
    """
    total = 0
    try:
        for file in iter_input_files(inputs):
            if isinstance(file, str):
                return None
            name = file.name.lower()
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                total += pq.ParquetFile(file).metadata.num_rows
            elif name.endswith((".tar", ".tar.gz", ".tgz")):
                return None
            else:
                with open(file, "rb") as stream:
                    total += count_avro_records(stream)
    except (InputError, OSError, ValueError):  # a count is a hint: reading reports unreadable inputs
        return None
    return total
