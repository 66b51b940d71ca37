"""What reading one input may cost: decompressed sizes and claimed counts, all bounded.

A few hundred bytes can claim gigabytes: a zstd block of zeros, a gzip cutout, a tar member, an
Avro block claiming 2^60 records, an array claiming 2^60 items. Every reader checks what it is
about to allocate or iterate against one :class:`ReadLimits` *before* doing it, and turns a
breach into a rejection naming the limit (``max_block_bytes=16777216``) and the file or record.
The defaults are far above anything real ZTF data hold (a packet is ~80 kB, a stamp ~20 kB) and
low enough that reading the worst input under each stays within a few hundred MB
(``benchmarks/bench_bombs.py``; docs/ingest.md lists the figures).

The CLI's reading commands take ``--read-limit NAME=SIZE``; autoscan's configuration passes the
same object (:meth:`ReadLimits.from_mapping` reads a TOML table).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from brightscan.errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "ReadLimits", "parse_size"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": KiB, "m": 1000**2, "mb": 1000**2, "mib": MiB,
          "g": 1000**3, "gb": 1000**3, "gib": GiB}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class ReadLimits:
    """Upper bounds on what reading one file, archive, block or cutout may allocate or iterate.

    Every field is a positive integer; sizes are bytes after decompression.
    """

    max_block_bytes: int = 16 * MiB  # one Avro block: its body as stored and its records decompressed
    max_block_records: int = 100_000  # records one Avro block may claim (never more than its bytes)
    max_array_items: int = 100_000  # items one array or map block inside a packet may claim (Rubin's ~400)
    max_member_bytes: int = 256 * MiB  # one tar member, read whole (an Avro file inside an archive)
    max_archive_members: int = 10_000_000  # members of one tar archive, whatever their kind
    max_tar_header_bytes: int = 1 * MiB  # one extended tar header (pax, GNU long name), read whole
    max_row_group_bytes: int = 512 * MiB  # uncompressed size of the columns read from one Parquet row group
    max_cutout_bytes: int = 1 * MiB  # one cutout stamp after gunzip (ZTF's: ~20 kB)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"read limit {item.name} must be a positive integer, not {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ReadLimits:
        """Defaults overridden by ``values`` (a TOML table, or the CLI's ``NAME=SIZE`` pairs).

        Values are integers or size strings (``"64MiB"``, ``"2 GB"``, see :func:`parse_size`).

        Raises
        ------
        ConfigError
            Naming an unknown limit (and the known ones) or a value that is not a positive size.
        """
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown read limit(s) {unknown}; known: {sorted(known)}")
        return replace(DEFAULT_LIMITS, **{name: parse_size(value, name) for name, value in values.items()})

    def describe(self, name: str) -> str:
        """``name=value``, as rejections quote a limit."""
        return f"{name}={getattr(self, name)}"


def parse_size(value: Any, name: str = "size") -> int:
    """An integer, or a size string with an optional unit (``k``/``KB`` = 1000, ``KiB`` = 1024, M, G).

    Raises
    ------
    ConfigError
        When the value is not a positive whole size.
    """
    if isinstance(value, bool):
        raise ConfigError(f"read limit {name} must be a size, not {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or len(match.group(1)) > 30:
        raise ConfigError(f"read limit {name}: {value!r} is not a size (e.g. 1000000, 64MiB, 2GB)")
    return int(match.group(1)) * _UNITS[unit]


#: The limits used when none are given.
DEFAULT_LIMITS = ReadLimits()
