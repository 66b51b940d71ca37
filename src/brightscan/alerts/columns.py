"""An array of projected records kept as columns: arrays for the code that computes, dicts on demand.

A Rubin alert carries ~350 earlier sources, of which the history features read eight fields.
The projected reader (:mod:`brightscan.alerts.avro_compiler`) walks such an array checking each
record's byte layout (:meth:`~brightscan.alerts.avro_shapes.RecordShapes.read_array`) and notes
only where each record starts and which layout it has (:class:`LayoutRows`); the kept values are
then read for the whole array at once with numpy, field by field, at each layout's fixed offsets
(:func:`layout_columns`). :class:`Columns` holds the result and hands out

- a field as an array (:meth:`Columns.array`: values and a null mask), for code that computes
  over the whole history (``preprocess.rubin``);
- a field as a list of Python values (:meth:`Columns.column`), and the record at an index as a
  new dict (``columns[i]``, iteration), equal to what the dict reader gave, for code that reads
  records one by one (the ZTF-named view, autoscan's photometry).

Values are exactly those the whole decode gives: doubles as read, floats widened exactly, longs
from their varint bytes and zig-zag as Avro defines them, one-byte strings as their character,
None for a null. Fields numpy does not read here (bytes, fixed, longer strings, 10-byte varints,
a union of two value types) make the whole array read by each layout's reader instead, record by
record, with the same result. A :class:`Columns` compares equal to any sequence of mappings
holding the same records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_COLUMNS", "Columns", "LayoutRows", "layout_columns"]

_ASCII = np.array([chr(code) for code in range(128)], dtype=object)
_NUMPY_KINDS = frozenset({"null", "double", "float", "int", "long", "boolean", "string"})
#: Longest varint read with numpy: 9 bytes hold 63 bits (a 10-byte one may not fit 64).
_MAX_VARINT = 9
#: Fewest records read with numpy (a fixed cost of some tens of microseconds); fewer: their readers.
MIN_COLUMNS = 16


class Columns(Sequence[Mapping[str, Any]]):
    """Records of one array, field by field (``names`` order), read as arrays, lists or dicts.

    Build one with :meth:`from_rows` (one tuple of values per record) or :meth:`from_arrays`.
    """

    __slots__ = ("_arrays", "_lists", "_rows", "length", "names")

    def __init__(self, names: tuple[str, ...], length: int) -> None:
        self.names = names
        self.length = length
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._lists: dict[str, list[Any]] = {}
        self._rows: list[tuple[Any, ...]] | None = None

    @classmethod
    def from_rows(cls, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Columns:
        """Columns of ``rows``, one tuple of values per record (taken, not copied)."""
        columns = cls(names, len(rows))
        columns._rows = rows
        return columns

    @classmethod
    def from_arrays(cls, names: tuple[str, ...], arrays: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
                    length: int) -> Columns:
        """Columns of one ``(values, null mask or None)`` pair per name, ``length`` records each."""
        columns = cls(names, length)
        columns._arrays = dict(arrays)
        return columns

    def column(self, name: str) -> list[Any]:
        """The values of field ``name`` as Python objects (None for a null), in record order.

        Raises
        ------
        KeyError
            When ``name`` is not one of :attr:`names`.
        """
        values = self._lists.get(name)
        if values is None:
            if self._rows is not None:
                at = self.names.index(name)
                values = [row[at] for row in self._rows]
            else:
                array, nulls = self._arrays[name]
                values = array.tolist()
                if nulls is not None:
                    for index in np.flatnonzero(nulls).tolist():
                        values[index] = None
            self._lists[name] = values
        return values

    def array(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Field ``name`` as ``(values, null mask or None)``; values an object array when not numeric.

        Raises
        ------
        KeyError
            When ``name`` is not one of :attr:`names`.
        """
        got = self._arrays.get(name)
        if got is None:
            values = self.column(name)
            nulls = np.fromiter((value is None for value in values), dtype=bool, count=len(values))
            array = np.array(values, dtype=object)
            if all(type(value) is float for value in values):
                array = array.astype(np.float64)
            got = array, (nulls if nulls.any() else None)
            self._arrays[name] = got
        return got

    def rows(self) -> list[tuple[Any, ...]]:
        """One tuple of values per record, in :attr:`names` order."""
        if self._rows is None:
            self._rows = list(zip(*(self.column(name) for name in self.names))) if self.names else \
                [() for _ in range(self.length)]
        return self._rows

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [dict(zip(self.names, row)) for row in self.rows()[index]]
        return dict(zip(self.names, self.rows()[index]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self.names
        return (dict(zip(names, row)) for row in self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(mine == theirs for mine, theirs in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are not hashable

    def __repr__(self) -> str:
        return f"Columns({self.length} records of {', '.join(self.names) or 'no fields'})"

    def __getstate__(self) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        return self.names, self.rows()

    def __setstate__(self, state: tuple[tuple[str, ...], list[tuple[Any, ...]]]) -> None:
        names, rows = state
        self.names, self.length, self._rows, self._arrays, self._lists = names, len(rows), rows, {}, {}


class LayoutRows:
    """Where each record of an array starts and which layout it has, gathered while walking it.

    A layout index points into :attr:`layouts` (the reading ``RecordShapes``' layouts, which only
    grow while it reads); -1 marks a record read the general way, whose values are
    ``slow[i]``. Records walked one by one are appended to :attr:`starts` and :attr:`ids`;
    stretches walked at once come as arrays (:meth:`add_run`); :meth:`arrays` joins them in order.
    """

    __slots__ = ("_done", "_pieces", "buf", "ids", "layouts", "slow", "starts")

    def __init__(self) -> None:
        self.buf: bytes = b""
        self.starts: list[int] = []
        self.ids: list[int] = []
        self.layouts: tuple[tuple[Any, ...], ...] = ()
        self.slow: dict[int, tuple[Any, ...] | None] = {}
        self._pieces: list[tuple[np.ndarray, np.ndarray]] = []
        self._done = 0  # records in _pieces

    def __len__(self) -> int:
        return self._done + len(self.starts)

    def add_run(self, starts: np.ndarray, ids: np.ndarray) -> None:
        """Records walked at once, after those noted so far."""
        self._flush()
        self._pieces.append((starts, ids))
        self._done += len(starts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every record's start and layout index, in order (int64, intp)."""
        self._flush()
        if len(self._pieces) == 1:
            return self._pieces[0]
        if not self._pieces:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.intp)
        return (np.concatenate([piece[0] for piece in self._pieces]),
                np.concatenate([piece[1] for piece in self._pieces]))

    def _flush(self) -> None:
        if self.starts:  # emptied in place: read_array holds these lists
            self._pieces.append((np.array(self.starts, dtype=np.int64), np.array(self.ids, dtype=np.intp)))
            self._done += len(self.starts)
            del self.starts[:], self.ids[:]


def layout_columns(names: tuple[str, ...], walked: LayoutRows) -> Columns | list[dict[str, Any] | None]:
    """The kept values of every walked record, as :class:`Columns`.

    A null item (an item typed ``[record, "null"]``) gives the dict reader's list of dicts and
    None instead, for the caller to judge (Rubin's readers refuse it).

    Raises
    ------
    IndexError, ValueError
        On data no layout can hold (a one-byte string that is not UTF-8), as the record readers do.
    """
    count = len(walked)
    if any(walked.slow[index] is None for index in walked.slow):
        rows = _rows_one_by_one(walked)
        return [None if row is None else dict(zip(names, row)) for row in rows]
    plan = _plan(walked.layouts, len(names)) if count >= MIN_COLUMNS and not walked.slow and \
        len(walked.buf) >= 16 else None
    if plan is None:  # few records, a field numpy does not read here, or records read the general way
        return Columns.from_rows(names, _rows_one_by_one(walked))
    u8 = np.frombuffer(walked.buf, dtype=np.uint8)
    starts, ids = walked.arrays()
    arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for kind, fields, offsets, nulls, sizes in plan:
        at = starts[:, None] + offsets[ids]  # (records, fields): where each value starts
        null = nulls[ids] if nulls is not None else None
        if null is not None:
            at[null] = 0  # read something harmless; the mask says null
        values = _read(kind, u8, at, sizes[ids] if kind in ("int", "long") else None, null)
        for column, field in enumerate(fields):
            arrays[names[field]] = values[:, column], (null[:, column] if null is not None and
                                                       null[:, column].any() else None)
    return Columns.from_arrays(names, arrays, count)


def _read(kind: str, u8: np.ndarray, at: np.ndarray, sizes: np.ndarray | None,
          null: np.ndarray | None) -> np.ndarray:
    """The values of one kind at byte offsets ``at`` (records x fields)."""
    if kind == "null":
        return np.full(at.shape, None, dtype=object)
    if kind in ("double", "float"):  # one unaligned view of the buffer: the number starting at every byte
        width = 8 if kind == "double" else 4
        every = np.ndarray((len(u8) - width + 1,), dtype="<f8" if width == 8 else "<f4", buffer=u8, strides=(1,))
        return every[at].astype(np.float64)
    if kind == "boolean":  # as fastavro: any non-zero byte is True
        return u8[at] != 0
    if kind == "string":  # one byte each (the plan says): its ASCII character
        codes = u8[at] if null is None else np.where(null, 0, u8[at])
        if (codes >= 128).any():
            raise ValueError("a one-byte string is not UTF-8")
        return _ASCII[codes]
    # int, long: a varint of a fixed size per layout, its 7-bit groups joined, then zig-zag
    if len(u8) >= 16 and int(at.max()) <= len(u8) - 9:
        return _zigzag(_varints(u8, at, sizes))
    widest = int(sizes.max())
    span = np.arange(widest)
    raw = u8[np.minimum(at[..., None] + span, len(u8) - 1)].astype(np.uint64) & np.uint64(127)
    raw[span >= sizes[..., None]] = 0
    value = (raw << (np.uint64(7) * span.astype(np.uint64))).sum(axis=-1, dtype=np.uint64)  # disjoint bits
    return _zigzag(value)


def _zigzag(value: np.ndarray) -> np.ndarray:
    """Avro's zig-zag decoding of unsigned 64-bit values, as int64."""
    return ((value >> np.uint64(1)) ^ (np.uint64(0) - (value & np.uint64(1)))).view(np.int64)


#: Keeps the first ``k`` bytes of a little-endian word, for ``k`` = 0 to 9.
_FIRST_BYTES = np.array([(1 << (8 * min(k, 8))) - 1 for k in range(10)], dtype=np.uint64)


def _varints(u8: np.ndarray, at: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Varints of ``sizes`` bytes (at most 9) at ``at``, their 7-bit groups joined (no zig-zag).

    The first eight bytes are read as one little-endian word (an unaligned view of the buffer:
    the word starting at every byte), their high bits dropped and the 7-bit groups packed in
    three steps (pairs, fours, eights); a ninth byte adds bits 56 to 62. Needs ``at + 9 <= len(u8)``.
    """
    words = np.ndarray((len(u8) - 7,), dtype="<u8", buffer=u8, strides=(1,))
    uniform = int(sizes.flat[0]) if sizes.size and (sizes == sizes.flat[0]).all() else None
    if uniform is not None:  # one size for all (a record type's ids): no per-record masks
        x = words[at] & (_FIRST_BYTES[uniform] & np.uint64(0x7F7F7F7F7F7F7F7F))
    else:
        x = words[at] & _FIRST_BYTES[sizes] & np.uint64(0x7F7F7F7F7F7F7F7F)
    x = (x & np.uint64(0x007F007F007F007F)) | ((x & np.uint64(0x7F007F007F007F00)) >> np.uint64(1))
    x = (x & np.uint64(0x00003FFF00003FFF)) | ((x & np.uint64(0x3FFF00003FFF0000)) >> np.uint64(2))
    x = (x & np.uint64(0x000000000FFFFFFF)) | ((x & np.uint64(0x0FFFFFFF00000000)) >> np.uint64(4))
    if uniform is not None and uniform < 9:
        return x
    ninth = (u8[at + 8].astype(np.uint64) & np.uint64(127)) << np.uint64(56)
    return x | ninth if uniform == 9 else x | np.where(sizes == 9, ninth, np.uint64(0))


#: Plans per layouts tuple (by identity, the tuple kept alive beside its plan).
_PLANS: dict[int, tuple[tuple[tuple[Any, ...], ...], Any]] = {}


def _plan(layouts: tuple[tuple[Any, ...], ...], width: int) -> list[tuple[Any, ...]] | None:
    """How to read each kept field with numpy, fields of one kind together; None when it cannot.

    One entry per kind: ``(kind, field indices, offsets, nulls, sizes)``, the last three arrays
    ``(layouts, fields)`` (nulls None when no layout has one of those fields null).
    """
    cached = _PLANS.get(id(layouts))
    if cached is not None and cached[0] is layouts:
        return cached[1]
    groups: dict[str, list[int]] = {}
    plan: list[tuple[Any, ...]] | None = []
    for field in range(width):
        kinds = {layout[7][field][0] for layout in layouts} - {"null"}
        kind = kinds.pop() if len(kinds) == 1 else "null" if not kinds else None
        sizes = [layout[7][field][2] for layout in layouts if layout[7][field][0] != "null"]
        if kind is None or kind not in _NUMPY_KINDS or (kind == "string" and set(sizes) != {1}) or \
                (kind in ("int", "long") and max(sizes) > _MAX_VARINT):
            plan = None
            break
        groups.setdefault(kind, []).append(field)
    if plan is not None:
        for kind, fields in groups.items():
            specs = [[layout[7][field] for field in fields] for layout in layouts]
            nulls = np.array([[spec[0] == "null" for spec in row] for row in specs], dtype=bool)
            plan.append((kind, tuple(fields), np.array([[spec[1] for spec in row] for row in specs], dtype=np.int64),
                         nulls if nulls.any() else None,
                         np.array([[spec[2] for spec in row] for row in specs], dtype=np.int64)))
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[id(layouts)] = (layouts, plan)
    return plan


def _rows_one_by_one(walked: LayoutRows) -> list[tuple[Any, ...] | None]:
    layouts, buf, slow = walked.layouts, walked.buf, walked.slow
    starts, ids = walked.arrays()
    return [slow[index] if layout < 0 else layouts[layout][3](buf, start)
            for index, (start, layout) in enumerate(zip(starts.tolist(), ids.tolist()))]
