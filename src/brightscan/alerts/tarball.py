"""Nightly ``.tar`` / ``.tar.gz`` archives of Avro files (ZTF's public archive layout), streamed.

Compressed archives are inflated by us, in bounded pieces (ISA-L's gzip reader, the standard
library's bz2 and xz readers), and ``tarfile`` reads the plain stream: its own stream-mode inflater
keeps whatever one compressed chunk inflates to (10 MB of a gzip bomb per 10 kB) and copies it
for every 10 kB block it skips, so a 1 GiB bomb member cost it 280 MB and 28 s; ours costs a
constant few MB and about 2 s.

Bounded (:class:`~brightscan.alerts.limits.ReadLimits`): a member is read whole only when its
header says it fits ``max_member_bytes`` (a larger one is rejected and streamed past, never held);
an extended header (pax, GNU long name) larger than ``max_tar_header_bytes`` ends the archive
before ``tarfile`` reads it; after ``max_archive_members`` members the rest of the archive is
rejected; the member list ``tarfile`` keeps for random access is emptied as we go, so memory
does not grow with the number of members.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from isal import igzip, isal_zlib

from brightscan.alerts.avro import decode_avro
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.records import Alert, Rejection
from brightscan.errors import LimitExceeded

#: Member types whose data ``tarfile`` reads whole into memory as header information.
_HEADER_TYPES = frozenset((tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                           tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK))
_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, isal_zlib.error, lzma.LZMAError)
#: Leading bytes of each compressed stream we inflate ourselves.
_MAGIC = ((b"\x1f\x8b", igzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


def read_tarball(stream: BinaryIO, source: str, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Read every ``.avro`` member of an archive in stream mode, never extracting to disk.

    Stream mode (``r|*``) reads members in order with constant memory, from a local file or a
    remote one alike; a corrupt or oversized member is rejected and the next one read; a broken
    archive stream, or an archive beyond the limits, ends with a rejection after the members read
    before.
    """
    try:
        archive = tarfile.open(fileobj=_plain(stream), mode="r|",
                               tarinfo=_bounded_tarinfo(limits.max_tar_header_bytes))
    except (*_ERRORS, LimitExceeded) as exc:
        yield _broken(source, exc, "not a readable tar archive", 0)
        return
    with archive:
        yield from _members(archive, source, limits)


def _members(archive: tarfile.TarFile, source: str, limits: ReadLimits) -> Iterator[Alert | Rejection]:
    members = iter(archive)
    for number in range(limits.max_archive_members + 1):
        try:
            member = next(members)
        except StopIteration:
            return
        except (*_ERRORS, LimitExceeded) as exc:
            yield _broken(source, exc, "archive is corrupt or truncated", number)
            return
        archive.members.clear()  # stream mode needs none of them back: memory stays flat
        if number == limits.max_archive_members:
            yield Rejection(None, None, source, "read",
                            f"archive has more than {number} members; the rest is not read "
                            f"({limits.describe('max_archive_members')})")
            return
        if not member.isfile() or not member.name.endswith(".avro"):
            continue
        member_source = f"{source}::{member.name}"
        if member.size > limits.max_member_bytes:  # streamed past by the next header read, never held
            yield Rejection(None, None, member_source, "read",
                            f"archive member of {member.size} bytes is larger than allowed "
                            f"({limits.describe('max_member_bytes')})")
            continue
        try:
            handle = archive.extractfile(member)
            data = handle.read(member.size) if handle is not None else b""  # within the limit, checked above
        except _ERRORS as exc:
            yield Rejection(None, None, member_source, "read", f"cannot read archive member: {exc}")
            return
        yield from decode_avro(data, member_source, limits)


def _plain(stream: BinaryIO) -> BinaryIO:
    """The archive's plain tar bytes: inflated in bounded pieces when compressed."""
    head = stream.read(6)
    rest = _Prefixed(head, stream)
    for magic, reader in _MAGIC:
        if head.startswith(magic):
            return reader(fileobj=rest, mode="rb")  # type: ignore[operator]
    return rest


class _Prefixed(io.RawIOBase):
    """``head`` (bytes already read to sniff the format), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(view), len(self._head))
            view[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _broken(source: str, exc: BaseException, what: str, members_read: int) -> Rejection:
    """The rejection that ends an archive: a header beyond its limit, or broken framing."""
    if isinstance(exc, LimitExceeded):
        what = f"archive header too large after {members_read} member(s)"
    return Rejection(None, None, source, "read", f"{what}: {exc}")


def _bounded_tarinfo(max_header_bytes: int) -> type[tarfile.TarInfo]:
    """A ``TarInfo`` that refuses an extended header larger than ``max_header_bytes`` before
    ``tarfile`` reads it whole (a pax header claiming gigabytes would otherwise be allocated)."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
            if self.type in _HEADER_TYPES and self.size > max_header_bytes:
                raise LimitExceeded(f"extended tar header of {self.size} bytes",
                                    f"max_tar_header_bytes={max_header_bytes}")
            return super()._proc_member(tarfile_)

    return BoundedTarInfo
