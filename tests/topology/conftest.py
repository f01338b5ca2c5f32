"""A PgBouncer in transaction pooling mode in front of the session's Postgres."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from sovren_db import services
from sovren_db.core.urls import with_database


@pytest.fixture(scope="session")
def pgbouncer_server(sovren_servers_dir, postgres_server_url):
    server = services.start_pgbouncer(sovren_servers_dir / "pgbouncer", postgres_server_url)
    yield server
    services.stop(server)


@pytest.fixture
def bouncer_url(pgbouncer_server, pg_url) -> str:
    """The test's own database, reached through PgBouncer."""
    return with_database(pgbouncer_server.url, urlsplit(pg_url).path.lstrip("/"))
