"""Read a TensorFlow checkpoint (tensor bundle) without TensorFlow.

A TF2 checkpoint is ``<prefix>.index`` plus ``<prefix>.data-NNNNN-of-MMMMM``. The index is a
LevelDB-style SSTable whose keys are variable names (e.g.
``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``) and whose values are serialised
``BundleEntryProto`` messages (dtype, shape, shard, offset, size); the key ``""`` holds the
``BundleHeaderProto``. The data shards hold the raw little-endian tensor bytes.

Only what the published BTSbot models need is implemented: uncompressed SSTable blocks and numeric
tensors. Protobuf messages are decoded with a small hand-rolled wire-format reader (varints and
length-delimited fields), so neither TensorFlow nor generated protobuf classes are needed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from brightscan.errors import ModelFileError

__all__ = ["read_varint", "iter_fields", "read_checkpoint", "read_index"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes crc32c, after every block

# tensorflow/core/framework/types.proto: DataType enum -> numpy dtype (numeric types only).
_TF_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    14: np.uint16,  # bfloat16 bits; not used by the published models
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return ``(value, next_pos)``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelFileError("truncated varint in protobuf/SSTable data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def iter_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield ``(field_number, value)`` for each field of a serialised protobuf message.

    Varint fields give an ``int``; length-delimited and fixed-width fields give ``bytes``.
    """
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ModelFileError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _read_block(data: bytes, offset: int, size: int) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(key, value)`` entries of one SSTable block (keys are prefix-compressed)."""
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(data):
        raise ModelFileError("SSTable block runs past the end of the index file")
    if data[end] != 0:
        raise ModelFileError(f"compressed SSTable blocks (type {data[end]}) are not supported")
    (num_restarts,) = struct.unpack_from("<I", data, end - 4)
    limit = end - 4 - 4 * num_restarts  # entries stop where the restart array starts
    pos, key = offset, b""
    while pos < limit:
        shared, pos = read_varint(data, pos)
        unshared, pos = read_varint(data, pos)
        value_len, pos = read_varint(data, pos)
        key = key[:shared] + data[pos : pos + unshared]
        pos += unshared
        yield key, data[pos : pos + value_len]
        pos += value_len


def read_index(index_path: Path) -> dict[str, bytes]:
    """Read every ``key -> serialised value`` pair of an SSTable ``.index`` file."""
    data = Path(index_path).read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise ModelFileError(f"{index_path} is too short to be a checkpoint index")
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack("<Q", footer[-8:])
    if magic != _TABLE_MAGIC:
        raise ModelFileError(f"{index_path} is not a TensorFlow checkpoint index (bad magic)")
    _, pos = read_varint(footer, 0)  # metaindex offset
    _, pos = read_varint(footer, pos)  # metaindex size
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    entries: dict[str, bytes] = {}
    for _, handle in _read_block(data, index_offset, index_size):
        block_offset, p = read_varint(handle, 0)
        block_size, _ = read_varint(handle, p)
        for key, value in _read_block(data, block_offset, block_size):
            entries[key.decode("utf-8")] = value
    return entries


def _parse_entry(value: bytes) -> dict:
    """Decode a ``BundleEntryProto`` into a dict with dtype, shape, shard_id, offset, size."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "slices": False}
    for number, field in iter_fields(value):
        if number == 1:
            entry["dtype"] = field
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            for dim_number, dim in iter_fields(field):
                if dim_number == 2:
                    entry["shape"].append(dict(iter_fields(dim)).get(1, 0))
        elif number in (3, 4, 5):
            entry[{3: "shard_id", 4: "offset", 5: "size"}[number]] = field
        elif number == 7:
            entry["slices"] = True
    return entry


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Read all numeric tensors of a TF checkpoint.

    Parameters
    ----------
    prefix : str or Path
        Checkpoint prefix, e.g. ``<savedmodel>/variables/variables`` (without ``.index``).

    Returns
    -------
    dict of str to numpy.ndarray
        Variable name to array (copied out of the shard), non-numeric entries skipped.

    Raises
    ------
    ModelFileError
        When the index or a data shard is missing, malformed or inconsistent.
    """
    prefix = Path(prefix)
    index_path = prefix.with_name(prefix.name + ".index")
    if not index_path.is_file():
        raise ModelFileError(f"checkpoint index {index_path} not found")
    raw = read_index(index_path)
    header = dict(iter_fields(raw.pop("", b"")))
    num_shards = header.get(1, 1)
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, value in sorted(raw.items()):
        entry = _parse_entry(value)
        dtype = _TF_DTYPES.get(entry["dtype"])
        if dtype is None or entry["slices"]:
            continue  # strings (the object graph) and partitioned variables are not needed
        shard = entry["shard_id"]
        if shard not in shards:
            path = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")
            if not path.is_file():
                raise ModelFileError(f"checkpoint data shard {path} not found")
            shards[shard] = path.read_bytes()
        blob = shards[shard][entry["offset"] : entry["offset"] + entry["size"]]
        count = int(np.prod(entry["shape"], dtype=np.int64))
        if len(blob) != count * np.dtype(dtype).itemsize:
            raise ModelFileError(f"checkpoint tensor {name}: size does not match its shape")
        array = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"))
        tensors[name] = array.reshape(entry["shape"]).astype(dtype, copy=True)
    return tensors
