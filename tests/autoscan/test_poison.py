"""Poisoned inputs: recorded as rejections, consumed, never fatal; a database fault is not poison.

The poison is real: Avro files whose writer schema gives a field a type the store cannot take
(the database refuses the row), a candid written as a 30-digit string, an objectId longer than
the store's column, a file cut in the middle. They sit beside a night of good real packets.
"""

from __future__ import annotations

import copy
from pathlib import Path

import fastavro
import pytest
import sqlalchemy as sa

from brightscan.autoscan.config import ServiceConfig
from brightscan.autoscan.sinks import LogSink
from brightscan.autoscan.store import alerts, consumed_inputs, open_store, rejections
from brightscan.autoscan.write import quarantine
from brightscan.autoscan.write.feeds import DirectoryFeed
from brightscan.autoscan.write.service import AutoscanService, load_scorer
from brightscan.policy import create_policy
from tests.autoscan.conftest import usable_templates


def _service(db_url: str, model: Path, tmp_path: Path) -> AutoscanService:
    return AutoscanService(open_store(db_url), load_scorer(model), create_policy("gt1", threshold=0.0),
                           LogSink(tmp_path / "actions.jsonl"), ServiceConfig(retry_base_s=0.0))


def _rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).mappings().all()


def _field_type(schema: dict, record: str | None, field: str, avro_type) -> dict:
    """A copy of ``schema`` whose field (top level, or of the ``candidate`` record) has ``avro_type``."""
    schema = copy.deepcopy(schema)
    fields = schema["fields"]
    if record is not None:
        fields = next(f for f in fields if f["name"] == record)["type"]["fields"]
    next(f for f in fields if f["name"] == field)["type"] = avro_type
    return schema


def _write(path: Path, schema: dict, records: list[dict]) -> Path:
    with open(path, "wb") as fh:
        fastavro.writer(fh, schema, records)
    return path


def _poison_files(avro_dir: Path, out: Path) -> dict[str, Path]:
    """Real packets made poisonous, one kind per file."""
    schema, base = usable_templates(avro_dir)[0]
    out.mkdir(parents=True, exist_ok=True)

    def packet(candid: int, object_id: str) -> dict:
        record = copy.deepcopy(base)
        record["candid"] = record["candidate"]["candid"] = candid
        record["objectId"] = object_id
        return record

    files = {}
    huge = packet(4_000_000_000_000_000_001, "ZTF25poisona")
    huge["candid"] = "9" * 30  # the writer schema says string: a digit string past int64
    files["huge_candid"] = _write(out / "huge_candid.avro", _field_type(schema, None, "candid", "string"), [huge])
    files["long_object_id"] = _write(out / "long_object_id.avro", schema,
                                     [packet(4_000_000_000_000_000_002, "X" * 40)])
    # fid as a map: the reader and the preprocessing accept it, the database cannot store it
    mapped = _field_type(schema, "candidate", "fid", ["int", {"type": "map", "values": "int"}])
    bad, good = packet(4_000_000_000_000_000_003, "ZTF25poisonb"), packet(4_000_000_000_000_000_004, "ZTF25poisonc")
    bad["candidate"]["fid"] = {"g": 1}
    files["unstorable"] = _write(out / "unstorable.avro", mapped, [bad, good])
    whole = _write(out / "whole.avro", schema, [packet(4_000_000_000_000_000_005, "ZTF25poisond")]).read_bytes()
    (out / "whole.avro").unlink()
    files["truncated"] = out / "truncated.avro"
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    return files


def test_poisoned_files_are_recorded_consumed_and_the_night_goes_on(db_url, tiny_model, night, real_avro_dir,
                                                                  tmp_path):
    night_dir, truth = night
    poison = _poison_files(real_avro_dir, night_dir)
    service = _service(db_url, tiny_model, tmp_path)
    service.run(DirectoryFeed(night_dir, once=True))

    stored = {r["candid"] for r in _rows(service.store, alerts)}
    assert stored == {r["candid"] for r in truth} | {4_000_000_000_000_000_004}  # good ones, all scored
    by_source = {}
    for row in _rows(service.store, rejections):
        by_source.setdefault(Path(row["source"]).name, []).append(row)
    assert sorted(by_source) == sorted(p.name for p in poison.values())
    assert "outside the int64 range" in by_source["huge_candid.avro"][0]["reason"]
    assert "40 characters long" in by_source["long_object_id.avro"][0]["reason"]
    [unstorable] = by_source["unstorable.avro"]
    assert unstorable["stage"] == quarantine.STAGE and unstorable["candid"] == 4_000_000_000_000_000_003
    assert unstorable["reason"].startswith("unexpected error processing: ")
    assert "Error" in unstorable["reason"] and "[SQL:" not in unstorable["reason"]
    assert "truncated" in by_source["truncated.avro"][0]["reason"]
    consumed = {r["key"] for r in _rows(service.store, consumed_inputs)}
    assert {DirectoryFeed(night_dir).key_for(p) for p in poison.values()} <= consumed

    # a restart reads none of them again: nothing new is stored or rejected
    n_rejections = len(by_source)
    again = _service(db_url, tiny_model, tmp_path)
    seen = []
    again.run(_Recording(DirectoryFeed(night_dir, once=True), seen))
    assert seen == [] and len(_rows(again.store, rejections)) == n_rejections
    service.store.dispose()
    again.store.dispose()


class _Recording:
    """A feed that records the origin of each delivery it hands on."""

    def __init__(self, inner, seen):
        self.inner, self.seen = inner, seen

    def deliveries(self, is_consumed):
        for delivery in self.inner.deliveries(is_consumed):
            if delivery is not None:
                self.seen.append(delivery.origin)
            yield delivery

    def commit(self, delivery):
        self.inner.commit(delivery)


def test_a_locked_database_is_not_poison(tiny_model, night, tmp_path):
    """A database fault (here: SQLite locked by another connection) is the service's problem: it
    propagates, nothing is quarantined, the file stays unconsumed and is stored once unlocked."""
    night_dir, truth = night
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    service = _service(url, tiny_model, tmp_path)
    sa.event.listen(service.store.engine, "connect",
                    lambda dbapi, _record: dbapi.execute("PRAGMA busy_timeout=200"))
    service.store.engine.dispose()  # new connections wait 0.2 s for a lock, not 30 s
    holder = sa.create_engine(url).connect()
    holder.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            service.run(DirectoryFeed(night_dir, once=True))
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
    assert _rows(service.store, rejections) == [] == _rows(service.store, consumed_inputs)
    service.run(DirectoryFeed(night_dir, once=True))
    assert {r["candid"] for r in _rows(service.store, alerts)} == {r["candid"] for r in truth}
    service.store.dispose()


def test_a_failure_while_reading_keeps_what_was_read_and_names_the_input():
    def reading():
        yield "first"
        raise RuntimeError("codec exploded at postgresql://bob:hunter2@db/x\x00")

    items = list(quarantine.guard_reading(reading(), "kafka:ztf[0]@7"))
    assert items[0] == "first"
    assert items[1].source == "kafka:ztf[0]@7" and items[1].stage == quarantine.STAGE
    assert items[1].reason == "unexpected error reading: RuntimeError: codec exploded at postgresql://bob:***@db/x\\x00"
    assert "hunter2" not in repr(items)


def test_database_faults_are_told_from_poison():
    import sqlite3

    locked = sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert quarantine.is_service_fault(locked)
    assert not quarantine.is_service_fault(sa.exc.DataError("INSERT", {}, ValueError("value too long")))
    assert not quarantine.is_service_fault(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert quarantine.describe(locked) == "OperationalError (OperationalError: database is locked)"
