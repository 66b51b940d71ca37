"""The database layer against real SQLite files and (when configured) a real PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from brightscan.autoscan.write import outbox
from brightscan.autoscan.store import (
    SCHEMA_VERSION,
    actions,
    alerts,
    consumed_inputs,
    migrate,
    open_store,
    schema_version,
)
from brightscan.errors import ConfigError


def _alert_row(candid: int, object_id: str = "ZTF25aaaaaaa") -> dict:
    return {"candid": candid, "object_id": object_id, "jd": 2461000.7, "magpsf": 18.0, "fid": 1,
            "score": 0.9, "model_id": "mi_cnn.tiny", "model_version": "1", "features": {"age": 1.0},
            "arrived_at": 1.0, "stored_at": 2.0}


def test_open_migrates_once_and_records_version(db_url):
    store = open_store(db_url)
    assert store.schema_version() == SCHEMA_VERSION
    store.dispose()
    store = open_store(db_url)  # reopening applies nothing
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == SCHEMA_VERSION
    store.dispose()


def test_migration_runner_applies_new_migrations_in_order(db_url):
    store = open_store(db_url)
    applied = []

    def add_note_table(conn):
        applied.append("v2")
        conn.exec_driver_sql("CREATE TABLE test_note (id INTEGER PRIMARY KEY)")

    from brightscan.autoscan.store import MIGRATIONS

    assert migrate(store.engine, [*MIGRATIONS, add_note_table]) == SCHEMA_VERSION + 1
    assert migrate(store.engine, [*MIGRATIONS, add_note_table]) == SCHEMA_VERSION + 1
    assert applied == ["v2"]
    with pytest.raises(ConfigError, match="newer"):
        migrate(store.engine, MIGRATIONS)  # an older brightscan must refuse the newer schema
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE test_note")
    store.dispose()


def _together(n: int, work) -> list[str]:
    """Run ``work(barrier)`` in ``n`` threads that start it together; the errors they met."""
    import threading

    start, errors = threading.Barrier(n), []

    def run():
        try:
            work(start)
        except Exception as exc:  # noqa: BLE001 - collected and reported by the caller
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_processes_opening_a_new_database_at_once_migrate_it_once(db_url):
    """Two services started together on a new database (the two-racing kill test's first launch)
    used to fail: PostgreSQL refused the second CREATE TABLE (a duplicate in pg_type) and a slow
    step was applied, and its version inserted, twice. Each engine here is its own connection
    pool, as each process has; the extra step is slow so that all of them wait on it."""
    import threading
    import time

    from brightscan.autoscan.store import MIGRATIONS, make_engine

    applied = []

    def slow_step(conn):
        applied.append(threading.get_ident())
        time.sleep(0.3)
        conn.exec_driver_sql("CREATE TABLE test_slow (id INTEGER PRIMARY KEY)")

    def open_it(start):
        engine = make_engine(db_url)
        start.wait()
        try:
            assert migrate(engine, [*MIGRATIONS, slow_step]) == SCHEMA_VERSION + 1
        finally:
            engine.dispose()

    assert _together(4, open_it) == []
    assert len(applied) == 1
    engine = make_engine(db_url)
    with engine.begin() as conn:
        versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
        conn.exec_driver_sql("DROP TABLE test_slow")
    engine.dispose()
    assert sorted(versions) == list(range(1, SCHEMA_VERSION + 2))


def test_candid_is_unique(db_url):
    store = open_store(db_url)
    with store.transaction() as conn:
        conn.execute(alerts.insert(), [_alert_row(1)])
    with pytest.raises(sa.exc.IntegrityError):
        with store.transaction() as conn:
            conn.execute(alerts.insert(), [_alert_row(1)])
    store.dispose()


def test_transaction_keeps_all_or_nothing(db_url):
    store = open_store(db_url)
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute(alerts.insert(), [_alert_row(10)])
            outbox.enqueue(conn, "save", "ZTF25aaaaaaa", {"score": 0.9}, arrived_at=1.0, now=2.0)
            conn.execute(consumed_inputs.insert().values(key="file:x", n_alerts=1, consumed_at=2.0))
            raise RuntimeError("killed mid-batch")
    with store.engine.connect() as conn:
        for table in (alerts, actions, consumed_inputs):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    store.dispose()


def test_enqueue_is_idempotent_per_key(db_url):
    store = open_store(db_url)
    with store.transaction() as conn:
        assert outbox.enqueue(conn, "save", "ZTF25aaaaaaa", {}, arrived_at=None, now=1.0)
        assert not outbox.enqueue(conn, "save", "ZTF25aaaaaaa", {}, arrived_at=None, now=1.0)
        assert outbox.enqueue(conn, "followup", "ZTF25aaaaaaa", {}, arrived_at=None, now=1.0)
    assert outbox.pending_count(store) == 2
    with pytest.raises(sa.exc.IntegrityError):  # the database enforces it too
        with store.transaction() as conn:
            conn.execute(actions.insert().values(
                kind="save", object_id="ZTF25aaaaaaa", idempotency_key="save:ZTF25aaaaaaa", payload={},
                state="pending", attempts=0, next_attempt_at=0.0, created_at=0.0, updated_at=0.0))
    store.dispose()


def test_sqlite_uses_wal(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def test_connections_opening_a_new_sqlite_file_together_all_get_wal(tmp_path):
    """Switching a new file to WAL needs its exclusive lock; of several connections asking at once,
    SQLite refuses some "database is locked" at once, whatever the busy timeout (a deadlock, for
    it). Without the retry 3-5% of these rounds failed here; each round is a new file, and each
    connection runs the hook every engine runs on a new connection."""
    import functools
    import sqlite3

    from brightscan.autoscan.store import _sqlite_pragmas

    def connect(path, start):
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            start.wait()
            _sqlite_pragmas(conn, None)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()

    errors = [error for round_ in range(200)
              for error in _together(6, functools.partial(connect, tmp_path / f"r{round_}.db"))]
    assert errors == []


def test_bad_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        open_store("nosuchdb://x")
    with pytest.raises(ConfigError):
        open_store(f"sqlite:///{tmp_path / 'missing-dir' / 'a.db'}")


def test_a_round_one_database_gains_the_decision_state_column(db_url):
    from brightscan.autoscan.store import MIGRATIONS, make_engine

    engine = make_engine(db_url)
    assert migrate(engine, MIGRATIONS[:1]) == 1
    with engine.begin() as conn:  # round 1's sources table had no decision column
        conn.exec_driver_sql("ALTER TABLE sources DROP COLUMN decision")
    engine.dispose()
    store = open_store(db_url)
    assert store.schema_version() == SCHEMA_VERSION == 4
    with store.engine.connect() as conn:
        assert "decision" in {c["name"] for c in sa.inspect(conn).get_columns("sources")}
    store.dispose()


@pytest.mark.parametrize("name, in_url", [("a#b.db", "a#b.db"), ("c%d.db", "c%d.db"), ("q?r.db", "q%3Fr.db")])
def test_read_only_opening_is_read_only_whatever_the_file_name(tmp_path, name, in_url):
    """A '#', '?' or '%' in the file name can neither cut SQLite's URI short (dropping mode=ro)
    nor make it open or create another file."""
    from brightscan.autoscan.store import open_readonly

    open_store(f"sqlite:///{tmp_path / in_url}").dispose()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert name in before
    store = open_readonly(f"sqlite:///{tmp_path / in_url}")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() == SCHEMA_VERSION
    with pytest.raises(sa.exc.OperationalError, match="readonly"):
        with store.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE intruder (a INTEGER)"))
    store.dispose()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == \
        [n for n in before if not n.endswith(("-wal", "-shm"))]


def test_a_bad_database_url_never_shows_its_password():
    with pytest.raises(ConfigError) as info:
        open_store("postgresql+nosuchdriver://bot:hunter2@127.0.0.1/db")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
