"""When a batched data change should pause, the way gh-ost and pt-online-schema-change decide it.

Three signals, each off unless its bound is given: more than ``max_active`` other client sessions
running a query; a replica streaming from this primary (the topology's hot standbys, read from
``pg_stat_replication``) whose replay lag exceeds ``max_lag`` seconds; a probe query (by default
``SELECT 1``; better one of the workload's own reads) taking longer than ``max_probe_ms``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

ACTIVE_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
# replay_lag keeps its last value once a standby has caught up: only a standby still behind the
# primary's WAL position counts, so an idle replica is never reported as lagging.
LAG_SQL = """
SELECT coalesce(nullif(application_name, ''), client_addr::text, 'pid ' || pid),
       extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication
WHERE replay_lag IS NOT NULL AND coalesce(replay_lsn < pg_current_wal_lsn(), true)
ORDER BY replay_lag DESC LIMIT 1
"""
DEFAULT_PROBE = "SELECT 1"


@dataclass(frozen=True)
class Throttle:
    max_active: int | None = None
    max_lag: float | None = None
    max_probe_ms: float | None = None
    probe: str = DEFAULT_PROBE

    @property
    def enabled(self) -> bool:
        return any(bound is not None for bound in (self.max_active, self.max_lag, self.max_probe_ms))

    def reason(self, connection: Any) -> str | None:
        """Why the workload needs the server now (one clause), or None when the next batch may run."""
        return self._busy(connection) or self._lagging(connection) or self._slow(connection)

    def _busy(self, connection: Any) -> str | None:
        if self.max_active is None:
            return None
        active = connection.execute(text(ACTIVE_SQL)).scalar()
        return f"{active} other sessions active (bound {self.max_active})" if active > self.max_active else None

    def _lagging(self, connection: Any) -> str | None:
        if self.max_lag is None:
            return None
        row = connection.execute(text(LAG_SQL)).first()
        if row is None or row[1] <= self.max_lag:
            return None
        return f"replica {row[0]} replays {row[1]:.1f} s behind (bound {self.max_lag:g} s)"

    def _slow(self, connection: Any) -> str | None:
        if self.max_probe_ms is None:
            return None
        started = time.perf_counter()
        connection.execute(text(self.probe)).all()
        took = (time.perf_counter() - started) * 1000
        return f"the probe took {took:,.0f} ms (bound {self.max_probe_ms:g} ms)" if took > self.max_probe_ms else None
