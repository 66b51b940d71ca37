"""Compile an Avro writer schema into a Python decoding function, about twice as fast as fastavro.

fastavro interprets the schema for every field it reads (a chain of type dispatches per value).
ZTF packets spend most of their decoding time in ~30 ``prv_candidates`` records of ~60 fields each,
so we generate, once per writer schema, straight-line Python with one function per record type:
each field is read inline (a varint, a ``struct.unpack_from``, a union index check) and the record
is built as one dict display. The output equals ``fastavro.schemaless_reader``'s exactly (same
keys in the same order, same Python types and values); the tests check it on every real packet and
on generated records.

Every Avro type is compiled: records, arrays, maps, unions, enums, fixed, named references and all
primitives, so the exports of Spark and brokers (nullable unions, maps of broker columns,
booleans, timestamps) stay on the fast path too. Logical types (``timestamp-micros``, ``decimal``,
``uuid``, ...) are converted by fastavro's own logical readers, called from the generated code, so
values match exactly; a logical type fastavro ignores is read as its base type, as fastavro does.
:func:`compile_reader` raises :class:`UnsupportedSchema` for a schema it cannot compile (an
undefined name, nesting deeper than Python's parser allows), and the caller keeps fastavro. A
decoding function raises on malformed data (``IndexError``, ``ValueError``, ``struct.error``,
``UnicodeDecodeError``); the caller then lets fastavro decide, so errors read exactly as before.
The one exception is an array or map block claiming more items than bytes remain in the buffer
(2^60 nulls in ten bytes): that raises :class:`ItemCountError` at once, which the caller must not
hand to fastavro, whose loop would append items until memory runs out. ``max_items`` bounds every
array or map block further (a message of a few MB can still claim a million small records, each a
dict of a hundred fields once decoded): a larger claim raises :class:`ItemCountError` too.

A *projection* (``{top-level field: names kept}``) decodes only what a caller reads from the long
parts of a packet: every record nested in a projected field keeps only the named fields, and a
field projected to no names is walked over and left out of the result. Rubin's history records
(~350 of ~100 fields per LSSTCam alert) are its use. The fields left out are stepped over by one
regular expression per record type (:mod:`brightscan.alerts.avro_skip`), in C, instead of a Python
statement per field; a record the expression does not match (a string longer than 63 bytes, an
array inside) is decoded exactly instead, then projected, so the result never depends on the fast
path. An array of projected records (items a record, or ``[record, "null"]`` as Spark writes
them) is walked in one call per block (:meth:`~brightscan.alerts.avro_shapes.RecordShapes.read_array`)
and its kept fields read for all items at once into
:class:`~brightscan.alerts.columns.Columns`, which reads as a list of the projected dicts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from fastavro.read import LOGICAL_READERS

from brightscan.alerts.avro_shapes import RecordShapes, read_items
from brightscan.alerts.avro_shapes import read_long as _read_long
from brightscan.alerts.avro_skip import field_patterns, record_pattern
from brightscan.alerts.columns import LayoutRows, layout_columns

#: ``decode(buf, pos) -> (record, new_pos)`` over a bytes-like buffer.
Decoder = Callable[[bytes, int], tuple[dict[str, Any], int]]

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


class UnsupportedSchema(ValueError):
    """The schema uses a construct this compiler does not generate code for."""


class ItemCountError(Exception):
    """An array or map claims more items than bytes remain: never iterated, never retried.

    Not a ``ValueError``, so that no caller mistakes it for damage fastavro should re-read.
    """


#: What a projection says: top-level field name -> names of the fields kept in its records.
Projection = Mapping[str, frozenset[str]]


def _too_many_items(count: int, left: int, limit: int | None = None) -> ItemCountError:
    if limit is not None and count > limit:
        return ItemCountError(f"an array or map claims {count} items, more than allowed "
                              f"(max_array_items={limit})")
    return ItemCountError(f"an array or map claims {count} items with {left} bytes left in its block")


def compile_reader(schema: dict[str, Any], projection: Projection | None = None,
                   max_items: int | None = None) -> Decoder:
    """Generate the decoding function of a (JSON-parsed, not fastavro-parsed) writer schema.

    Parameters
    ----------
    schema : dict
        The writer schema as ``json.loads`` gives it (or fastavro's ``expand_schema``).
    projection : mapping of str to frozenset of str, optional
        Top-level fields whose nested records keep only the named fields; an empty set leaves
        the field out of the result (see the module docstring).
    max_items : int, optional
        Most items one array or map block may claim (:class:`ItemCountError` beyond).

    Raises
    ------
    UnsupportedSchema
        For types outside the compiled subset; decode with fastavro instead.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsupportedSchema("the top-level schema is not a record")
    builder = _Builder(projection or {})
    env: dict[str, Any] = {
        "_max_items": max_items if max_items is not None else float("inf"),
        "_float": struct.Struct("<f").unpack_from,
        "_double": struct.Struct("<d").unpack_from,
        "_long": _read_long,
        "_too_many": _too_many_items,
        "_walked": LayoutRows,
        "_layout_columns": layout_columns,
    }
    try:
        top = builder.record(schema, schema.get("namespace", ""), top=True)
        env.update(builder.constants)
        # Field names enter the code only through repr(): the schema cannot inject code.
        exec(compile("\n\n".join(builder.functions), "<avro-compiled>", "exec"), env)  # noqa: S102
    except (KeyError, TypeError, RecursionError, SyntaxError) as exc:  # malformed or too deeply nested
        raise UnsupportedSchema(f"cannot compile this schema ({type(exc).__name__}: {exc})") from None
    return env[top]


class _Builder:
    """Emits one Python function per named record type."""

    def __init__(self, projection: Projection) -> None:
        self.functions: list[str] = []
        self.names: dict[str, str] = {}  # full name -> function name
        self.schemas: dict[str, dict[str, Any]] = {}  # full name -> record schema, for projections
        self.constants: dict[str, Any] = {}  # enum symbols, logical readers and their schemas
        self.counter = 0
        self.projection = projection
        self.keep: frozenset[str] | None = None  # inside a projected field: the names its records keep

    def unique(self) -> int:
        """A number no other generated name uses (a type may be generated twice: whole and projected)."""
        self.counter += 1
        return self.counter

    def constant(self, value: Any) -> str:
        """A name the generated code uses for ``value``."""
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: dict[str, Any], namespace: str, top: bool = False) -> str:
        if self.keep is not None:
            return self.projected(schema, namespace, self.keep)
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        function = f"_record_{self.unique()}"
        self.names[name] = function  # registered first: a record may refer to itself
        self.schemas[name] = schema
        own_namespace = name.rpartition(".")[0]
        lines = [f"def {function}(buf, pos):"]
        keys = []
        for index, field in enumerate(schema["fields"]):
            self.keep = self.projection.get(field["name"]) if top else None
            self.value(field["type"], f"v{index}", own_namespace, 1, lines)
            if self.keep is None or self.keep:  # a field projected to nothing is walked, not kept
                keys.append(f"{field['name']!r}: v{index}")
            self.keep = None
        lines.append("    return {" + ", ".join(keys) + "}, pos")
        self.functions.append("\n".join(lines))
        return function

    def value(self, kind: Any, target: str, namespace: str, depth: int, lines: list[str]) -> None:
        """Append code reading one value of type ``kind`` into ``target``, advancing ``pos``."""
        pad = "    " * depth
        if isinstance(kind, dict) and "logicalType" in kind and kind.get("type") not in ("fixed", "enum"):
            self._logical(kind, target, namespace, depth, lines)
            return
        if isinstance(kind, dict) and kind.get("type") in _PRIMITIVES:
            kind = kind["type"]
        if isinstance(kind, str):
            if kind in _PRIMITIVES:
                lines.extend(pad + line for line in _primitive(kind, target))
            elif self.keep is not None and self._schema_of(kind, namespace) is not None:
                projected = self.projected(self._schema_of(kind, namespace), namespace, self.keep)
                lines.append(f"{pad}{target}, pos = {projected}(buf, pos)")
            else:
                lines.append(f"{pad}{target}, pos = {self._named(kind, namespace)}(buf, pos)")
        elif isinstance(kind, list):
            self._union(kind, target, namespace, depth, lines)
        elif isinstance(kind, dict) and kind.get("type") == "record":
            lines.append(f"{pad}{target}, pos = {self.record(kind, namespace)}(buf, pos)")
        elif isinstance(kind, dict) and kind.get("type") in ("array", "map"):
            self._repeated(kind, target, namespace, depth, lines)
        elif isinstance(kind, dict) and kind.get("type") in ("enum", "fixed"):
            lines.append(f"{pad}{target}, pos = {self._enum_or_fixed(kind, namespace)}(buf, pos)")
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def projected(self, schema: dict[str, Any], namespace: str, keep: frozenset[str]) -> str:
        """A function reading a record but returning only the fields in ``keep`` (None for none)."""
        self.keep = None  # the exact reader and the kept fields are read whole
        exact = self.record(schema, namespace)
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        own_namespace = name.rpartition(".")[0]
        fields = schema["fields"]
        kept = [index for index, field in enumerate(fields) if field["name"] in keep]
        function = f"_projected_{self.unique()}"
        pick = ("None" if not kept else
                "{" + ", ".join(f"{fields[i]['name']!r}: record[{fields[i]['name']!r}]" for i in kept) + "}")
        lines = [f"def {function}(buf, pos):",
                 f"    record, pos = {exact}(buf, pos)",  # the exact path, kept for the fallback
                 f"    return {pick}, pos"]
        pattern = record_pattern(fields, kept, own_namespace, self.schemas)
        parts = field_patterns(fields, own_namespace, self.schemas) if pattern is not None else None
        shapes = RecordShapes.build(fields, kept, parts) if parts is not None else None
        if pattern is not None:  # the fast path first: one match steps over the whole record
            match = self.constant(pattern.match)
            fast = [f"    found = {match}(buf, pos)", "    if found is not None:", "        at = found.start"]
            values = []
            for group, index in enumerate(kept, start=1):  # each kept field read where its group starts
                fast.append(f"        pos = at({group})")
                self.value(fields[index]["type"], f"f{group}", own_namespace, 2, fast)
                values.append(f"{fields[index]['name']!r}: f{group}")
            result = "{" + ", ".join(values) + "}" if kept else "None"
            fast.append(f"        return {result}, found.end()")
            lines[1:1] = fast
        if shapes is not None:  # faster still: a layout seen before (avro_shapes)
            lines[1:1] = [f"    got = {self.constant(shapes.read)}(buf, pos)", "    if got is not None:",
                          "        return got"]
        self.functions.append("\n".join(lines))
        self.keep = keep
        return function

    def _logical(self, kind: dict[str, Any], target: str, namespace: str, depth: int, lines: list[str]) -> None:
        # fastavro converts after reading the base type, with the writer schema; unknown: base type
        base = {key: value for key, value in kind.items() if key != "logicalType"}
        convert = LOGICAL_READERS.get(f"{base.get('type')}-{kind['logicalType']}")
        self.value(base, target, namespace, depth, lines)
        if convert is not None:
            lines.append(f"{'    ' * depth}{target} = {self.constant(convert)}({target}, {self.constant(kind)}, None)")

    def _enum_or_fixed(self, schema: dict[str, Any], namespace: str) -> str:
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        function = f"_named_{self.unique()}"
        self.names[name] = function
        lines = [f"def {function}(buf, pos):"]
        if schema["type"] == "enum":
            lines += [f"    {line}" for line in _primitive("int", "index")]
            lines += ["    if index < 0:",  # fastavro would index from the end: let it decide
                      "        raise ValueError('negative enum index')",
                      f"    value = {self.constant(tuple(schema['symbols']))}[index]"]
        else:
            size = int(schema["size"])
            lines += [f"    end = pos + {size}",
                      "    if end > len(buf):",
                      "        raise ValueError('fixed runs past the buffer')",
                      "    value = bytes(buf[pos:end])",
                      "    pos = end"]
        convert = LOGICAL_READERS.get(f"{schema['type']}-{schema.get('logicalType')}")
        if convert is not None:
            lines.append(f"    value = {self.constant(convert)}(value, {self.constant(schema)}, None)")
        lines.append("    return value, pos")
        self.functions.append("\n".join(lines))
        return function

    def _union(self, branches: list, target: str, namespace: str, depth: int, lines: list[str]) -> None:
        pad = "    " * depth
        lines.append(f"{pad}index = buf[pos]")
        lines.append(f"{pad}pos += 1")
        for number, branch in enumerate(branches):
            lines.append(f"{pad}{'if' if number == 0 else 'elif'} index == {2 * number}:")  # zig-zag
            self.value(branch, target, namespace, depth + 1, lines)
        lines.append(f"{pad}else:")
        lines.append(f"{pad}    raise ValueError('union index out of range')")

    def _repeated(self, schema: dict[str, Any], target: str, namespace: str, depth: int, lines: list[str]) -> None:
        # arrays and maps: blocks of items until a zero count; a map item is a string key, then the value
        pad = "    " * depth
        number = self.unique()
        item, count, key = f"item{number}", f"count{number}", f"key{number}"
        is_map = schema["type"] == "map"
        items = None if is_map else self._projected_items(schema["items"], namespace)
        lines += [
            f"{pad}{target} = {{}}" if is_map else f"{pad}{target} = []" if items is None else f"{pad}{target} = _walked()",
            f"{pad}while True:",
            f"{pad}    {count}, pos = _long(buf, pos)",
            f"{pad}    if {count} == 0:",
            f"{pad}        break",
            f"{pad}    if {count} < 0:  # a block with its byte size",
            f"{pad}        {count} = -{count}",
            f"{pad}        _, pos = _long(buf, pos)",
            # every item takes a byte (items of no bytes at all are refused too): never loop past the data
            f"{pad}    if {count} > len(buf) - pos or {count} > _max_items:",
            f"{pad}        raise _too_many({count}, len(buf) - pos, _max_items)",
            f"{pad}    for _ in range({count}):",
        ]
        if is_map:
            lines.extend(f"{pad}        {line}" for line in _primitive("string", key))
            self.value(schema["values"], item, namespace, depth + 2, lines)
            lines.append(f"{pad}        {target}[{key}] = {item}")
            return
        if items is None:
            self.value(schema["items"], item, namespace, depth + 2, lines)
            lines.append(f"{pad}        {target}.append({item})")
            return
        # an array of projected records: rows of kept values, one read_array call per block (avro_shapes)
        read_array, general, names = items
        del lines[-1]  # no loop per item here: read_array walks the block
        lines.append(f"{pad}    pos = {read_array}(buf, pos, {count}, {target if names else 'None'}, {general})")
        lines.append(f"{pad}{target} = _layout_columns({self.constant(names)}, {target})" if names else
                     f"{pad}{target} = None")

    def _projected_items(self, kind: Any, namespace: str) -> tuple[str, str, tuple[str, ...]] | None:
        """For the items of an array in a projected field: ``(read_array, general item reader, kept names)``.

        Items are records, or unions of one record and null (Spark's exports). None otherwise,
        and outside projected fields: those arrays are read item by item.
        """
        if self.keep is None:
            return None
        branches = kind if isinstance(kind, list) else [kind]
        schemas = [self._schema_of(b, namespace) if isinstance(b, str) else b if isinstance(b, dict) and
                   b.get("type") == "record" else None for b in branches]
        records = [index for index, schema in enumerate(schemas) if schema is not None]
        if len(records) != 1 or any(b != "null" for i, b in enumerate(branches) if i != records[0]):
            return None
        schema, keep = schemas[records[0]], self.keep
        projected = self.projected(schema, namespace, keep)
        fields = schema["fields"]
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        kept = [index for index, field in enumerate(fields) if field["name"] in keep]
        names = tuple(fields[index]["name"] for index in kept)
        general = f"_item_{self.unique()}"
        lines = [f"def {general}(buf, pos):"]
        if isinstance(kind, list):  # the item's union index: the record's branch, or null
            lines += ["    index = buf[pos]", "    pos += 1",
                      *(f"    if index == {2 * i}:\n        return None, pos" for i, b in enumerate(branches) if b == "null"),
                      f"    if index != {2 * records[0]}:", "        raise ValueError('union index out of range')"]
        lines += [f"    record, pos = {projected}(buf, pos)",
                  "    return (" + "".join(f"record[{n!r}], " for n in names) + "), pos" if names else
                  "    return (), pos"]
        self.functions.append("\n".join(lines))
        parts = field_patterns(fields, name.rpartition(".")[0], self.schemas)
        prefix = bytes([2 * records[0]]) if isinstance(kind, list) else b""
        shapes = RecordShapes.build(fields, kept, parts, prefix) if parts is not None else None
        self.keep = keep
        return self.constant(shapes.read_array if shapes is not None else read_items), general, names

    def _schema_of(self, name: str, namespace: str) -> dict[str, Any] | None:
        for candidate in (name, _full_name(name, namespace)):
            if candidate in self.schemas:
                return self.schemas[candidate]
        return None

    def _named(self, name: str, namespace: str) -> str:
        for candidate in (name, _full_name(name, namespace)):
            if candidate in self.names:
                return self.names[candidate]
        raise UnsupportedSchema(f"unknown or unsupported named type {name!r}")


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _primitive(kind: str, target: str) -> list[str]:
    if kind == "null":
        return [f"{target} = None"]
    if kind == "boolean":  # fastavro reads any non-zero byte as True
        return [f"{target} = buf[pos] != 0", "pos += 1"]
    if kind == "float":
        return [f"{target} = _float(buf, pos)[0]", "pos += 4"]
    if kind == "double":
        return [f"{target} = _double(buf, pos)[0]", "pos += 8"]
    varint = [  # the one-byte case inline: most ints and lengths in a packet are small
        "byte = buf[pos]",
        "if byte < 0x80:",
        f"    {target} = (byte >> 1) ^ -(byte & 1)",
        "    pos += 1",
        "else:",
        f"    {target}, pos = _long(buf, pos)",
    ]
    if kind in ("int", "long"):
        return varint
    end = "end"
    decode = f"str(buf[pos:{end}], 'utf-8')" if kind == "string" else f"bytes(buf[pos:{end}])"
    return [
        *varint,
        f"{end} = pos + {target}",
        f"if {target} < 0 or {end} > len(buf):",
        "    raise ValueError('length out of range')",
        f"{target} = {decode}",
        f"pos = {end}",
    ]
