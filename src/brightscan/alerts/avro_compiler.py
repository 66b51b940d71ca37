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
hand to fastavro, whose loop would append items until memory runs out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from fastavro.read import LOGICAL_READERS

#: ``decode(buf, pos) -> (record, new_pos)`` over a bytes-like buffer.
Decoder = Callable[[bytes, int], tuple[dict[str, Any], int]]

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


class UnsupportedSchema(ValueError):
    """The schema uses a construct this compiler does not generate code for."""


class ItemCountError(Exception):
    """An array or map claims more items than bytes remain: never iterated, never retried.

    Not a ``ValueError``, so that no caller mistakes it for damage fastavro should re-read.
    """


def _too_many_items(count: int, left: int) -> ItemCountError:
    return ItemCountError(f"an array or map claims {count} items with {left} bytes left in its block")


def compile_reader(schema: dict[str, Any]) -> Decoder:
    """Generate the decoding function of a (JSON-parsed, not fastavro-parsed) writer schema.

    Raises
    ------
    UnsupportedSchema
        For types outside the compiled subset; decode with fastavro instead.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsupportedSchema("the top-level schema is not a record")
    builder = _Builder()
    env: dict[str, Any] = {
        "_float": struct.Struct("<f").unpack_from,
        "_double": struct.Struct("<d").unpack_from,
        "_long": _read_long,
        "_too_many": _too_many_items,
    }
    try:
        top = builder.record(schema, schema.get("namespace", ""))
        env.update(builder.constants)
        # Field names enter the code only through repr(): the schema cannot inject code.
        exec(compile("\n\n".join(builder.functions), "<avro-compiled>", "exec"), env)  # noqa: S102
    except (KeyError, TypeError, RecursionError, SyntaxError) as exc:  # malformed or too deeply nested
        raise UnsupportedSchema(f"cannot compile this schema ({type(exc).__name__}: {exc})") from None
    return env[top]


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint that did not fit the inline one-byte case."""
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


class _Builder:
    """Emits one Python function per named record type."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.names: dict[str, str] = {}  # full name -> function name
        self.constants: dict[str, Any] = {}  # enum symbols, logical readers and their schemas
        self.counter = 0

    def constant(self, value: Any) -> str:
        """A name the generated code uses for ``value``."""
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: dict[str, Any], namespace: str) -> str:
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        function = f"_record_{len(self.names)}"
        self.names[name] = function  # registered first: a record may refer to itself
        own_namespace = name.rpartition(".")[0]
        lines = [f"def {function}(buf, pos):"]
        keys = []
        for index, field in enumerate(schema["fields"]):
            self.value(field["type"], f"v{index}", own_namespace, 1, lines)
            keys.append(f"{field['name']!r}: v{index}")
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

    def _logical(self, kind: dict[str, Any], target: str, namespace: str, depth: int, lines: list[str]) -> None:
        # fastavro converts after reading the base type, with the writer schema; unknown: base type
        base = {key: value for key, value in kind.items() if key != "logicalType"}
        convert = LOGICAL_READERS.get(f"{base.get('type')}-{kind['logicalType']}")
        self.value(base, target, namespace, depth, lines)
        if convert is not None:
            lines.append(f"{'    ' * depth}{target} = {self.constant(convert)}({target}, {self.constant(kind)}, None)")

    def _enum_or_fixed(self, schema: dict[str, Any], namespace: str) -> str:
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        function = f"_named_{len(self.names)}"
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
        item, count, key = f"item{self.counter}", f"count{self.counter}", f"key{self.counter}"
        self.counter += 1
        is_map = schema["type"] == "map"
        lines += [
            f"{pad}{target} = {{}}" if is_map else f"{pad}{target} = []",
            f"{pad}while True:",
            f"{pad}    {count}, pos = _long(buf, pos)",
            f"{pad}    if {count} == 0:",
            f"{pad}        break",
            f"{pad}    if {count} < 0:  # a block with its byte size",
            f"{pad}        {count} = -{count}",
            f"{pad}        _, pos = _long(buf, pos)",
            # every item takes a byte (items of no bytes at all are refused too): never loop past the data
            f"{pad}    if {count} > len(buf) - pos:",
            f"{pad}        raise _too_many({count}, len(buf) - pos)",
            f"{pad}    for _ in range({count}):",
        ]
        if is_map:
            lines.extend(f"{pad}        {line}" for line in _primitive("string", key))
            self.value(schema["values"], item, namespace, depth + 2, lines)
            lines.append(f"{pad}        {target}[{key}] = {item}")
        else:
            self.value(schema["items"], item, namespace, depth + 2, lines)
            lines.append(f"{pad}        {target}.append({item})")

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
