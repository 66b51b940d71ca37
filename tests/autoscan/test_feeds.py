"""Alert sources: watched directory, replay timing, Kafka message decoding (no broker)."""

from __future__ import annotations

import os
import shutil

import pytest

from brightscan.alerts import Alert, Rejection
from brightscan.autoscan.write.feeds import (
    DirectoryFeed,
    KafkaFeed,
    ReplayFeed,
    delivery_from_messages,
    parse_feed,
)
from brightscan.errors import InputError


class FakeMessage:
    """What confluent_kafka.Message offers to a consumer."""

    def __init__(self, value, topic="ztf_20251115_programid1", partition=0, offset=0, error=None):
        self._value, self._topic, self._partition, self._offset, self._error = (
            value, topic, partition, offset, error)

    def value(self):
        return self._value

    def error(self):
        return self._error

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset


def test_kafka_messages_decode_to_alerts(real_avro_dir):
    paths = sorted(real_avro_dir.glob("*.avro"))[:5]
    msgs = [FakeMessage(p.read_bytes(), partition=i % 2, offset=100 + i) for i, p in enumerate(paths)]
    msgs.append(FakeMessage(b"not avro", offset=200))
    msgs.append(FakeMessage(None, offset=201, error="broker went away"))
    batch = delivery_from_messages(msgs, arrived_at=5.0)
    alerts = [i for i in batch.items if isinstance(i, Alert)]
    rejected = [i for i in batch.items if isinstance(i, Rejection)]
    assert len(alerts) == 5 and all(a.candid and a.object_id.startswith("ZTF") for a in alerts)
    assert alerts[0].source == "kafka:ztf_20251115_programid1[0]@100"
    assert len(rejected) == 2 and "kafka error: broker went away" in rejected[1].reason
    assert batch.key is None and batch.arrived_at == 5.0
    assert (msgs[0].topic(), 0, 100) in batch.offsets and len(batch.offsets) == 6


def test_directory_source_consumes_new_files_only(night, tmp_path):
    src_dir, rows = night
    watch = tmp_path / "watch"
    watch.mkdir()
    files = sorted(src_dir.glob("*.avro"))
    for f in files[:3]:
        shutil.copy(f, watch)
    shutil.copy(files[3], watch / (files[3].name + ".part"))  # still being written
    shutil.copy(files[4], watch / ("." + files[4].name))
    consumed: set[str] = set()
    source = DirectoryFeed(watch, once=True)
    batches = list(source.deliveries(consumed.__contains__))
    assert [len(list(b.items)) for b in batches] == [1, 1, 1]
    consumed.update(b.key for b in batches)
    shutil.copy(files[5], watch)
    again = list(DirectoryFeed(watch, once=True).deliveries(consumed.__contains__))
    assert [b.origin for b in again] == [str(watch / files[5].name)]


def test_directory_source_since_until_filter_on_arrival(night, tmp_path):
    src_dir, _ = night
    watch = tmp_path / "w"
    watch.mkdir()
    for i, f in enumerate(sorted(src_dir.glob("*.avro"))[:4]):
        shutil.copy(f, watch)
        os.utime(watch / f.name, (1000.0 + i * 100, 1000.0 + i * 100))
    got = list(DirectoryFeed(watch, once=True, since=1100.0, until=1300.0).deliveries(lambda k: False))
    assert [b.arrived_at for b in got] == [1100.0, 1200.0]


def test_directory_source_rejects_missing_dir(tmp_path):
    with pytest.raises(InputError):
        next(DirectoryFeed(tmp_path / "nope").deliveries(lambda k: False))


def test_replay_times_files_by_jd(night):
    src_dir, rows = night
    now = [1000.0]
    sleeps: list[float] = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    speedup = 3600.0
    source = ReplayFeed(src_dir, speedup=speedup, clock=lambda: now[0], sleep=sleep)
    batches = [b for b in source.deliveries(lambda k: False) if b is not None]
    jds = sorted(r["jd"] for r in rows)
    assert len(batches) == len(rows)
    expected = [1000.0 + (jd - jds[0]) * 86400 / speedup for jd in jds]
    assert [b.arrived_at for b in batches] == pytest.approx(expected)
    assert max(sleeps) <= 1.0  # short sleeps, so the service can dispatch while waiting
    assert now[0] == pytest.approx(expected[-1], abs=1e-6)


def test_replay_skips_consumed_files_and_rebases_time(night):
    src_dir, rows = night
    first = ReplayFeed(src_dir, speedup=float("inf"))
    keys = [b.key for b in first.deliveries(lambda k: False) if b is not None]
    done = set(keys[:30])
    rest = [b for b in ReplayFeed(src_dir, speedup=1e6).deliveries(done.__contains__) if b is not None]
    assert [b.key for b in rest] == keys[30:]


def test_parse_source(tmp_path):
    (tmp_path / "a.avro").write_bytes(b"")
    assert isinstance(parse_feed(f"dir:{tmp_path}"), DirectoryFeed)
    assert isinstance(parse_feed(f"replay:{tmp_path}", speedup=20), ReplayFeed)
    (tmp_path / "empty").mkdir()
    for bad in ("/x", "ftp:/x", "dir:", "dir:/nonexistent", "replay:/nonexistent", f"replay:{tmp_path / 'empty'}"):
        with pytest.raises(InputError):
            parse_feed(bad)


def test_one_pass_feeds_come_from_the_same_parser(tmp_path):
    """`autoscan scan` builds its feed with parse_feed: a directory read once within a window, a
    replay released at once, and a Kafka topic (no end) refused with a reason."""
    (tmp_path / "a.avro").write_bytes(b"")
    feed = parse_feed(f"dir:{tmp_path}", once=True, since=10.0, until=20.0)
    assert isinstance(feed, DirectoryFeed) and (feed.once, feed.since, feed.until) == (True, 10.0, 20.0)
    replay = parse_feed(f"replay:{tmp_path}", once=True, speedup=20)
    assert isinstance(replay, ReplayFeed) and replay.speedup == float("inf")
    with pytest.raises(InputError, match="single pass .* Kafka topic has no end"):
        parse_feed("kafka:ztf_public", once=True)


class FakeConsumer:
    """The part of confluent_kafka.Consumer that KafkaFeed uses."""

    def __init__(self, polls):
        self.polls, self.commits = list(polls), []

    def consume(self, num_messages, timeout):
        return self.polls.pop(0) if self.polls else []

    def commit(self, offsets, asynchronous):
        self.commits.append((offsets, asynchronous))


def test_kafka_source_batches_polls_and_idles(real_avro_dir):
    paths = sorted(real_avro_dir.glob("*.avro"))[:3]
    msgs = [FakeMessage(p.read_bytes(), offset=i) for i, p in enumerate(paths)]
    source = KafkaFeed("ztf_test", consumer=FakeConsumer([msgs[:2], [], msgs[2:]]), batch_size=2)
    stream = source.deliveries(lambda k: False)
    first, idle, last = next(stream), next(stream), next(stream)
    assert len(first.items) == 2 and idle is None and len(last.items) == 1
    assert first.key is None  # deduplicated by candid in the database, not by input key


def test_kafka_commit_after_transaction_commits_next_offsets(real_avro_dir):
    pytest.importorskip("confluent_kafka", reason="confluent-kafka (the kafka extra) is not installed")
    consumer = FakeConsumer([])
    source = KafkaFeed("ztf_test", consumer=consumer)
    batch = delivery_from_messages([FakeMessage(p.read_bytes(), partition=1, offset=7 + i)
                                 for i, p in enumerate(sorted(real_avro_dir.glob("*.avro"))[:2])])
    source.commit(batch)
    ((offsets, asynchronous),) = consumer.commits
    assert not asynchronous and [(o.topic, o.partition, o.offset) for o in offsets] == [(batch.offsets[0][0], 1, 9)]


def test_kafka_end_of_partition_is_not_a_rejection():
    kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka (the kafka extra) is not installed")
    eof = FakeMessage(None, offset=5, error=kafka.KafkaError(kafka.KafkaError._PARTITION_EOF))
    bad = FakeMessage(None, offset=6, error=kafka.KafkaError(kafka.KafkaError._TRANSPORT))
    batch = delivery_from_messages([eof, bad])
    assert len(batch.items) == 1 and batch.items[0].stage == "read"


def test_a_commit_refused_by_a_rebalance_is_logged_not_fatal(real_avro_dir, caplog):
    kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka (the kafka extra) is not installed")

    class Moved(FakeConsumer):
        def commit(self, offsets, asynchronous):
            raise kafka.KafkaException(kafka.KafkaError(self.code))

    batch = delivery_from_messages([FakeMessage(p.read_bytes(), partition=0, offset=3)
                                    for p in sorted(real_avro_dir.glob("*.avro"))[:1]])
    consumer = Moved([])
    consumer.code = kafka.KafkaError.REBALANCE_IN_PROGRESS
    KafkaFeed("ztf_test", consumer=consumer).commit(batch)  # the new owner skips the stored messages
    assert "offsets not committed, the partitions moved" in caplog.text
    consumer.code = kafka.KafkaError._TRANSPORT  # the broker went away: that is not ours to hide
    with pytest.raises(kafka.KafkaException):
        KafkaFeed("ztf_test", consumer=consumer).commit(batch)
