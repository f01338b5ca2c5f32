"""How long alembic-utils takes to compare N trigger functions and N triggers that are all in step.

Run by bench/postgres_check.py in a process of its own: importing alembic_utils
registers its comparator with every autogenerate of the process. Usage:
``alembic_utils_cost.py SERVER_URL N [N ...]``; prints one line per N.
"""

from __future__ import annotations

import sys
import time

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_trigger import PGTrigger
from alembic_utils.replaceable_entity import register_entities, registry
from sqlalchemy import Column, Integer, MetaData, Table, create_engine
from sqlalchemy.pool import NullPool

from sovren_db.core.urls import with_database
from sovren_db.env import sqlalchemy_url


def entities(count: int) -> list:
    found = []
    for i in range(count):
        found.append(PGFunction(schema="public", signature=f"audit_{i}()",
                                definition="RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"))
        found.append(PGTrigger(schema="public", signature=f"t{i}_audit", on_entity=f"public.t{i}",
                               definition=f"AFTER INSERT OR UPDATE ON public.t{i} "
                                          f"FOR EACH ROW EXECUTE FUNCTION public.audit_{i}()"))
    return found


def seconds_to_compare(server_url: str, count: int) -> tuple[float, list]:
    name = f"bench_alembic_utils_{count}"
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    metadata = MetaData()
    for i in range(count):
        Table(f"t{i}", metadata, Column("id", Integer, primary_key=True))
    declared = entities(count)
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.begin() as conn:
        metadata.create_all(conn)
        for entity in declared:
            conn.execute(entity.to_sql_statement_create())
    registry.clear()
    register_entities(declared)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"target_metadata": metadata, "include_schemas": False})
        started = time.perf_counter()
        diffs = compare_metadata(context, metadata)
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, diffs


def main(server_url: str, counts: list[int]) -> None:
    for count in counts:
        elapsed, diffs = seconds_to_compare(server_url, count)
        print(f"  alembic-utils, {count:3d} functions + {count:3d} triggers in step: {elapsed:6.2f} s "
              f"({len(diffs)} differences reported)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(n) for n in sys.argv[2:]])
