"""Every Avro codec is read by the compiled decoder (never by fastavro's reader), equals what
fastavro reads, and damage to one block costs that block's records only."""

from __future__ import annotations

import struct
import sys
import zlib

import cramjam
import pytest

from alerts.samples import avro_bytes, join_container, split_container
from brightscan.alerts import Alert, Rejection, decode_avro, read_alerts

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

CODECS = ["null", "deflate", "snappy", "zstandard", "bzip2", "xz", "lz4"]


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_reads_on_the_fast_path(night, codec, fast_path_only):
    schema, records = night
    data = avro_bytes(schema, records, codec, sync_interval=120_000)  # a few records per block
    assert len(split_container(data)[2]) > 2
    alerts = list(decode_avro(data, "night.avro"))
    assert all(isinstance(a, Alert) for a in alerts)
    assert [a.candid for a in alerts] == [r["candid"] for r in records]
    assert [a.source for a in alerts] == ["night.avro"] + [f"night.avro#{i}" for i in range(1, len(records))]
    for alert, record in zip(alerts, records):
        assert alert.candidate == record["candidate"]
        assert list(alert.prv_candidates) == (record["prv_candidates"] or [])
        assert alert.cutouts["cutoutTemplate"] == record["cutoutTemplate"]["stampData"]


def test_a_codec_outside_our_table_is_refused_not_handed_to_fastavro(night, fast_path_only):
    schema, records = night
    data = avro_bytes(schema, records[:2], "null")
    header, sync, blocks = split_container(data)
    header = header.replace(b"\x08null", b"\x06lz5")  # the codec value, length-prefixed
    (item,) = list(decode_avro(join_container(header, sync, blocks), "odd.avro"))
    assert isinstance(item, Rejection) and item.source == "odd.avro"
    assert item.reason == ("Avro codec 'lz5' is not read: only null, deflate, snappy, zstandard, bzip2, xz, "
                           "lz4 are decompressed within max_block_bytes")


def test_zstandard_frames_without_content_size_and_several_frames(night, fast_path_only):
    """Java's Avro writer streams zstandard (no content size in the frame header)."""
    schema, records = night
    header, sync, blocks = split_container(avro_bytes(schema, records[:6], "zstandard", sync_interval=120_000))
    rewritten = []
    for count, body in blocks:
        plain = zstd.decompress(body)
        half = len(plain) // 2
        frames = b""
        for part in (plain[:half], plain[half:]):
            compressor = zstd.ZstdCompressor()
            frames += compressor.compress(part) + compressor.flush()
        rewritten.append((count, frames))
    alerts = list(decode_avro(join_container(header, sync, rewritten)))
    assert [a.candid for a in alerts] == [r["candid"] for r in records[:6]]


def _damage(blocks, index, body):
    return [(n, body if i == index else b) for i, (n, b) in enumerate(blocks)]


def _snappy_block(plain: bytes, crc: int | None = None) -> bytes:
    return bytes(cramjam.snappy.compress_raw(plain)) + struct.pack(">I", zlib.crc32(plain) if crc is None else crc)


@pytest.mark.parametrize(("codec", "breaking"), [
    ("snappy", lambda body: body[:-4] + bytes(4)),                                  # wrong CRC32
    ("snappy", lambda body: _snappy_block(b"\x01" * 50_000)[:-4] + body[-4:]),      # right size, wrong data
    ("snappy", lambda body: body[:2]),                                              # no room for the CRC
    ("deflate", lambda body: body[: len(body) // 2]),
    ("zstandard", lambda body: body[:20] + bytes(40) + body[60:]),
    ("bzip2", lambda body: b"BZh9" + bytes(50)),
    ("xz", lambda body: body[:10]),
])
def test_a_damaged_block_loses_only_its_own_records(night, tmp_path, codec, breaking):
    schema, records = night
    header, sync, blocks = split_container(avro_bytes(schema, records[:8], codec, sync_interval=1))
    assert len(blocks) == 8  # one record a block
    path = tmp_path / "damaged.avro"
    path.write_bytes(join_container(header, sync, _damage(blocks, 2, breaking(blocks[2][1]))))
    items = list(read_alerts(path))
    kept = [r["candid"] for n, r in enumerate(records[:8]) if n != 2]
    assert [i.candid for i in items if isinstance(i, Alert)] == kept
    (lost,) = [i for i in items if isinstance(i, Rejection)]
    assert lost.source == f"{path}#2" and lost.stage == "read"
    assert lost.reason.startswith("unreadable Avro block (record 2): ")


def test_snappy_checksum_is_verified(night):
    schema, records = night
    header, sync, blocks = split_container(avro_bytes(schema, records[:3], "snappy", sync_interval=1))
    count, body = blocks[1]
    plain = bytes(cramjam.snappy.decompress_raw(body[:-4]))
    assert struct.unpack(">I", body[-4:])[0] == zlib.crc32(plain)  # what Avro's snappy codec writes
    flipped = bytearray(plain)
    flipped[len(flipped) // 2] ^= 0x01  # one bit of a cutout: the records would still decode
    bad = _snappy_block(bytes(flipped), crc=zlib.crc32(plain))
    items = list(decode_avro(join_container(header, sync, _damage(blocks, 1, bad)), "s.avro"))
    assert isinstance(items[1], Rejection) and "fails its CRC32 check" in items[1].reason
    assert [type(i) for i in items] == [Alert, Rejection, Alert]


def test_a_corrupt_record_loses_the_rest_of_its_block_not_the_next_blocks(night):
    schema, records = night
    first = avro_bytes(schema, records[:1], "null")
    record_size = len(split_container(first)[2][0][1])
    header, sync, blocks = split_container(avro_bytes(schema, records[:6], "null", sync_interval=150_000))
    count, body = blocks[0]
    assert count >= 3
    # the second record's bytes end early: a length runs past the block, so nothing after it can be found
    cut = body[: record_size + 100]
    items = list(decode_avro(join_container(header, sync, [(count, cut), *blocks[1:]]), "c.avro"))
    assert isinstance(items[0], Alert)
    lost = items[1:count]
    assert all(isinstance(i, Rejection) for i in lost) and len(lost) == count - 1
    assert [i.source for i in lost] == [f"c.avro#{n}" for n in range(1, count)]
    assert "record 1 cannot be decoded" in lost[0].reason and f"records 1-{count - 1}" in lost[0].reason
    assert [i.candid for i in items[count:]] == [r["candid"] for r in records[count:6]]


def test_broken_framing_resumes_at_the_next_sync_marker(night):
    schema, records = night
    header, sync, blocks = split_container(avro_bytes(schema, records[:5], "deflate", sync_interval=1))
    data = join_container(header, sync, blocks[:2])
    data += join_container(b"", sync, [blocks[2]])[:-16] + b"garbage" + sync  # the size is now wrong
    data += join_container(b"", sync, blocks[3:])
    items = list(decode_avro(data, "f.avro"))
    assert [type(i) for i in items] == [Alert, Alert, Rejection, Alert, Alert]
    assert "damaged block framing (sync marker mismatch); resumed at the next sync marker" in items[2].reason
    assert [i.candid for i in items if isinstance(i, Alert)] == [records[n]["candid"] for n in (0, 1, 3, 4)]


def test_codec_libraries_are_declared_dependencies():
    """The libraries each codec needs are core dependencies (not an install hint at run time)."""
    from importlib.metadata import requires

    declared = " ".join(requires("brightscan"))
    for name in ("cramjam", "backports.zstd", "fsspec", "fastavro"):
        assert name in declared
