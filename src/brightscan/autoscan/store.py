"""The autoscan database: alerts, objects (table ``sources``), the action outbox, rejections and consumed inputs.

SQLAlchemy Core over SQLite (default; a file in WAL mode) or PostgreSQL (by URL,
``postgresql+psycopg://user@host/db``). Everything the service decides is written here in one
transaction per chunk, so a process killed at any instant leaves either all of a chunk or none
of it (see ``docs/autoscan.md`` for the exactly-once argument).

The schema is versioned: :data:`MIGRATIONS` is an ordered list of functions, and
:func:`open_store` applies the ones the database has not seen yet.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from brightscan.autoscan.secrets import mask_url
from brightscan.errors import ConfigError, InputError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Store",
    "open_store",
    "open_readonly",
    "metadata",
    "alerts",
    "sources",
    "actions",
    "action_attempts",
    "rejections",
    "consumed_inputs",
]

log = logging.getLogger(__name__)

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("candid", sa.BigInteger, nullable=False, unique=True),
    sa.Column("object_id", sa.String(32), nullable=False, index=True),
    sa.Column("jd", sa.Float, nullable=False),
    sa.Column("magpsf", sa.Float, nullable=False),
    sa.Column("fid", sa.Integer),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),  # feature name -> value, as scored
    sa.Column("input_key", sa.String(512)),  # which consumed input brought it
    sa.Column("arrived_at", sa.Float, nullable=False),  # unix time the input arrived
    sa.Column("stored_at", sa.Float, nullable=False),  # unix time of the transaction
)

sources = sa.Table(
    "sources", metadata,
    sa.Column("object_id", sa.String(32), primary_key=True),
    sa.Column("n_alerts", sa.Integer, nullable=False),
    sa.Column("last_score", sa.Float),
    sa.Column("policy_state", sa.String(16), nullable=False),  # watching | passed
    sa.Column("policy", sa.JSON),  # the policy that decided (to_dict), once passed
    sa.Column("identified_candid", sa.BigInteger),  # alert at which the policy first passed
    sa.Column("identified_jd", sa.Float),
    sa.Column("identified_at", sa.Float),  # unix time of that decision
    sa.Column("triplet", sa.LargeBinary),  # float16 (S, S, 3) of the identifying alert (63 ZTF, 48 Rubin)
    sa.Column("saved_at", sa.Float),  # unix time the sink acknowledged the save
    sa.Column("followup_state", sa.String(16)),  # None | pending | requested | failed
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("decision", sa.JSON),  # the decision core's state and the policy it belongs to
)

actions = sa.Table(
    "actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # save | followup | annotation
    sa.Column("object_id", sa.String(32), nullable=False, index=True),
    sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
    sa.Column("payload", sa.JSON, nullable=False),
    # pending | unconfirmed (a request's outcome is unknown: check before sending) | done | failed
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("arrived_at", sa.Float),  # arrival of the input that triggered it (latency)
    sa.Column("acked_at", sa.Float),  # unix time the sink acknowledged it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # the dispatcher delivering it now (``host:pid:random``) and until when its claim holds;
    # NULL when nobody is: a lease still set after its expiry was left by a process that died
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
)

action_attempts = sa.Table(
    "action_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.Integer, sa.ForeignKey("actions.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # done | retry | unconfirmed | failed | replayed
    sa.Column("detail", sa.Text),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("rate_limited", sa.Integer, nullable=False, server_default="0"),  # 429s in the attempt
)

rejections = sa.Table(
    "rejections", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("candid", sa.BigInteger),
    sa.Column("object_id", sa.String(32)),
    sa.Column("source", sa.String(512)),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

consumed_inputs = sa.Table(
    "consumed_inputs", metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # e.g. "dir:/path/file.avro@size:mtime"
    sa.Column("n_alerts", sa.Integer, nullable=False),
    sa.Column("consumed_at", sa.Float, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    """Initial schema."""
    metadata.create_all(conn, tables=[alerts, sources, actions, action_attempts, rejections,
                                      consumed_inputs])


def _migration_2(conn: Connection) -> None:
    """Keep each object's decision state, so deciding a new alert never re-reads its history."""
    if "decision" not in {c["name"] for c in sa.inspect(conn).get_columns("sources")}:
        conn.execute(sa.text("ALTER TABLE sources ADD COLUMN decision JSON"))


def _migration_3(conn: Connection) -> None:
    """``action_attempts.rate_limited``: the 429 answers an attempt met (night summary)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("action_attempts")}
    if "rate_limited" not in columns:  # a database created at version 1 by an older brightscan
        conn.execute(sa.text("ALTER TABLE action_attempts ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0"))


def _migration_4(conn: Connection) -> None:
    """``actions.lease_owner`` / ``lease_until``: one dispatcher per action (see outbox.claim)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("actions")}
    if "lease_owner" not in columns:  # a database created at an older version
        conn.execute(sa.text("ALTER TABLE actions ADD COLUMN lease_owner VARCHAR(64)"))
    if "lease_until" not in columns:
        conn.execute(sa.text("ALTER TABLE actions ADD COLUMN lease_until FLOAT"))


#: Ordered migrations; migration ``i`` (1-based) brings the schema to version ``i``.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1, _migration_2, _migration_3, _migration_4]
SCHEMA_VERSION = len(MIGRATIONS)


#: How long an SQLite connection waits for another one's lock before giving up.
SQLITE_BUSY_WAIT_S = 30.0


def _switch_to_wal(cur) -> None:
    """Put the database in WAL mode, waiting out other connections that switch it at once.

    The switch needs the file's exclusive lock. When two connections open a new file together,
    each holds a shared lock while it asks for the exclusive one; SQLite then answers one of them
    "database is locked" at once, without calling the busy handler (it would otherwise wait on a
    deadlock). Such a refusal is retried with a growing pause; once any connection has switched
    the file, the mode is stored in it and the pragma no longer needs the exclusive lock.
    """
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_WAIT_S
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.25)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI connection
    # Take over transaction control from pysqlite so BEGIN is explicit (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # first: turning a new file to WAL needs its exclusive lock, which another process opening
    # the file at the same moment may hold (pysqlite's own wait is only 5 s)
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_WAIT_S * 1000)}")
    _switch_to_wal(cur)  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL survives process kill (not power loss)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE: the chunk's reads and writes are one serialisable unit.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


#: PostgreSQL advisory lock key of the ingest transactions (``b"bscan-in"`` as a big-endian int64).
INGEST_LOCK_KEY = int.from_bytes(b"bscan-in", "big")
#: ... and of the migrations (``b"bscan-mg"``), so two processes never apply one step twice.
MIGRATE_LOCK_KEY = int.from_bytes(b"bscan-mg", "big")

#: Database backends we support, and the extra that installs a driver.
DIALECTS = {"sqlite": None, "postgresql": "postgres"}


def _readonly_sqlite(path: Path):
    """A connection factory for ``path`` opened read-only. The file name goes into SQLite's URI
    percent-encoded, so ``#``, ``?`` or ``%`` in it can neither cut the URI short (dropping
    ``mode=ro``) nor name another file."""
    import sqlite3
    import urllib.parse

    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    # the pool hands a connection to one thread at a time
    return lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL mode and explicit transactions."""
    try:
        dialect = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"cannot use database URL {mask_url(url)!r}: {exc}") from None
    if dialect not in DIALECTS:
        raise ConfigError(f"database {dialect!r} is not supported: use sqlite:///FILE or "
                          "postgresql+psycopg://USER@HOST/DB")
    try:
        engine = sa.create_engine(url, future=True, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"cannot use database URL {mask_url(url)!r}: {exc}") from None
    except ImportError as exc:  # the URL names a driver that is not installed
        hint = "use postgresql+psycopg://... and pip install 'brightscan[postgres]'" if dialect == "postgresql" else ""
        raise ConfigError(f"database driver {exc.name!r} is not installed: {hint}".rstrip(": ")) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


@dataclass
class Store:
    """An opened, migrated database."""

    engine: Engine  # SQLAlchemy engine
    url: str  # the URL it was opened from (password never logged)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit: commits on success, rolls back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    def serialize_writers(self, conn: Connection) -> None:
        """Make this transaction the database's only ingesting writer until it ends.

        Two processes ingesting into one database (one service per Kafka partition, a cron
        ``scan`` overlapping a service) must not decide the same object at once. PostgreSQL takes
        a transaction-scoped advisory lock (``pg_advisory_xact_lock``); SQLite's ``BEGIN
        IMMEDIATE`` already holds the database's one write lock.
        """
        if self.engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK_KEY})

    def schema_version(self) -> int:
        """Highest applied migration."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _lock_migrations(conn: Connection) -> None:
    """Make this transaction the database's only migrator until it ends (see :func:`migrate`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
    # SQLite: the engine's BEGIN IMMEDIATE already holds the database's one write lock


def _applied_version(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, migrations: list[Callable[[Connection], None]] | None = None) -> int:
    """Apply missing migrations in order, each in its own transaction; return the version.

    Safe when several processes open a new or older database at once (two services started
    together, a ``scan`` beside a ``run``): each step takes the migration lock, reads the applied
    version again inside its transaction and skips what another process has just applied.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    with engine.begin() as conn:
        _lock_migrations(conn)
        schema_version.create(conn, checkfirst=True)
        current = _applied_version(conn)
    if current > len(migrations):
        raise ConfigError(
            f"database schema version {current} is newer than this brightscan ({len(migrations)})")
    for version in range(current + 1, len(migrations) + 1):
        with engine.begin() as conn:
            _lock_migrations(conn)
            if _applied_version(conn) >= version:
                continue  # another process applied it while this one waited for the lock
            migrations[version - 1](conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=time.time()))
        log.info("database migrated to schema version %d", version)
    return len(migrations)


def open_store(url: str) -> Store:
    """Open (creating and migrating if needed) the database at ``url``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///night.db`` or ``postgresql+psycopg://user@host/db``.
    """
    engine = make_engine(url)
    try:
        migrate(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise ConfigError(f"cannot open database: {exc.orig}") from None
    return Store(engine=engine, url=url)


def open_readonly(url: str) -> Store:
    """Open an existing database for reading only (the night page, the status page).

    Never creates a file, never migrates, and the connection itself refuses writes: SQLite is
    opened with ``mode=ro`` (WAL readers do not block ``autoscan run``), PostgreSQL sessions
    with ``default_transaction_read_only``.

    Raises
    ------
    InputError
        The SQLite file does not exist.
    ConfigError
        Not a brightscan database, or one this version cannot read.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise InputError(f"database {path or url!r} does not exist (autoscan run creates it)")
        engine = make_engine("sqlite://", creator=_readonly_sqlite(Path(path).resolve()),
                             poolclass=sa.pool.QueuePool)
        sa.event.remove(engine, "begin", _sqlite_begin)  # a reader never takes the write lock
    else:
        engine = make_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("schema_version"):
                raise ConfigError(f"{parsed.render_as_string(hide_password=True)} is not an autoscan database")
            version = int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise ConfigError(f"cannot open database: {exc.orig}") from None
    except ConfigError:
        engine.dispose()
        raise
    if version != SCHEMA_VERSION:
        engine.dispose()
        raise ConfigError(f"database schema version {version}, this brightscan reads {SCHEMA_VERSION}: "
                          "run `brightscan autoscan scan` (or run) once with this version to migrate it")
    return Store(engine=engine, url=url)
