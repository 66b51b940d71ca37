"""Read the kept fields of a projected record at fixed offsets, once its byte layout has been seen.

:mod:`brightscan.alerts.avro_skip` steps over a projected record with one regular expression that
allows, at every field, each union branch, every varint length and every short string length: the
engine tries those alternatives field after field (~100 fields in a Rubin ``diaSource``), and the
kept fields are then decoded one by one through their unions. Yet the records of one array take
few *layouts*: a LSSTCam alert's ~350 earlier sources come in 4 to 7 (which fields are null, how
many bytes each varint takes). Within a layout every byte that steers the decoding sits at a fixed
offset: the union index bytes and string length prefixes (whole bytes) and the continuation bit of
each varint byte. So a record has that layout exactly when those bits equal the layout's, which one
``int.from_bytes`` of the record, an AND with the layout's mask and one comparison say (no byte
outside the mask can change how the record reads); its kept values then sit at fixed offsets
(floats and doubles in one ``struct`` call, varints joined inline) and the record ends at a fixed
size. Consecutive records mostly share a layout, so the last one that matched is tried first.

:class:`RecordShapes` learns a record type's layouts from the general expression's match (one
group per field), at most :data:`MAX_SHAPES` of them, so hostile data cannot make it generate code
without end; a record that gets no layout (another once they are full, or one the expression does
not match) goes the general way, and after :data:`MAX_MISSES` such records the layouts are dropped
(data like that would pay for the tries on every record). Only flat records (primitives, fixed, unions of those) get
layouts, and only when no field has a logical type; others always go the general way.
"""

from __future__ import annotations

import re
import struct
from itertools import repeat
from typing import Any

import numpy as np

from brightscan.alerts.columns import LayoutRows

__all__ = ["BLOCK", "MAX_MISSES", "MIN_WALK", "MAX_SHAPES", "RecordShapes", "read_items", "read_long"]

#: Most layouts learnt per record type (each generates one small reader).
MAX_SHAPES = 16
#: Records that get no layout before the layouts of their type are dropped.
MAX_MISSES = 1000
#: Records of one layout checked at once in an array (:meth:`RecordShapes.read_array`).
BLOCK = 8
#: Fewest records in an array block for the guessing walk (:meth:`RecordShapes._walk_known`), whose
#: numpy check costs a few microseconds however short the array (alerts of a new object have 0-2).
MIN_WALK = 16
_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_STRUCT = {"float": "f", "double": "d"}
_as_int = int.from_bytes
#: The one-character strings of one byte: UTF-8 reads a byte under 128 as that character (others fail).
_ASCII = tuple(chr(code) for code in range(128))
_PLAIN = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


class RecordShapes:
    """The layouts seen so far of one flat record type, and a reader for each.

    Parameters
    ----------
    fields : list of dict
        The record's fields (writer schema).
    kept : list of int
        Indices of the fields returned, in schema order (none: the record reads as None).
    parts : list of bytes
        The general expression of each field (:func:`brightscan.alerts.avro_skip.field_patterns`).
    """

    def __init__(self, fields: list[dict[str, Any]], kept: list[int], parts: list[bytes], prefix: bytes = b"") -> None:
        self.kinds = [_flat(field["type"]) for field in fields]
        self.names = [field["name"] for field in fields]
        self.kept = kept
        self.kept_names = tuple(self.names[index] for index in kept)
        self.prefix = prefix  # bytes before each record that are part of its layout (an array item's union index)
        self.wide = re.compile(re.escape(prefix) + b"".join(b"(" + part + b")" for part in parts), re.DOTALL).match
        # (size, mask, expected, reader, the same three for BLOCK records in a row, kept fields' (kind, offset, size))
        self.layouts: tuple[tuple[Any, ...], ...] = ()
        self.hit = 0  # the layout that matched last: runs of records share one
        self.previous = 0  # the one before it: records of an array often alternate between two
        self.misses = 0  # records that got no layout
        self._walking: tuple[Any, ...] | None = None  # (layouts, walker, masks, expected, sizes): _build_tree

    @classmethod
    def build(cls, fields: list[dict[str, Any]], kept: list[int], parts: list[bytes],
              prefix: bytes = b"") -> RecordShapes | None:
        """The shapes of a record type, or None when it is not flat or a field has a logical type.

        ``prefix``: fixed bytes that precede every record and belong to its layout (the union
        index of an array item typed ``[record, "null"]``, as Spark writes them).
        """
        kinds = [_flat(field["type"]) for field in fields]
        if any(kind is None for kind in kinds):
            return None
        return cls(fields, kept, parts, prefix)

    def read(self, buf: bytes, pos: int) -> tuple[dict[str, Any] | None, int] | None:
        """``(kept fields or None, end)`` of the record at ``pos``, or None to read it the general way."""
        got = self._values(buf, pos)
        if got is None:
            return None
        values, end = got
        return (None if values is None else dict(zip(self.kept_names, values))), end

    def read_array(self, buf: bytes, pos: int, count: int, rows: LayoutRows | None, slow: Any) -> int:
        """Walk ``count`` consecutive records from ``pos``; the position after the last.

        Each record's start and layout are noted in ``rows`` (nothing is noted when ``rows`` is
        None: the records are only stepped over), for :func:`~brightscan.alerts.columns.layout_columns`
        to read the kept values of all of them at once. A record no layout reads is read by
        ``slow(buf, pos) -> (values, end)``, the general way (its prefix included), and its
        values (a tuple, or None for a null item) noted instead.

        Runs of records of one layout are common (a LSSTCam alert's forced sources come in runs
        of tens to hundreds), so once two records in a row share a layout, :data:`BLOCK` records
        are checked at once: their layout bits repeat every ``size`` bytes, so one masked
        compare of ``BLOCK * size`` bytes says whether all of them have it.
        """
        end_of_buf = len(buf)
        if rows is not None:
            rows.buf = buf
            starts, ids = rows.starts, rows.ids
        remaining = count
        if rows is not None and self.layouts and count >= MIN_WALK:  # known layouts, guessed, checked together
            pos, done = self._walk_known(buf, pos, count, rows)
            remaining -= done
        while remaining:
            layouts = self.layouts
            if layouts:
                hit = min(self.hit, len(layouts) - 1)  # hit: maybe another thread's
                size, mask, expected, _, block, block_mask, block_expected, _ = layouts[hit]
                if rows is not None and len(layouts) > len(rows.layouts):
                    rows.layouts = layouts  # layouts only grow while they are kept: indices hold
                run = 0
                while remaining and pos + size <= end_of_buf and \
                        _as_int(buf[pos:pos + size], "little") & mask == expected:
                    if rows is not None:
                        starts.append(pos)
                        ids.append(hit)
                    pos += size
                    remaining -= 1
                    run += 1
                    if run == 2:  # a run: whole blocks while they last, then a few records before trying again
                        while remaining >= BLOCK and pos + block <= end_of_buf and \
                                _as_int(buf[pos:pos + block], "little") & block_mask == block_expected:
                            if rows is not None:
                                starts.extend(range(pos, pos + block, size))
                                ids.extend(repeat(hit, BLOCK))
                            pos += block
                            remaining -= BLOCK
                        run = 2 - BLOCK
                if not remaining:
                    break
                if run:  # another layout: the one before this run first (records alternate), the others, the general way
                    size, mask, expected, *_ = layouts[min(self.previous, len(layouts) - 1)]
                    if pos + size <= end_of_buf and _as_int(buf[pos:pos + size], "little") & mask == expected:
                        found = min(self.previous, len(layouts) - 1)
                    else:
                        found = next((index for index, (size, mask, expected, *_) in enumerate(layouts)
                                      if pos + size <= end_of_buf and
                                      _as_int(buf[pos:pos + size], "little") & mask == expected), -1)
                    if found >= 0:
                        self.previous, self.hit = hit, found
                        continue
            got = self._values(buf, pos)  # a layout learnt now, or None
            if got is None:
                values, pos = slow(buf, pos)
                if rows is not None:
                    rows.slow[len(rows)] = values
                    starts.append(-1)
                    ids.append(-1)
            else:
                pos = got[1]
                if rows is not None:
                    rows.layouts = self.layouts
                    starts.append(pos - self.layouts[self.hit][0])
                    ids.append(self.hit)
            remaining -= 1
        return pos

    def _walk_known(self, buf: bytes, pos: int, count: int, rows: LayoutRows) -> tuple[int, int]:
        """Walk records of known layouts from ``pos``; ``(position after them, how many)``.

        Each record's layout is *guessed* from the few bytes that tell the known layouts apart
        (:func:`_dispatch`, compiled to nested tests by :func:`_walker`), which is cheap; then
        the whole walked stretch is *checked* at once: the records are contiguous, so the masks
        of their guessed layouts, joined, cover exactly those bytes, and one masked compare of
        the stretch says whether every record has its layout. The walk stops at the first record
        no known layout can start; when the check fails, nothing is kept (0 records) and the
        careful loop of :meth:`read_array` reads them.
        """
        state = self._walking
        if state is None or state[0] is not self.layouts:
            state = self._build_tree(self.layouts)
        layouts, walk, masks, expected, size_array = state  # one tuple: another thread may rebuild it
        ids: list[int] = []
        try:
            end = walk(buf, pos, count, ids)
        except IndexError:  # past the end: the careful loop says what is wrong
            return pos, 0
        if not ids or end > len(buf):
            return pos, 0
        stretch = np.frombuffer(buf, np.uint8, end - pos, pos)
        joined = np.frombuffer(b"".join(map(masks.__getitem__, ids)), np.uint8)
        if not np.array_equal(stretch & joined, np.frombuffer(b"".join(map(expected.__getitem__, ids)), np.uint8)):
            return pos, 0
        if len(layouts) > len(rows.layouts):
            rows.layouts = layouts
        layout = np.array(ids, dtype=np.intp)
        sizes = size_array[layout]
        rows.add_run(np.cumsum(sizes) - sizes + pos, layout)
        return end, len(ids)

    def _build_tree(self, layouts: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
        """The state of :meth:`_walk_known` for ``layouts``: them, the walker, masks and expected bytes, sizes."""
        sizes = tuple(layout[0] for layout in layouts)
        masks = tuple(layout[1].to_bytes(layout[0], "little") for layout in layouts)
        expected = tuple(layout[2].to_bytes(layout[0], "little") for layout in layouts)
        walk = _walker(_dispatch(list(range(len(layouts))), masks, expected), sizes)
        self._walking = (layouts, walk, masks, expected, np.array(sizes, dtype=np.int64))
        return self._walking

    def _values(self, buf: bytes, pos: int) -> tuple[tuple[Any, ...] | None, int] | None:
        """``(kept values or None, end)`` of the record at ``pos`` by some layout, or None."""
        layouts = self.layouts
        if layouts:
            size, mask, expected, reader = layouts[min(self.hit, len(layouts) - 1)][:4]
            chunk = buf[pos:pos + size]
            if _as_int(chunk, "little") & mask == expected and len(chunk) == size:
                return reader(buf, pos), pos + size
            for index, (size, mask, expected, reader, *_) in enumerate(layouts):
                chunk = buf[pos:pos + size]
                if _as_int(chunk, "little") & mask == expected and len(chunk) == size:
                    self.hit = index
                    return reader(buf, pos), pos + size
        if len(layouts) < MAX_SHAPES and self.misses <= MAX_MISSES:
            found = self.wide(buf, pos)
            if found is not None:
                reader = self._learn(buf, found)
                return reader(buf, pos), found.end()
        self.misses += 1  # no layout for this record (too many layouts, or a long string, an array)
        if self.misses > MAX_MISSES:  # too many of those to pay for the tries: the general way only
            self.layouts = ()
        return None

    def _learn(self, buf: bytes, found: re.Match[bytes]) -> Any:
        start, size = found.start(), found.end() - found.start()
        mask, values = bytearray(size), []  # values: (kept index, kind, offset from start, size)
        mask[:len(self.prefix)] = b"\xff" * len(self.prefix)
        for index, kinds in enumerate(self.kinds):
            at, end = found.span(index + 1)
            kind = kinds[0]
            if len(kinds) > 1:  # a union: its index byte is part of the layout
                kind = kinds[buf[at] >> 1]
                mask[at - start] = 0xFF
                at += 1
            _mask_value(kind, buf, at, end, mask, start)
            if index in self.kept:
                if kind in ("string", "bytes"):  # the text after its length prefix
                    at = read_long(buf, at)[1]
                values.append((index, kind, at - start, end - at))
        reader = self._reader(values)
        number, expected = _as_int(mask, "little"), _as_int(buf[start:start + size], "little") & _as_int(mask, "little")
        block_mask = _as_int(mask * BLOCK, "little")
        block_expected = _as_int(buf[start:start + size] * BLOCK, "little") & block_mask
        fields = tuple((kind, offset, size) for _, kind, offset, size in values)  # each kept field, for layout_columns
        self.layouts = (*self.layouts, (size, number, expected, reader, size * BLOCK, block_mask, block_expected,
                                        fields))
        self.hit = len(self.layouts) - 1
        return reader

    def _reader(self, values: list[tuple[int, str, int, int]]) -> Any:
        """A function ``(buf, start) -> kept values`` (a tuple, schema order) for one layout, generated like the decoders."""
        if not self.kept:
            return lambda buf, pos: None
        env: dict[str, Any] = {}
        lines, names = ["def read(buf, pos):"], {}
        packed = [(index, offset) for index, kind, offset, _ in values if kind in _STRUCT]
        if packed:
            fmt, cursor = "<", 0
            for (index, offset), kind in zip(packed, (kind for _, kind, _, _ in values if kind in _STRUCT)):
                fmt += f"{offset - cursor}x{_STRUCT[kind]}"
                cursor = offset + _SIZES[kind]
            env["_unpack"] = struct.Struct(fmt).unpack_from
            targets = [f"v{index}" for index, _ in packed]
            lines.append(f"    {', '.join(targets)}, = _unpack(buf, pos)")
        for index, kind, offset, size in values:
            names[index] = f"v{index}"
            if kind in _STRUCT:
                continue
            if kind in ("int", "long"):  # zig-zag inline: a call per value costs as much as the rest
                joined = " | ".join(f"(buf[pos + {offset + i}] & 127) << {7 * i}" for i in range(size))
                lines += [f"    v{index} = {joined}", f"    v{index} = (v{index} >> 1) ^ -(v{index} & 1)"]
            elif kind == "string" and size == 1:  # a band: one ASCII byte, looked up (IndexError otherwise)
                lines.append(f"    v{index} = _ascii[buf[pos + {offset}]]")
            else:
                lines.append(f"    v{index} = {_value(kind, offset, size)}")
        lines.append("    return (" + "".join(f"{names[i]}, " for i in self.kept) + ")")
        env["_zigzag"] = _zigzag
        env["_ascii"] = _ASCII
        exec(compile("\n".join(lines), "<avro-shape>", "exec"), env)  # noqa: S102 - names enter via repr()
        return env["read"]


def _dispatch(candidates: list[int], masks: tuple[bytes, ...], expected: tuple[bytes, ...]) -> Any:
    """A tree telling ``candidates`` (layout indices) apart by a few bytes of a record.

    A leaf is a layout index (-1: none); a node is ``(offset, table)``, ``table[byte]`` the subtree
    for the record's byte at that offset: the first offset where the candidates' masks or
    expected bytes differ. Layouts of one record type agree up to the first field they encode
    differently, so a tree is a few levels deep. It only guesses; the caller checks.
    """
    if len(candidates) <= 1:
        return candidates[0] if candidates else -1
    shortest = min(len(masks[index]) for index in candidates)
    offset = next((at for at in range(shortest)
                   if len({(masks[index][at], expected[index][at]) for index in candidates}) > 1), None)
    if offset is None:  # indistinguishable by their common bytes (never for one record type): no guess
        return -1
    groups: dict[tuple[int, ...], list[int]] = {}
    for value in range(256):
        key = tuple(index for index in candidates if value & masks[index][offset] == expected[index][offset])
        groups.setdefault(key, []).append(value)
    table: list[Any] = [-1] * 256
    for key, values in groups.items():
        subtree = _dispatch(list(key), masks, expected) if len(key) < len(candidates) else -1
        for value in values:
            table[value] = subtree
    return offset, tuple(table)


def _walker(tree: Any, sizes: tuple[int, ...]) -> Any:
    """``walk(buf, pos, count, ids) -> pos``: :func:`_dispatch`'s tree as nested tests, generated.

    Appends each record's guessed layout to ``ids`` and steps over it, until ``count`` records
    or one that no layout can start (IndexError past the end of ``buf``).
    """
    lines = ["def walk(buf, pos, count, ids):", "    append = ids.append", "    for _ in range(count):"]
    env: dict[str, Any] = {}

    def emit(node: Any, depth: int) -> None:
        pad = "    " * depth
        if not isinstance(node, tuple):
            lines.extend([f"{pad}return pos"] if node < 0 else
                         [f"{pad}append({node})", f"{pad}pos += {sizes[node]}", f"{pad}continue"])
            return
        offset, table = node
        lines.append(f"{pad}byte = buf[pos + {offset}]")
        groups: dict[int, tuple[Any, list[int]]] = {}
        for value, subtree in enumerate(table):
            groups.setdefault(id(subtree) if isinstance(subtree, tuple) else subtree, (subtree, []))[1].append(value)
        branches = [(subtree, values) for subtree, values in groups.values()
                    if isinstance(subtree, tuple) or subtree >= 0]
        for number, (subtree, values) in enumerate(branches):
            if number == len(branches) - 1 and len(values) + sum(len(v) for _, v in branches[:-1]) == 256:
                lines.append(f"{pad}else:" if number else f"{pad}if True:")  # every other byte value: no test
            else:
                lines.append(f"{pad}{'elif' if number else 'if'} {_test(values, env)}:")
            emit(subtree, depth + 1)
        if not branches or sum(len(v) for _, v in branches) < 256:
            lines.append(f"{pad}return pos")

    emit(tree, 2)
    lines.append("    return pos")
    exec(compile("\n".join(lines), "<avro-walker>", "exec"), env)  # noqa: S102 - numbers only
    return env["walk"]


def _test(values: list[int], env: dict[str, Any]) -> str:
    """Python testing whether ``byte`` is one of ``values`` (sorted): a compare for a range, else a set."""
    if values != list(range(values[0], values[-1] + 1)):
        env[f"_v{len(env)}"] = frozenset(values)
        return f"byte in _v{len(env) - 1}"
    if len(values) == 1:
        return f"byte == {values[0]}"
    if values[0] == 0:
        return f"byte <= {values[-1]}"
    return f"byte >= {values[0]}" if values[-1] == 255 else f"{values[0]} <= byte <= {values[-1]}"


def read_items(buf: bytes, pos: int, count: int, rows: LayoutRows | None, slow: Any) -> int:
    """:meth:`RecordShapes.read_array` for records that get no layouts: ``slow`` on each in turn."""
    for _ in range(count):
        values, pos = slow(buf, pos)
        if rows is not None:
            rows.slow[len(rows)] = values
            rows.starts.append(-1)
            rows.ids.append(-1)
    return pos


def _flat(kind: Any) -> tuple[str, ...] | None:
    """The branch kinds of a flat field (one for a plain type), or None when it is not flat."""
    if isinstance(kind, list):
        branches = [_plain(branch) for branch in kind]
        return None if any(branch is None for branch in branches) or len(kind) > 64 else tuple(branches)
    plain = _plain(kind)
    return None if plain is None else (plain,)


def _plain(kind: Any) -> str | None:
    if isinstance(kind, dict):
        if "logicalType" in kind:
            return None  # converted after reading: the general way keeps that in one place
        if kind.get("type") == "fixed":
            return f"fixed:{int(kind['size'])}"
        kind = kind.get("type")
    return kind if kind in _PLAIN else None


def _mask_value(kind: str, buf: bytes, at: int, end: int, mask: bytearray, start: int) -> None:
    """Mark the bits of the value ``buf[at:end]`` that fix the layout: varint continuation bits, length prefixes."""
    if kind in ("int", "long"):  # the high bit of every byte: set but in the last
        for offset in range(at - start, end - start):
            mask[offset] = 0x80
    elif kind in ("string", "bytes"):  # the length prefix, whole
        for offset in range(at - start, read_long(buf, at)[1] - start):
            mask[offset] = 0xFF


def _value(kind: str, offset: int, size: int) -> str:
    """Python reading one kept value of ``size`` bytes at ``pos + offset`` (a string's text, its prefix skipped)."""
    if kind == "null":
        return "None"
    if kind == "boolean":  # as fastavro: any non-zero byte is True
        return f"buf[pos + {offset}] != 0"
    if kind in ("int", "long"):  # a varint of ``size`` bytes, its groups of 7 bits joined inline, then zig-zag
        joined = " | ".join(f"(buf[pos + {offset + i}] & 127) << {7 * i}" for i in range(size))
        return f"_zigzag({joined})"
    if kind == "string":
        return f"str(buf[pos + {offset}:pos + {offset + size}], 'utf-8')"
    return f"bytes(buf[pos + {offset}:pos + {offset + size}])"  # bytes, fixed


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: ``(value, position after it)``; ValueError past ten bytes."""
    byte = buf[pos]
    pos += 1
    value, shift = byte & 0x7F, 7
    while byte & 0x80:
        if shift > 63:
            raise ValueError("varint is too long")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    return (value >> 1) ^ -(value & 1), pos
