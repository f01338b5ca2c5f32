"""``migrate --redis-batch/--redis-rate`` reach the key steps of a revision and win over its own pace."""

from __future__ import annotations

import pytest
import redis as redis_py
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.redis import moves, toimpl
from tests.integration.chain_moves import FAMILY
from tests.integration.conftest import add_revision

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MOVED = {**FAMILY, "pattern": "probe:v2:{probe_id}"}


@pytest.mark.parametrize("flags, pace", [
    ([], moves.Pace(10, 50_000)),                                                  # the revision's own
    (["--redis-batch", "7", "--redis-rate", "90000"], moves.Pace(7, 90_000)),     # the command's win
])
def test_the_command_pace_reaches_a_family_move(project, redis_url, monkeypatch, flags, pace):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    client = redis_py.Redis.from_url(redis_url)
    client.mset({f"probe:{n}": n for n in range(30)})
    add_revision(project, "c0ffee0000a1", f"    op.redis_declare_family(family={FAMILY!r})\n"
                                          f"    op.redis_rename_family(old={FAMILY!r}, new={MOVED!r}, "
                                          "batch=10, rate=50000)")
    seen, real = [], toimpl.move_keys

    def recording(backend, move, given, *args, **kwargs):
        seen.append(given)
        return real(backend, move, given, *args, **kwargs)

    monkeypatch.setattr(toimpl, "move_keys", recording)  # the executor of the move step
    result = CliRunner().invoke(cli, ["migrate", *flags])
    assert result.exit_code == 0, result.output
    assert seen == [pace]
    assert sorted(client.scan_iter("probe:*")) == sorted(f"probe:v2:{n}".encode() for n in range(30))
