"""Alembic environment for the Sovren triad: Postgres, MongoDB and Redis in one chain."""

from alembic import context

from sovren_db.env import run

run(context)
