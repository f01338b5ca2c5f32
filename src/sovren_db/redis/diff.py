"""Pure diff: declared Redis state against what the server holds -> operations.

Families and channels are compared with the published registry, server
expectations with ``CONFIG GET`` on every master, consumer groups with the
streams that have a fixed key: one comparator per kind (:mod:`.compare`).
"""

from __future__ import annotations

from ..core.storeops import StoreOp
from .compare import KINDS
from .live import LiveRedis
from .state import RedisState


def diff_redis(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    return [op for kind in KINDS for op in kind.compare(declared, live)]
