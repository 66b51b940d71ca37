"""Where alerts come from: one interface, three implementations.

A :class:`Feed` yields a :class:`Delivery` (the alerts of one input file, or one Kafka poll)
or ``None`` when nothing new arrived during a poll interval, so the service can retry pending
actions while it waits. After the service has committed a delivery's database transaction it calls
:meth:`Feed.commit` (Kafka commits its offsets there; files need nothing, because a file's
``key`` is recorded as consumed *inside* that transaction).

- :class:`DirectoryFeed` watches a directory for new ``.avro`` / ``.parquet`` / ``.tar(.gz)``
  files (producers should write to a dot-file or ``*.part`` and rename, which is atomic);
- :class:`ReplayFeed` replays archived or simulated files at a speed-up, each file appearing
  when its last alert's ``jd`` comes round;
- :class:`KafkaFeed` consumes ZTF's public stream with ``confluent-kafka`` (optional extra).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from brightscan.alerts import Alert, Rejection, decode_avro, iter_input_files, read_file
from brightscan.autoscan.write import quarantine
from brightscan.errors import InputError

__all__ = [
    "Feed",
    "Delivery",
    "DirectoryFeed",
    "KafkaFeed",
    "ReplayFeed",
    "delivery_from_messages",
    "parse_feed",
]

log = logging.getLogger(__name__)

#: Names a producer may use while still writing a file; never consumed.
_PARTIAL_SUFFIXES = (".part", ".tmp", ".partial")


@dataclass
class Delivery:
    """The alerts of one input, processed in one database transaction."""

    items: Iterable[Alert | Rejection]  # alerts and per-alert rejections, input order (may be lazy)
    arrived_at: float  # unix time the input arrived (latency is measured from here)
    key: str | None  # consumed-input key recorded in the delivery's transaction; None = Kafka
    origin: str  # human-readable where-from (file path, topic/partition/offsets)
    offsets: list[tuple[str, int, int]] = field(default_factory=list)  # Kafka (topic, part, off)


class Feed(Protocol):
    """The interface every feed implements."""

    def deliveries(self, is_consumed: Callable[[str], bool]) -> Iterator[Delivery | None]:
        """Yield deliveries as they arrive, ``None`` after an idle poll; end when exhausted."""

    def commit(self, delivery: Delivery) -> None:
        """Called once the delivery's database transaction has committed."""


def _input_files(directory: Path) -> list[Path]:
    files = [p for p in iter_input_files(directory)
             if not p.name.startswith(".") and not p.name.endswith(_PARTIAL_SUFFIXES)]
    return files


def _file_delivery(path: Path, arrived_at: float, key: str) -> Delivery:
    # lazy: a nightly tarball is read chunk by chunk by the service, never held whole in memory
    return Delivery(items=read_file(path), arrived_at=arrived_at, key=key, origin=str(path))


class DirectoryFeed:
    """Watch a directory for new alert files; each file is one delivery.

    Parameters
    ----------
    directory : Path
        Watched recursively.
    poll_interval : float
        Seconds between scans of the directory.
    once : bool
        Stop after one scan (the cron-friendly ``autoscan scan``) instead of watching forever.
    since, until : float, optional
        Only files whose arrival time (mtime, unix seconds) lies in ``[since, until)``.
    """

    def __init__(self, directory: str | Path, *, poll_interval: float = 1.0, once: bool = False,
                 since: float | None = None, until: float | None = None):
        self.directory = Path(directory)
        self.poll_interval = poll_interval
        self.once = once
        self.since = since
        self.until = until

    def key_for(self, path: Path) -> str:
        """Consumed-input key of a file (its resolved path)."""
        return f"file:{path.resolve()}"

    def _new_files(self, is_consumed: Callable[[str], bool]) -> list[tuple[float, Path]]:
        found = []
        for path in _input_files(self.directory):
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # renamed away between listing and stat
                continue
            if self.since is not None and mtime < self.since:
                continue
            if self.until is not None and mtime >= self.until:
                continue
            if not is_consumed(self.key_for(path)):
                found.append((mtime, path))
        return sorted(found)

    def deliveries(self, is_consumed: Callable[[str], bool]) -> Iterator[Delivery | None]:
        if not self.directory.is_dir():
            raise InputError(f"{self.directory} is not a directory")
        while True:
            new = self._new_files(is_consumed)
            for mtime, path in new:
                yield _file_delivery(path, mtime, self.key_for(path))
            if self.once:
                return
            if not new:
                yield None
                time.sleep(self.poll_interval)

    def commit(self, delivery: Delivery) -> None:
        """Nothing to do: the file was marked consumed inside the delivery's transaction."""


class ReplayFeed:
    """Replay archived or simulated alert files at ``speedup`` times real time.

    Each file appears when the last alert it holds was observed (``jd``), relative to the first
    unconsumed file, scaled by ``1 / speedup``; its arrival time is that scheduled moment, so a
    service that falls behind shows it in the latency.

    Parameters
    ----------
    inputs : path or paths
        Files or directories (as :func:`brightscan.alerts.read_alerts` accepts).
    speedup : float
        Replay speed relative to the night (``10`` = ten times faster than real time);
        ``inf`` releases everything at once.
    clock : callable
        Returns unix time; tests may pass a fake one.
    sleep : callable
        Sleeps for the given seconds.
    """

    def __init__(self, inputs: str | Path | Sequence[str | Path], *, speedup: float = 10.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        if not speedup > 0:
            raise InputError(f"replay speed-up must be > 0, got {speedup}")
        self.inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        self.speedup = speedup
        self.clock = clock
        self.sleep = sleep

    def schedule(self) -> list[tuple[float, Path]]:
        """``(release jd, file)`` for every input file, sorted by release jd."""
        plan = []
        for path in iter_input_files(self.inputs):
            jds = [item.jd for item in read_file(path) if not isinstance(item, Rejection)]
            plan.append((max(jds) if jds else float("-inf"), path))
        return sorted(plan)

    def deliveries(self, is_consumed: Callable[[str], bool]) -> Iterator[Delivery | None]:
        plan = [(jd, p) for jd, p in self.schedule() if not is_consumed(f"replay:{p.resolve()}")]
        if not plan:
            return
        jd0 = next((jd for jd, _ in plan if jd != float("-inf")), 0.0)
        t0 = self.clock()
        for jd, path in plan:
            due = t0 + max(0.0, (jd - jd0)) * 86400.0 / self.speedup if jd != float("-inf") else t0
            while (wait := due - self.clock()) > 0:
                self.sleep(min(wait, 1.0))
                if due - self.clock() > 0:
                    yield None  # let the service retry pending actions while we wait
            yield _file_delivery(path, due, f"replay:{path.resolve()}")

    def commit(self, delivery: Delivery) -> None:
        """Nothing to do: the file was marked consumed inside the delivery's transaction."""


def delivery_from_messages(messages: Iterable[Any], arrived_at: float | None = None) -> Delivery:
    """Turn ``confluent_kafka.Message`` objects into one delivery (no broker needed).

    Each message value is an Avro container holding one alert (ZTF's format) or a Confluent
    wire-format message (Rubin's: magic byte, schema id, schemaless Avro); it is decoded by
    the same :func:`brightscan.alerts.decode_avro` as files. A message carrying a Kafka error
    (other than end-of-partition) becomes a rejection.
    """
    items: list[Alert | Rejection] = []
    offsets: list[tuple[str, int, int]] = []
    for msg in messages:
        where = f"kafka:{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        err = msg.error()
        if err is not None:
            if _is_partition_eof(err):
                continue
            items.append(Rejection(None, None, where, "read", f"kafka error: {err}"))
            continue
        offsets.append((msg.topic(), msg.partition(), msg.offset()))
        value = msg.value()
        if not value:
            items.append(Rejection(None, None, where, "read", "empty Kafka message"))
            continue
        items.extend(quarantine.guard_reading(_decoded(bytes(value), where), where))
    origin = ", ".join(f"{t}[{p}]@{o}" for t, p, o in offsets[:3]) + (" ..." if len(offsets) > 3 else "")
    return Delivery(items=items, arrived_at=time.time() if arrived_at is None else arrived_at,
                 key=None, origin=origin or "kafka", offsets=offsets)


def _decoded(value: bytes, where: str) -> Iterator[Alert | Rejection]:
    """The message's alerts, decoded lazily so that any failure is met (and quarantined) while
    iterating."""
    yield from decode_avro(value, where)


def _is_partition_eof(err: Any) -> bool:
    try:
        from confluent_kafka import KafkaError
    except ImportError:
        return False
    return getattr(err, "code", lambda: None)() == KafkaError._PARTITION_EOF


class KafkaFeed:
    """Consume a ZTF alert topic; offsets are committed only after the delivery's transaction.

    Kafka delivers at least once: a delivery redelivered after a crash between the database commit
    and the offset commit is deduplicated by ``candid`` in the database.

    Parameters
    ----------
    topic : str
        E.g. ``ztf_20240101_programid1``.
    config : dict
        ``confluent_kafka.Consumer`` settings (``bootstrap.servers``, ``group.id``, ...);
        ``enable.auto.commit`` is forced off.
    batch_size : int
        Most messages per delivery.
    poll_timeout : float
        Seconds to wait for a delivery.
    consumer : object, optional
        A ready consumer (tests); default builds one from ``config``.
    """

    def __init__(self, topic: str, config: dict[str, Any] | None = None, *, batch_size: int = 200,
                 poll_timeout: float = 1.0, consumer: Any = None):
        self.topic = topic
        self.config = dict(config or {})
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.consumer = consumer

    def _consumer(self) -> Any:
        if self.consumer is None:
            try:
                from confluent_kafka import Consumer
            except ImportError:
                raise InputError("the Kafka feed needs confluent-kafka: pip install 'brightscan[kafka]'") from None
            settings = {"auto.offset.reset": "earliest", **self.config, "enable.auto.commit": False}
            self.consumer = Consumer(settings)
            self.consumer.subscribe([self.topic], on_assign=_log_partitions("assigned"),
                                    on_revoke=_log_partitions("revoked"))
        return self.consumer

    def deliveries(self, is_consumed: Callable[[str], bool]) -> Iterator[Delivery | None]:
        consumer = self._consumer()
        while True:
            messages = consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
            yield delivery_from_messages(messages) if messages else None

    def commit(self, delivery: Delivery) -> None:
        """Commit the delivery's offsets synchronously (after the database commit).

        A commit refused because a rebalance took the partitions away is logged, not raised: the
        delivery is in the database, and the partitions' new owner reads those messages again
        and skips them by ``candid`` (rejections by their ``topic[partition]@offset``).
        """
        if delivery.offsets:
            from confluent_kafka import KafkaException, TopicPartition

            last: dict[tuple[str, int], int] = {}
            for topic, part, off in delivery.offsets:
                last[(topic, part)] = max(off, last.get((topic, part), -1))
            try:
                self._consumer().commit(
                    offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False)
            except KafkaException as exc:
                if not _lost_to_rebalance(exc.args[0] if exc.args else None):
                    raise
                log.warning("%s: offsets not committed, the partitions moved to another consumer (%s); "
                            "it will skip these stored messages", delivery.origin, exc)


def _lost_to_rebalance(err: Any) -> bool:
    from confluent_kafka import KafkaError

    lost = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError._ASSIGNMENT_LOST, KafkaError.FENCED_INSTANCE_ID)
    return getattr(err, "code", lambda: None)() in lost


def _log_partitions(what: str) -> Callable[[Any, list[Any]], None]:
    def report(_consumer: Any, partitions: list[Any]) -> None:
        log.info("kafka partitions %s: %s", what, ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none")
    return report


def parse_feed(spec: str, *, speedup: float = 10.0, poll_interval: float = 1.0,
               kafka_config: dict[str, Any] | None = None, once: bool = False,
               since: float | None = None, until: float | None = None) -> Feed:
    """Build a feed from ``dir:PATH``, ``replay:PATH`` or ``kafka:TOPIC``.

    ``once`` asks for one pass (``autoscan scan``): a directory is read once, for the files that
    arrived in ``[since, until)``; a replay releases every file at once; a Kafka topic, which has no
    end, is refused.
    """
    kind, _, arg = spec.partition(":")
    if not arg:
        raise InputError(f"feed must look like dir:PATH, replay:PATH or kafka:TOPIC, got {spec!r}")
    if kind in ("dir", "replay") and not Path(arg).exists():
        raise InputError(f"feed {spec!r}: {arg} does not exist")
    if kind == "dir":
        return DirectoryFeed(arg, poll_interval=poll_interval, once=once, since=since, until=until)
    if kind == "replay":
        if not any(True for _ in iter_input_files(arg)):
            raise InputError(f"feed {spec!r}: no alert file (.avro, .parquet, .tar[.gz]) to replay in {arg}")
        return ReplayFeed(arg, speedup=float("inf") if once else speedup)
    if kind == "kafka":
        if once:
            raise InputError(f"feed {spec!r}: a single pass reads dir:PATH or replay:PATH; a Kafka "
                             "topic has no end (use `autoscan run`)")
        return KafkaFeed(arg, kafka_config)
    raise InputError(f"unknown feed kind {kind!r} in {spec!r} (dir, replay or kafka)")
