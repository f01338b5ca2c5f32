"""A plain Alembic env.py: the benchmark's baseline (target_metadata only, default comparators).

The bench copies this file to ``<plain project>/migrations/env.py``; the tables
module and the URL come from the Alembic config's main options.
"""

import importlib.util
import sys

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool


def load_metadata(path: str):
    module = sys.modules.get("bench_plain_tables")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_plain_tables", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["bench_plain_tables"] = module
    return module.metadata


config = context.config
target_metadata = load_metadata(config.get_main_option("tables_file"))
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
