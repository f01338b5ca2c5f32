"""When the chain last moved: a comment on the version table, written in the revision's own transaction.

Why a comment: the time must be written on migrate's own connection and
transaction (a second connection or a table of our own was tried and broke
seeds: commit 9928659), so it commits with the version row or not at all,
and it must add no object a user's schema would see. ``alembic_version``
is ours already; its comment costs one catalog row. Nothing is written
where the running role does not own the table (then the metric is absent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

PREFIX = "sovren-db: last revision applied at "

_RECORD = """
DO $record$ BEGIN
  IF pg_has_role((SELECT relowner FROM pg_class WHERE oid = '{table}'::regclass), 'USAGE') THEN
    EXECUTE format('COMMENT ON TABLE %s IS %L', '{table}',
                   '{prefix}' || extract(epoch FROM clock_timestamp())::numeric(20, 3));
  END IF;
END $record$
"""

READ = f"""
SELECT substr(d.description, {len(PREFIX) + 1})::float8 FROM pg_description d
 WHERE d.objoid = to_regclass(%s) AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
   AND d.description LIKE '{PREFIX}%%'
"""


def record_applied(ctx: "MigrationContext") -> None:
    """After a revision moved the version table, in its transaction: now, on that table."""
    table = ctx.impl.dialect.identifier_preparer.format_table(ctx._version).replace("'", "''")
    ctx.connection.execute(text(_RECORD.format(table=table, prefix=PREFIX)))


def last_applied(conn, version_table: str = "alembic_version") -> float | None:
    """Unix time of the last revision applied or undone (psycopg connection); None if never recorded."""
    row = conn.execute(READ, (version_table,)).fetchone()
    return row[0] if row else None
