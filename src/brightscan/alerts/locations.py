"""Where alert files are: local paths, glob patterns, directories and fsspec URLs.

An input is resolved once, before anything is read (so that a typo is a usage error, not a
rejection), and directories are walked lazily while reading. Local files stay :class:`Path`
objects (opened with ``open``); anything behind a URL (``s3://``, ``gs://``, ``https://``,
``memory://``) is a ``str`` opened through fsspec. ``file://`` URLs are local paths.

Walking a directory, local or remote: a directory's own files first, sorted, then its
subdirectories, sorted, recursively; files with a suffix we do not read are skipped, and so is
every file or directory whose name starts with ``.`` or ``_`` (the Hadoop convention Spark and
Hive follow: ``_SUCCESS``, ``_temporary/`` holding a failed task's partial output, ``.crc``
checksums), so that a Spark output directory is read exactly once.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brightscan.errors import InputError

log = logging.getLogger(__name__)

#: Suffixes we read; anything else found inside a directory is skipped.
SUFFIXES = (".avro", ".parquet", ".tar", ".tar.gz", ".tgz")

PathLike = str | os.PathLike
#: A file to read: a local path, or a URL that fsspec opens.
InputFile = Path | str

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HIDDEN = (".", "_")
#: The extra that brings each remote protocol's fsspec implementation.
_EXTRA_HINT = "pip install 'brightscan[remote]'"


@dataclass(frozen=True)
class _Input:
    """One resolved input: files and directories to walk, on one filesystem (None: local)."""

    entries: tuple[tuple[str, bool], ...]  # (path, is a directory)
    fs: Any = None


def is_url(text: str) -> bool:
    """Whether ``text`` names a protocol (``s3://...``), as opposed to a local path."""
    return bool(_URL.match(text))


def has_readable_suffix(name: str) -> bool:
    """Whether a file name ends with one of :data:`SUFFIXES` (case-insensitive)."""
    return name.lower().endswith(SUFFIXES)


def resolve_inputs(inputs: PathLike | Iterable[PathLike]) -> list[_Input]:
    """Check every input and expand glob patterns (directories are walked later).

    Raises
    ------
    InputError
        For a path or URL that does not exist, a pattern that matches nothing, a file with a
        suffix we cannot read, or a protocol whose library is not installed.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    return [_resolve(os.fspath(item)) for item in items]


def walk_inputs(resolved: Iterable[_Input]) -> Iterator[InputFile]:
    """Every file of the resolved inputs, in order, directories walked as documented above."""
    for item in resolved:
        for path, is_dir in item.entries:
            if item.fs is None:
                yield from (_walk_local(Path(path)) if is_dir else [Path(path)])
            elif is_dir:
                yield from _walk_remote(item.fs, path)
            else:
                yield item.fs.unstrip_protocol(path)


def _resolve(text: str) -> _Input:
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_url(text):
        return _resolve_url(text)
    path = Path(text)
    if path.exists():
        return _Input(((str(path), path.is_dir()),)) if path.is_dir() else _Input(((_checked(text), False),))
    if glob.has_magic(text):
        matches = sorted(glob.glob(text, recursive=True))
        entries = tuple((m, os.path.isdir(m)) for m in matches if os.path.isdir(m) or has_readable_suffix(m))
        if not entries:
            raise InputError(f"input pattern {text} matches no alert file or directory")
        return _Input(entries)
    raise InputError(f"input {text} does not exist")


def _resolve_url(url: str) -> _Input:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise InputError(f"cannot read {url}: {exc} ({_EXTRA_HINT})") from None
    except ValueError as exc:  # an unknown protocol
        raise InputError(f"cannot read {url}: {exc}") from None
    if glob.has_magic(path):
        matches = sorted(fs.glob(path))
        entries = tuple((m, fs.isdir(m)) for m in matches)
        entries = tuple((m, d) for m, d in entries if d or has_readable_suffix(m))
        if not entries:
            raise InputError(f"input pattern {url} matches no alert file or directory")
        return _Input(entries, fs)
    try:
        kind = fs.info(path)["type"]  # a HEAD request on http(s): nothing is downloaded here
    except FileNotFoundError:
        raise InputError(f"input {url} does not exist") from None
    except Exception:  # noqa: BLE001 - a network error: reading the file will say what it is
        log.warning("cannot check %s; reading it will tell", url, exc_info=True)
        kind = "file"
    if kind == "directory":
        return _Input(((path, True),), fs)
    return _Input(((_checked(path, url), False),), fs)


def _checked(path: str, shown: str | None = None) -> str:
    if not has_readable_suffix(path):
        raise InputError(f"input {shown or path}: cannot read this kind of file "
                         f"(expected one of {', '.join(SUFFIXES)})")
    return path


def _visible(names: list[str]) -> list[str]:
    return sorted(name for name in names if not name.startswith(_HIDDEN))


def _walk_local(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = _visible(dirs)  # os.walk descends into what is left, in this order
        for name in _visible(files):
            if has_readable_suffix(name):
                yield Path(root) / name


def _walk_remote(fs: Any, directory: str) -> Iterator[str]:
    for root, dirs, files in fs.walk(directory, topdown=True):
        dirs[:] = _visible(list(dirs))
        for name in _visible(list(files)):
            if has_readable_suffix(name):
                yield fs.unstrip_protocol(f"{root.rstrip('/')}/{name}")
