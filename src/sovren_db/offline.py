"""Running revisions offline (``alembic upgrade --sql``) with a sovren-db runtime.

Below :mod:`.commands` so that :mod:`.resync` and the linter can run the chain
without importing the verbs (which import them).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from alembic import command as alembic_command
from alembic.config import Config
from alembic.util import CommandError

from .core.config import Settings
from .core.errors import RevisionError, SovrenError, first_line
from .core.runtime import Runtime


def alembic_config(settings: Settings, runtime: Runtime, **attributes: Any) -> Config:
    config = Config(toml_file=str(settings.root / "pyproject.toml"), output_buffer=io.StringIO(),
                    stdout=io.StringIO())
    config.set_main_option("script_location", str(settings.migrations_dir))
    config.attributes[Runtime.OPTS_KEY] = runtime
    config.attributes.update(attributes)
    return config


def run_offline(settings: Settings, runtime: Runtime, rev_range: str, buffer: Any = None) -> None:
    """``alembic upgrade rev_range --sql`` with ``runtime``: every revision's ``upgrade()`` runs, no database.

    ``buffer`` receives the SQL (by default it is dropped). A revision that fails
    is one RevisionError naming its file and line.
    """
    config = alembic_config(settings, runtime)
    if buffer is not None:
        config.output_buffer = buffer
    try:
        alembic_command.upgrade(config, rev_range, sql=True)
    except SovrenError:
        raise
    except CommandError as exc:
        raise RevisionError(str(exc).rstrip(".") + ".") from None
    except Exception as exc:  # the revision's own code failed while running offline
        raise RevisionError(offline_failure(settings, exc)) from None


def offline_failure(settings: Settings, exc: Exception) -> str:
    where = "a revision"
    tb = exc.__traceback__
    while tb is not None:  # outermost first: the last revision file's frame is where it failed
        names = tb.tb_frame.f_globals
        if isinstance(names.get("revision"), str) and "down_revision" in names:
            where = f"{display_path(settings, tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    reason = first_line(exc)
    return (f"{where} failed while running offline ({type(exc).__name__}: {reason}); sovren-db runs revisions "
            "as 'alembic upgrade --sql' does to lint them and to read their store steps, so upgrade() must not "
            "read from the database.")


def display_path(settings: Settings, path: Any) -> str:
    """``path`` as reports show it: relative to the project root when it is inside."""
    try:
        return str(Path(path).resolve().relative_to(settings.root.resolve()))
    except ValueError:
        return str(path)
