"""Nightly ``.tar`` / ``.tar.gz`` archives of Avro files (ZTF's public archive layout), streamed."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from brightscan.alerts.avro import decode_avro
from brightscan.alerts.records import Alert, Rejection


def read_tarball(stream: BinaryIO, source: str) -> Iterator[Alert | Rejection]:
    """Read every ``.avro`` member of an archive in stream mode, never extracting to disk.

    Stream mode (``r|*``) reads members in order with constant memory, from a local file or a
    remote one alike; a corrupt member is rejected and the next one read; a broken archive
    stream ends the archive with a rejection after the members read before.
    """
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield Rejection(None, None, source, "read", f"not a readable tar archive: {exc}")
        return
    with archive:
        members = iter(archive)
        while True:
            try:
                member = next(members)
            except StopIteration:
                return
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                yield Rejection(None, None, source, "read", f"archive is corrupt or truncated: {exc}")
                return
            if not member.isfile() or not member.name.endswith(".avro"):
                continue
            member_source = f"{source}::{member.name}"
            try:
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                yield Rejection(None, None, member_source, "read", f"cannot read archive member: {exc}")
                return
            yield from decode_avro(data, member_source)
