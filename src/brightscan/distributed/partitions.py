"""Partitions of work and of output: planning them from inputs, writing them atomically, the manifest.

A *partition* is one unit of output, made from one input partition: a nightly archive
(``ztf_public_20180601.tar.gz``), a broker Parquet file, or the loose Avro packets of one night in
one folder. Each becomes one Parquet file under a hive-style key, so any Parquet reader sees one
dataset (``pyarrow.dataset.dataset(OUT / "scores", partitioning="hive")``)::

    OUT/_run.json                                  # what this run computes (checked on rerun)
    OUT/scores/night=20180601/<name>.parquet       # one file per input partition
    OUT/rejected/night=20180601/<name>.parquet     # its rejections, beside it
    OUT/_manifest/<name>.json                      # written last: this partition is finished

Every file is written to a hidden temporary name in its final folder and renamed into place
(:func:`atomic_parquet`), so a reader never sees half a file, and a partition redone after a
crash replaces its files instead of adding rows. The manifest entry is written after the data:
a partition without one is redone, a partition with one (for the same input files, same sizes and
modification times) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from brightscan.alerts.reader import iter_input_files
from brightscan.errors import ConfigError, InputError

__all__ = [
    "Partition", "RunLayout", "atomic_parquet", "night_of", "plan_partitions", "write_json_atomic",
]

#: The hive value of a partition whose night cannot be told from its file names.
UNKNOWN_NIGHT = "__HIVE_DEFAULT_PARTITION__"
_NIGHT = re.compile(r"(?<!\d)((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)")


def night_of(path: Path) -> str | None:
    """The night ``YYYYMMDD`` named by a file (``ztf_public_20180601.tar.gz``, ``20200202_....avro``)
    or by its folder (``alerts/20230301/``), or None."""
    for name in (path.name, path.parent.name):
        match = _NIGHT.search(name)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class Partition:
    """One input partition and the name of its output files."""

    name: str  # file name stem of every output of this partition (unique in a run)
    night: str  # hive key value: YYYYMMDD, or UNKNOWN_NIGHT
    paths: tuple[str, ...]  # the input files, in reading order
    fingerprint: str  # sha1 of the files' paths, sizes and modification times

    @property
    def key(self) -> str:
        """The hive-style folder of this partition's outputs."""
        return f"night={self.night}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "paths": list(self.paths)}


def plan_partitions(inputs: Iterable[str | os.PathLike]) -> list[Partition]:
    """Group input files into partitions: each archive or Parquet file alone; loose Avro files by
    folder and night. Order follows :func:`brightscan.alerts.read_alerts`.

    Raises
    ------
    InputError
        When an input does not exist or no alert file is found.
    """
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if not path.exists():
            raise InputError(f"input {path} does not exist")
    groups: dict[tuple[str, str, str], list[Path]] = {}
    for file in iter_input_files(inputs):
        night = night_of(file)
        if file.name.lower().endswith(".avro"):
            group = ("avro", str(file.parent.resolve()), night or "")
        else:
            group = ("file", str(file.resolve()), night or "")
        groups.setdefault(group, []).append(file)
    if not groups:
        raise InputError(f"no alert file found in {len(inputs)} input(s)")
    partitions = [_partition(kind, where, night, files) for (kind, where, night), files in groups.items()]
    names = [p.name for p in partitions]
    if len(set(names)) != len(names):  # pragma: no cover - the hash makes this practically impossible
        raise ConfigError("two input partitions map to the same output name")
    return partitions


def _partition(kind: str, where: str, night: str, files: list[Path]) -> Partition:
    digest = hashlib.sha1(f"{kind}\0{where}\0{night}".encode()).hexdigest()[:10]
    stem = Path(where).name if kind == "avro" else re.sub(r"\.(tar\.gz|tgz|tar|parquet)$", "", Path(where).name)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:60]
    if kind == "avro":
        stem = f"{stem}-{night or 'avro'}"
    fingerprint = hashlib.sha1()
    for file in files:
        stat = file.stat()
        fingerprint.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return Partition(f"{stem}-{digest}", night or UNKNOWN_NIGHT, tuple(str(f) for f in files),
                     fingerprint.hexdigest())


@contextmanager
def atomic_parquet(path: Path, schema: Any) -> Iterator[Any]:
    """A ``pyarrow.parquet.ParquetWriter`` on a hidden temporary file in ``path``'s folder, renamed
    to ``path`` on success and removed on failure: streamed in row groups, so memory is bounded by
    what each ``write_table`` call is given."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    writer = pq.ParquetWriter(tmp, schema)
    try:
        yield writer
        writer.close()
        os.replace(tmp, path)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)


def write_json_atomic(data: dict[str, Any], path: Path) -> None:
    """Write JSON to ``path`` through a hidden temporary file, fsynced before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RunLayout:
    """The folders of one partitioned run under ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        The output folder.
    data : str
        Name of the data folder (``scores`` or ``alerts``).
    """

    def __init__(self, root: str | os.PathLike, data: str) -> None:
        self.root = Path(root)
        self.data = data

    def output(self, partition: Partition) -> Path:
        return self.root / self.data / partition.key / f"{partition.name}.parquet"

    def rejected(self, partition: Partition) -> Path:
        return self.root / "rejected" / partition.key / f"{partition.name}.parquet"

    def manifest_entry(self, partition: Partition) -> Path:
        return self.root / "_manifest" / f"{partition.name}.json"

    def start(self, run: dict[str, Any], *, resume: bool) -> None:
        """Create the run folder, or check that an existing one computes the same thing.

        Raises
        ------
        ConfigError
            When ``root`` holds another run's outputs (another model, command or settings), or
            ``resume`` is asked of a folder with no run.
        """
        card = self.root / "_run.json"
        if card.exists():
            existing = json.loads(card.read_text(encoding="utf-8"))
            if existing != run:
                changed = sorted(k for k in {*run, *existing} if run.get(k) != existing.get(k))
                raise ConfigError(f"{self.root} holds another run (differs in {', '.join(changed)}); "
                                  "choose another output folder")
        elif resume:
            raise ConfigError(f"nothing to resume: {card} not found")
        else:
            write_json_atomic(run, card)
        self._remove_temporaries()

    def finished(self, partition: Partition) -> dict[str, Any] | None:
        """The manifest entry of a partition finished from the same input files, or None."""
        entry = self.manifest_entry(partition)
        if not entry.exists():
            return None
        row = json.loads(entry.read_text(encoding="utf-8"))
        if row.get("fingerprint") != partition.fingerprint or not self.output(partition).exists():
            return None
        return row

    def manifest(self) -> list[dict[str, Any]]:
        """Every manifest entry of the run (finished partitions), by name."""
        folder = self.root / "_manifest"
        rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
        return rows

    def _remove_temporaries(self) -> None:
        """Temporary files left by a crash (never read: hidden names); safe, their partitions are redone."""
        for folder in (self.root / self.data, self.root / "rejected", self.root / "_manifest"):
            if folder.exists():
                for tmp in folder.rglob(".*.tmp-*"):
                    tmp.unlink(missing_ok=True)
