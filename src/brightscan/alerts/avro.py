"""ZTF Avro container files: one or many packets per file, writer schema embedded and authoritative."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

import fastavro

from brightscan.alerts.records import Alert, Rejection, alert_from_record

#: Avro container files start with these four bytes.
AVRO_MAGIC = b"Obj\x01"


def read_avro_stream(stream: BinaryIO, source: str) -> Iterator[Alert | Rejection]:
    """Decode every packet of one Avro container, lazily.

    A file that is not Avro, or breaks mid-way, yields a :class:`Rejection` for what could not be
    read; packets decoded before the break are still yielded.
    """
    head = stream.read(4)
    if head != AVRO_MAGIC:
        what = "file is empty" if not head else "not an Avro container file (bad magic bytes)"
        yield Rejection(None, None, source, "read", what)
        return
    stream.seek(0)
    try:
        reader = fastavro.reader(stream)
    except Exception as exc:  # fastavro raises many types for a broken header
        yield Rejection(None, None, source, "read", f"unreadable Avro header: {_describe(exc)}")
        return
    index = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except Exception as exc:  # truncated block, bad sync marker, corrupt varint, ...
            yield Rejection(None, None, f"{source}#{index}", "read",
                            f"corrupt Avro data after {index} record(s): {_describe(exc)}")
            return
        member = source if index == 0 else f"{source}#{index}"
        yield alert_from_record(record, member)
        index += 1


def decode_avro(data: bytes, source: str = "<bytes>") -> Iterator[Alert | Rejection]:
    """Decode an in-memory Avro container (a Kafka message value, a tar member)."""
    return read_avro_stream(io.BytesIO(data), source)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
