"""The Kafka feed against a real broker protocol: librdkafka's mock cluster.

``confluent-kafka`` embeds librdkafka, whose ``test.mock.num.brokers`` setting starts an in-process
mock cluster that speaks the Kafka protocol over real TCP sockets on 127.0.0.1 (produce, fetch,
consumer groups with rebalances, offset commits). The cluster lives in this test process (the
producer that created it); its broker address, read from the metadata, is handed to the
consumers, which are real ``brightscan autoscan run --feed kafka:TOPIC`` processes killed with
SIGKILL. Real ZTF packets (and a few poisoned messages) are produced one Avro container per
message, over four partitions, while the consumers run.

What is checked, on a SQLite database shared by the processes:

- every message is stored (its ``candid``) or rejected (its ``kafka:topic[partition]@offset``)
  exactly once, across kills, restarts and rebalances;
- offsets are committed only after the database transaction: whenever a consumer is killed,
  every offset below the group's committed offset is already in the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from brightscan.autoscan.store import alerts, rejections

kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka (the kafka extra) is not installed")

TOPIC = "ztf_20251121_programid1"
GROUP = "autoscan"
PARTITIONS = 4  # the mock cluster's default for an auto-created topic
POISON = b"Obj\x01 not an alert"
REPO = Path(__file__).resolve().parents[2]


class MockCluster:
    """librdkafka's mock cluster, owned by a producer in this process."""

    def __init__(self) -> None:
        self.producer = kafka.Producer({"test.mock.num.brokers": 1, "log_level": 3})
        brokers = self.producer.list_topics(timeout=10).brokers
        broker = brokers[min(brokers)]
        self.bootstrap = f"{broker.host}:{broker.port}"
        self.where: dict[tuple[int, int], bytes] = {}  # (partition, offset) -> value
        self._lock = threading.Lock()

    def produce(self, values: list[bytes], pause_s: float = 0.0, topic: str = TOPIC) -> None:
        """Produce ``values`` round-robin over the partitions, waiting for each acknowledgement."""
        def delivered(err, msg) -> None:
            assert err is None, err
            with self._lock:
                self.where[(msg.partition(), msg.offset())] = msg.value()

        for i, value in enumerate(values):
            self.producer.produce(topic, value=value, partition=i % PARTITIONS, on_delivery=delivered)
            self.producer.flush(10)
            time.sleep(pause_s)

    def produce_in_background(self, values: list[bytes], pause_s: float) -> threading.Thread:
        thread = threading.Thread(target=self.produce, args=(values, pause_s), daemon=True)
        thread.start()
        return thread

    def committed(self) -> dict[int, int]:
        """The group's committed offset per partition (-1001 when none)."""
        consumer = kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP})
        try:
            parts = consumer.committed([kafka.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
            return {tp.partition: tp.offset for tp in parts}
        finally:
            consumer.close()


def _messages(night_dir: Path) -> tuple[list[bytes], set[int]]:
    """One real packet per message, a poisoned message every tenth; and the good candids."""
    values, candids = [], set()
    for i, path in enumerate(sorted(night_dir.glob("*.avro"))):
        if i % 10 == 3:
            values.append(POISON)
        values.append(path.read_bytes())
        candids.add(int(path.stem))
    return values, candids


def _config(tmp_path: Path, bootstrap: str) -> Path:
    path = tmp_path / "autoscan.toml"
    path.write_text(f"""
[sink]
kind = "log"
[sink.log]
path = "{tmp_path / 'actions.jsonl'}"
[service]
actions = []
[kafka]
"bootstrap.servers" = "{bootstrap}"
"group.id" = "{GROUP}"
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"log_level" = 3
""")
    return path


def _consumer(model: Path, db_url: str, config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "brightscan", "--verbose", "autoscan", "run", "--feed", f"kafka:{TOPIC}",
                                 "--model", str(model), "--db", db_url, "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _state(db_url: str) -> tuple[list[int], list[str]]:
    """Stored candids and rejection sources (with repeats, if any)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alerts"):
                return [], []
            return (list(conn.execute(sa.select(alerts.c.candid)).scalars()),
                    list(conn.execute(sa.select(rejections.c.source)).scalars()))
    finally:
        engine.dispose()


def _wait(condition, timeout_s: float, what: str, procs=()) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        for proc in procs:
            assert proc.poll() is None, f"consumer exited with {proc.returncode} while waiting for {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _assert_committed_after_database(cluster: MockCluster, db_url: str) -> int:
    """Every offset below the committed one is in the database; return how many are committed."""
    stored, rejected = _state(db_url)
    stored, rejected = set(stored), set(rejected)
    total = 0
    for partition, committed in cluster.committed().items():
        for offset in range(max(committed, 0)):
            value = cluster.where[(partition, offset)]
            if value == POISON:
                assert f"kafka:{TOPIC}[{partition}]@{offset}" in rejected
            else:
                assert _candid(value) in stored, f"offset {offset} of partition {partition} committed, not stored"
            total += 1
    return total


def _candid(value: bytes) -> int:
    from brightscan.alerts import decode_avro

    return next(iter(decode_avro(value, "check"))).candid


def _assert_exactly_once(cluster: MockCluster, db_url: str, candids: set[int]) -> None:
    stored, rejected = _state(db_url)
    assert sorted(stored) == sorted(candids)  # each good message once
    poison = sorted(f"kafka:{TOPIC}[{p}]@{o}" for (p, o), v in cluster.where.items() if v == POISON)
    assert sorted(rejected) == poison  # each poisoned message once


def _assigned(log: Path) -> bool:
    """Whether the consumer writing ``log`` was assigned at least one partition."""
    return any("kafka partitions assigned: " in line and not line.endswith("none")
               for line in log.read_text(errors="replace").splitlines())


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


@pytest.fixture
def kafka_night(real_avro_dir, tmp_path):
    from tests.autoscan.conftest import write_night

    write_night(real_avro_dir, tmp_path / "night", n_sources=10, per_source=3, seed=5)
    return _messages(tmp_path / "night")


class _Run:
    """A mock cluster, a database, and the consumer processes started on them (killed at the end)."""

    def __init__(self, tmp_path: Path, model: Path) -> None:
        self.tmp_path, self.model = tmp_path, model
        self.cluster = MockCluster()
        self.db_url = f"sqlite:///{tmp_path / 'kafka.db'}"
        self.config = _config(tmp_path, self.cluster.bootstrap)
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str) -> subprocess.Popen:
        proc = _consumer(self.model, self.db_url, self.config, self.tmp_path / f"{name}.log")
        self.procs.append(proc)
        return proc

    def stored(self) -> int:
        return len(_state(self.db_url)[0])

    def finish(self, values: list[bytes], candids: set[int], proc: subprocess.Popen) -> None:
        """Wait until ``proc`` has stored everything and committed every offset; check exactly once."""
        _wait(lambda: self.stored() == len(candids), 180, "every alert", [proc])
        _wait(lambda: _assert_committed_after_database(self.cluster, self.db_url) == len(values), 60,
              "every offset committed", [proc])
        _assert_exactly_once(self.cluster, self.db_url, candids)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                _kill(proc)


@pytest.fixture
def run(tmp_path, tiny_model, kafka_night):
    """The run, its first consumer started and storing the first messages."""
    values, _ = kafka_night
    run = _Run(tmp_path, tiny_model)
    run.cluster.produce(values[:4])
    first = run.start("first")
    try:
        _wait(lambda: run.stored() >= 1, 180, "the first consumer to start", [first])
        yield run
    finally:
        run.close()


def test_sigkill_mid_partition_and_restart_store_every_message_once(run, kafka_night):
    values, candids = kafka_night
    [first] = run.procs
    producing = run.cluster.produce_in_background(values[4:], pause_s=0.2)  # a live stream
    _wait(lambda: run.stored() >= 8, 180, "more alerts", [first])
    _kill(first)  # mid-stream: messages of every partition are still coming
    committed_at_kill = _assert_committed_after_database(run.cluster, run.db_url)
    assert run.stored() < len(candids) and committed_at_kill < len(values), "the kill came after the end"
    producing.join(60)
    run.finish(values, candids, run.start("second"))


def test_rebalance_across_two_consumers_and_a_kill_store_every_message_once(run, kafka_night, tmp_path):
    values, candids = kafka_night
    [first] = run.procs
    second = run.start("second")  # the group rebalances
    _wait(lambda: _assigned(tmp_path / "second.log"), 180, "the second consumer's partitions", [first, second])
    producing = run.cluster.produce_in_background(values[4:], pause_s=0.3)  # a live stream
    _wait(lambda: run.stored() >= len(candids) // 2, 180, "half the alerts", [first, second])
    _kill(first)  # the second consumer takes the first's partitions after the session timeout
    _assert_committed_after_database(run.cluster, run.db_url)
    producing.join(60)
    run.finish(values, candids, second)


class _CommitRecorder:
    """A real consumer whose commits are checked against the database at the instant they happen."""

    def __init__(self, consumer, check):
        self.consumer, self.check, self.commits = consumer, check, 0

    def consume(self, num_messages, timeout):
        return self.consumer.consume(num_messages=num_messages, timeout=timeout)

    def commit(self, offsets, asynchronous):
        self.check(offsets)  # raises if a committed offset is not in the database yet
        self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        self.commits += 1


def test_every_offset_commit_follows_its_database_commit(kafka_night, tiny_model, tmp_path):
    from brightscan.autoscan.config import ServiceConfig
    from brightscan.autoscan.sinks import LogSink
    from brightscan.autoscan.store import open_store
    from brightscan.autoscan.write.feeds import KafkaFeed
    from brightscan.autoscan.write.service import AutoscanService, load_scorer
    from brightscan.policy import create_policy

    values, candids = kafka_night
    cluster = MockCluster()
    cluster.produce(values)
    db_url = f"sqlite:///{tmp_path / 'kafka.db'}"

    def in_database(offsets) -> None:
        stored, rejected = _state(db_url)
        for tp in offsets:
            for offset in range(tp.offset):
                value = cluster.where[(tp.partition, offset)]
                assert (f"kafka:{TOPIC}[{tp.partition}]@{offset}" in rejected if value == POISON
                        else _candid(value) in stored), f"{tp} committed before its database commit"

    consumer = kafka.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": GROUP,
                               "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    recorder = _CommitRecorder(consumer, in_database)
    service = AutoscanService(open_store(db_url), load_scorer(tiny_model), create_policy("gt1"),
                              LogSink(tmp_path / "a.jsonl"), ServiceConfig(actions=[]))
    feed = KafkaFeed(TOPIC, batch_size=3, poll_timeout=0.5, consumer=recorder)
    deliveries = feed.deliveries(service.is_consumed)
    deadline = time.time() + 120
    while len(_state(db_url)[0]) < len(candids) and time.time() < deadline:
        delivery = next(deliveries)
        if delivery is not None:
            service.process_delivery(delivery)
            feed.commit(delivery)
    consumer.close()
    service.store.dispose()
    assert recorder.commits >= len(values) // 3
    _assert_exactly_once(cluster, db_url, candids)
    assert _assert_committed_after_database(cluster, db_url) == len(values)


def test_a_rubin_topic_is_read_through_the_broker_and_committed():
    """Rubin's stream is Confluent wire-format messages (magic byte, schema id, schemaless Avro) on
    a Kafka topic. Read through the broker protocol by the same feed as ZTF's, each message is a
    Rubin alert or, cut short, a rejection naming its offset; the offsets are committed after."""
    from brightscan.alerts.records import Rejection
    from brightscan.alerts.rubin import RubinAlert
    from brightscan.autoscan.write.feeds import KafkaFeed
    from tests.conftest import require_shared

    topic = "lsst-alerts-v11"
    wire = [p.read_bytes() for p in sorted(require_shared("data", "rubin-alerts").glob("*.avro"))]
    wire = [value for value in wire if value[:1] == b"\x00"]  # containers start with b"Obj"
    assert wire, "the shared Rubin samples hold wire-format messages"
    cluster = MockCluster()
    cluster.produce([*wire, wire[0][:60]], topic=topic)
    feed = KafkaFeed(topic, {"bootstrap.servers": cluster.bootstrap, "group.id": "rubin", "log_level": 3},
                     poll_timeout=0.5)
    items, deadline = [], time.monotonic() + 60
    for delivery in feed.deliveries(lambda _key: False):
        if delivery is not None:
            items.extend(delivery.items)
            feed.commit(delivery)
        if len(items) > len(wire) or time.monotonic() > deadline:
            break
    feed.consumer.close()
    read = [item for item in items if isinstance(item, RubinAlert)]
    rejected = [item for item in items if isinstance(item, Rejection)]
    assert len(read) == len(wire) and all(alert.source.startswith(f"kafka:{topic}[") for alert in read)
    assert len(rejected) == 1 and rejected[0].source.startswith(f"kafka:{topic}[")
    assert "cannot decode body with schema id" in rejected[0].reason
    assert "the message ends inside the record" in rejected[0].reason and " at 0x" not in rejected[0].reason
    probe = kafka.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "rubin"})
    try:
        parts = probe.committed([kafka.TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        probe.close()
    assert sum(max(tp.offset, 0) for tp in parts) == len(wire) + 1  # every message, once
