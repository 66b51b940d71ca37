"""The status page's PostgreSQL role: read-only by its privileges, not by a session default.

Runs against real PostgreSQL (BRIGHTSCAN_TEST_POSTGRES_URL; ``.ci/run`` starts a throwaway server)
as its superuser, which creates the page's role; skipped without it.
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from brightscan.autoscan.pages.pgrole import readonly_statements, write_privileges
from brightscan.autoscan.store import open_readonly, open_store, rejections
from brightscan.errors import BrightscanWarning, ConfigError

from .conftest import postgres_url, reset_database

pytestmark = pytest.mark.postgres
ROLE = "brightscan_page_test"


@pytest.fixture
def admin_url() -> str:
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL tests need BRIGHTSCAN_TEST_POSTGRES_URL (e.g. postgresql+psycopg://user@127.0.0.1:5432/db)")
    reset_database(url)
    _drop_roles(url)
    store = open_store(url)  # the schema, as `autoscan run` creates it
    with store.transaction() as conn:
        conn.execute(rejections.insert().values(stage="read", reason="seen by the page", created_at=time.time()))
    store.dispose()
    yield url
    _drop_roles(url)


def _drop_roles(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for role in (ROLE, ROLE + "_member"):
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
                conn.execute(sa.text(f"DROP OWNED BY {role}"))
                conn.execute(sa.text(f"DROP ROLE {role}"))
    engine.dispose()


def _as(url: str, role: str) -> str:
    return sa.engine.make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def _insert_after_set_read_write(store) -> None:
    with store.engine.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION READ WRITE"))
        conn.execute(rejections.insert().values(stage="evil", reason="written by the page", created_at=0.0))
        conn.rollback()


def test_session_default_alone_is_undone_by_set_transaction_read_write(admin_url):
    """Why a role is needed: the page's connection as the tables' owner can write again."""
    store = open_readonly(admin_url)
    try:
        _insert_after_set_read_write(store)  # no error: default_transaction_read_only did not hold
        with pytest.warns(BrightscanWarning, match="can write .*grant-readonly"):
            from brightscan.autoscan.pages.status import _warn_if_role_can_write
            _warn_if_role_can_write(store)
    finally:
        store.dispose()


def test_grant_readonly_role_cannot_write_even_after_set_transaction_read_write(admin_url):
    from starlette.testclient import TestClient

    from brightscan.autoscan.pages.status import create_app
    from brightscan.cli.main import app

    result = CliRunner().invoke(app, ["autoscan", "grant-readonly", "--db", admin_url, "--role", ROLE, "--json"])
    assert result.exit_code == 0, result.output
    assert any(s.startswith(f"CREATE ROLE {ROLE} LOGIN") for s in json.loads(result.output)["statements"])
    store = open_readonly(_as(admin_url, ROLE))
    try:
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            _insert_after_set_read_write(store)
        with store.engine.connect() as conn:
            assert write_privileges(conn) == []
            conn.rollback()
            for statement in ("CREATE TABLE planted (x int)", "DELETE FROM rejections",
                              "UPDATE rejections SET reason = 'x'", "TRUNCATE rejections"):
                conn.execute(sa.text("SET TRANSACTION READ WRITE"))
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    conn.execute(sa.text(statement))
                conn.rollback()
        status = TestClient(create_app(store), base_url="http://localhost").get("/status.json")  # and the page still reads
        assert status.status_code == 200 and status.json()["last_error"]["detail"] == "seen by the page"
    finally:
        store.dispose()
    # a second run on an existing role is the same grants again, and still read-only
    again = CliRunner().invoke(app, ["autoscan", "grant-readonly", "--db", admin_url, "--role", ROLE])
    assert again.exit_code == 0 and "CREATE ROLE" not in again.output


def test_grant_readonly_refuses_a_role_that_could_write_another_way(admin_url):
    """A member of the owner's role could SET ROLE back to it: refused, and nothing changed."""
    from brightscan.autoscan.pages.pgrole import grant_readonly

    member = ROLE + "_member"
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        owner = conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE tablename = 'rejections'")).scalar_one()
        conn.execute(sa.text(f"CREATE ROLE {member} LOGIN NOINHERIT"))
        conn.execute(sa.text(f"GRANT {owner} TO {member}"))
    engine.dispose()
    with pytest.raises(ConfigError, match=f"member of {owner}"):
        grant_readonly(admin_url, member)
    with pytest.raises(ConfigError, match="plain lower-case"):
        readonly_statements("page; DROP TABLE alerts", "db")
    assert 'GRANT CONNECT ON DATABASE "my-db""x" TO page' in readonly_statements("page", 'my-db"x')
    with pytest.raises(ConfigError, match="for PostgreSQL"):
        grant_readonly("sqlite:///x.db", ROLE)
