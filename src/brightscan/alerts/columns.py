"""An array of projected records kept as rows of values: columns for the code that wants them, dicts on demand.

A Rubin alert carries ~350 earlier sources, of which the history features read eight fields. The
projected reader (:mod:`brightscan.alerts.avro_compiler`) appends each record's kept values as
one tuple (:meth:`~brightscan.alerts.avro_shapes.RecordShapes.read_array`) instead of building a
dict per record; :class:`Columns` holds those rows and hands out

- a column (:meth:`Columns.column`, a tuple of one field's values in record order), transposed
  once in C, for code that computes over the whole history (``preprocess.rubin``);
- the record at an index as a new dict (``columns[i]``, iteration), for code that reads records
  one by one (the ZTF-named view, autoscan's photometry), equal to what the dict reader gave.

Values are exactly those the whole decode gives (same Python types; None for a null). A
:class:`Columns` compares equal to any sequence of mappings holding the same records, so callers
and tests that compared lists of dicts keep working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

__all__ = ["Columns"]


class Columns(Sequence[Mapping[str, Any]]):
    """Records of one array as rows of values (``names`` order), read as columns or as dicts.

    Parameters
    ----------
    names : tuple of str
        The field names, in the order of each row's values.
    rows : list of tuple
        One tuple of values per record (taken, not copied).
    """

    __slots__ = ("_columns", "names", "rows")

    def __init__(self, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.names = names
        self.rows = rows
        self._columns: dict[str, tuple[Any, ...]] | None = None

    def column(self, name: str) -> tuple[Any, ...]:
        """The values of field ``name`` over every record, in record order.

        Raises
        ------
        KeyError
            When ``name`` is not one of :attr:`names`.
        """
        if self._columns is None:
            transposed = tuple(zip(*self.rows)) if self.rows else tuple(() for _ in self.names)
            self._columns = dict(zip(self.names, transposed))
        return self._columns[name]

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [dict(zip(self.names, row)) for row in self.rows[index]]
        return dict(zip(self.names, self.rows[index]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self.names
        return (dict(zip(names, row)) for row in self.rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Columns):
            return self.names == other.names and self.rows == other.rows
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(mine == theirs for mine, theirs in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable rows, as a list's

    def __repr__(self) -> str:
        return f"Columns({len(self.rows)} records of {', '.join(self.names) or 'no fields'})"

    def __getstate__(self) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        return self.names, self.rows

    def __setstate__(self, state: tuple[tuple[str, ...], list[tuple[Any, ...]]]) -> None:
        self.names, self.rows = state
        self._columns = None
