"""A PostgreSQL role that can only read the autoscan database, for the pages.

``default_transaction_read_only`` (what :func:`~brightscan.autoscan.store.open_readonly` sets) is a
session default: ``SET TRANSACTION READ WRITE`` undoes it. What cannot be undone from inside the
session is the role's privileges, so the page's role holds ``SELECT`` and nothing else: it owns no
table, is no superuser, is a member of no other role (``SET ROLE`` would give that role's rights
back), and may not create objects in the schema.

:func:`grant_readonly` creates or checks such a role (``brightscan autoscan grant-readonly``);
:func:`write_privileges` says what the connected role could write, so ``autoscan serve`` can warn.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from brightscan.errors import ConfigError

__all__ = ["grant_readonly", "readonly_statements", "write_privileges"]

#: Privileges that change a table; the page's role must hold none of them.
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_ROLE = re.compile(r"[a-z_][a-z0-9_$]{0,62}")


def readonly_statements(role: str, database: str, schema: str = "public") -> list[str]:
    """The SQL that gives ``role`` read access and nothing more (what the docs show).

    ``role`` and ``schema`` must be plain lower-case identifiers (checked), so they are written
    unquoted; the database name (read from the server) is quoted.
    """
    for what, name in (("role", role), ("schema", schema)):
        if not _ROLE.fullmatch(name):
            raise ConfigError(f"{what} name {name!r} must be a plain lower-case SQL identifier ([a-z_][a-z0-9_$]*)")
    database = '"' + database.replace('"', '""') + '"'
    return [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"REVOKE CREATE ON SCHEMA {schema} FROM {role}",
        f"GRANT CONNECT ON DATABASE {database} TO {role}",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
        # tables a later schema migration creates (run by the same owner) are readable too
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
        f"ALTER ROLE {role} SET default_transaction_read_only = on",
    ]


def write_privileges(conn: sa.Connection, role: str | None = None, schema: str = "public") -> list[str]:
    """Everything ``role`` (default: the connected one) could use to write, one line each.

    Empty for a read-only role. Checked: superuser, ownership or a write privilege on any table of
    ``schema`` (inherited ones included), membership of another role (``SET ROLE`` reaches it),
    ``CREATE`` on the schema.
    """
    role = role or conn.execute(sa.text("SELECT current_user")).scalar_one()
    found: list[str] = []
    if conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
        found.append(f"{role} is a superuser")
    tables = conn.execute(sa.text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = :s"),
                          {"s": schema}).all()
    for table, owner in tables:
        if owner == role:
            found.append(f"{role} owns {schema}.{table}")
        qualified = f'"{schema}"."{table}"'
        for privilege in WRITE_PRIVILEGES:
            if conn.execute(sa.text("SELECT has_table_privilege(:r, :t, :p)"),
                            {"r": role, "t": qualified, "p": privilege}).scalar():
                found.append(f"{role} may {privilege} on {schema}.{table}")
    for (other,) in conn.execute(sa.text(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :r"), {"r": role}):
        found.append(f"{role} is a member of {other} (SET ROLE {other} gives its rights)")
    if conn.execute(sa.text("SELECT has_schema_privilege(:r, :s, 'CREATE')"), {"r": role, "s": schema}).scalar():
        found.append(f"{role} may CREATE in schema {schema} (REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC)")
    return found


def grant_readonly(admin_url: str, role: str, schema: str = "public") -> list[str]:
    """Create (if absent) and grant the page's read-only ``role`` on the database of ``admin_url``.

    A new role gets ``LOGIN`` and no password: set one with psql's ``\\password ROLE`` (sent hashed,
    never on a command line), or use peer or certificate authentication.

    Parameters
    ----------
    admin_url : str
        A PostgreSQL URL of the tables' owner (the role ``autoscan run`` uses) or a superuser.
    role : str
        The role the page will log in as; a plain lower-case identifier.
    schema : str
        The schema holding the autoscan tables.

    Returns
    -------
    list of str
        The statements run.

    Raises
    ------
    ConfigError
        Not PostgreSQL, or the role could still write afterwards (each way named).
    """
    from brightscan.autoscan.store import make_engine
    from brightscan.autoscan.secrets import mask_url

    url = sa.engine.make_url(admin_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(f"grant-readonly is for PostgreSQL (SQLite pages open the file mode=ro): {mask_url(admin_url)!r}")
    engine = make_engine(admin_url)
    try:
        with engine.begin() as conn:
            database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            statements = readonly_statements(role, database, schema)
            if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
                statements.insert(0, f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
            for statement in statements:
                conn.execute(sa.text(statement))
            problems = write_privileges(conn, role, schema)
            if problems:
                raise ConfigError(f"role {role} could still write, nothing was changed: " + "; ".join(problems))
    finally:
        engine.dispose()
    return statements
