"""Step over Avro records in C: one regular expression per record type, built from its schema.

A projected record (:mod:`brightscan.alerts.avro_compiler`) keeps a few fields of a hundred. In
Python, stepping over a field costs a statement or two (~100 ns); Rubin's LSSTCam alerts carry
~350 earlier sources of ~100 fields, so stepping over them field by field costs milliseconds. The
binary encoding of most field types is regular, so one compiled expression walks a whole record
in the regular-expression engine instead, and its groups say where the kept fields start:

- ``null``: nothing; ``boolean``: one byte; ``float``/``double``/``fixed``: 4, 8 or ``size`` bytes;
- ``int``/``long``: a varint (up to nine bytes with the high bit set, then one without);
- ``string``/``bytes`` up to 63 bytes: the one-byte zig-zag length ``2n`` followed by ``n`` bytes;
- a union of up to 64 branches: the one-byte index ``2i`` followed by branch ``i``;
- a record: its fields in order.

Every alternative starts with a different byte, so a match, when there is one, is the only way to
read those bytes as that record: the expression is exact where it matches. Anything else (arrays,
maps, enums, longer strings, a union index that is out of range) has no expression: the record is
decoded exactly by the compiled Python instead (and damage is reported there).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["field_patterns", "record_pattern"]

_VARINT = rb"[\x80-\xff]{0,9}[\x00-\x7f]"
_FIXED = {"null": b"", "boolean": b".", "float": b".{4}", "double": b".{8}", "int": _VARINT, "long": _VARINT}
#: Strings and bytes up to this length have a one-byte length prefix.
_SHORT = 63
_LENGTH_PREFIXED = b"(?:" + b"|".join(re.escape(bytes([2 * n])) + b".{%d}" % n for n in range(_SHORT + 1)) + b")"


def record_pattern(fields: list[dict[str, Any]], kept: list[int], namespace: str,
                   schemas: dict[str, dict[str, Any]]) -> re.Pattern[bytes] | None:
    """The expression matching one record of ``fields``, with group ``k`` at kept field ``kept[k-1]``.

    ``schemas`` maps full names to the record schemas defined so far (named references). Returns
    None when some field has no expression.
    """
    parts = field_patterns(fields, namespace, schemas)
    if parts is None:
        return None
    return re.compile(b"".join(b"(" + part + b")" if index in kept else part for index, part in enumerate(parts)),
                      re.DOTALL)


def field_patterns(fields: list[dict[str, Any]], namespace: str,
                   schemas: dict[str, dict[str, Any]]) -> list[bytes] | None:
    """The expression of each field of a record (no groups), or None when one has none."""
    parts = [_pattern(field["type"], namespace, schemas, depth=0) for field in fields]
    return None if any(part is None for part in parts) else parts


def _pattern(kind: Any, namespace: str, schemas: dict[str, dict[str, Any]], depth: int) -> bytes | None:
    if depth > 20:  # a recursive or very deep type: decoded exactly
        return None
    if isinstance(kind, dict) and kind.get("type") in (*_FIXED, "string", "bytes"):
        kind = kind["type"]  # a primitive written as {"type": ...}, logical types included
    if isinstance(kind, str):
        if kind in _FIXED:
            return _FIXED[kind]
        if kind in ("string", "bytes"):
            return _LENGTH_PREFIXED
        named = schemas.get(kind) or schemas.get(f"{namespace}.{kind}")
        return _record(named, namespace, schemas, depth) if named is not None else None
    if isinstance(kind, list):
        if len(kind) > 64:
            return None
        branches = [_pattern(branch, namespace, schemas, depth + 1) for branch in kind]
        if any(branch is None for branch in branches):
            return None
        return b"(?:" + b"|".join(re.escape(bytes([2 * i])) + branch for i, branch in enumerate(branches)) + b")"
    if isinstance(kind, dict) and kind.get("type") == "record":
        return _record(kind, namespace, schemas, depth)
    if isinstance(kind, dict) and kind.get("type") == "fixed":
        return b".{%d}" % int(kind["size"])
    return None  # arrays, maps, enums: decoded exactly


def _record(schema: dict[str, Any], namespace: str, schemas: dict[str, dict[str, Any]], depth: int) -> bytes | None:
    name = schema.get("name", "")
    own = name.rpartition(".")[0] if "." in name else schema.get("namespace", namespace)
    parts = [_pattern(field["type"], own, schemas, depth + 1) for field in schema.get("fields", ())]
    if any(part is None for part in parts):
        return None
    return b"".join(parts)
