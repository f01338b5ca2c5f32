"""The pure diff: declared state on one side, live state on the other, operations out.

Drift is this same diff: ``check`` reports each operation's ``drift()``. The comparators are
per kind of object (:mod:`.compare`); their operations come in the order they must run:
collections created or dropped, options, validation, dropped indexes (a renamed index must go
before its replacement is built), new indexes, shard keys, zones.
"""

from __future__ import annotations

from ..core.storeops import StoreOp
from .compare import KINDS
from .state import DatabaseState


def diff_states(declared: DatabaseState, live: DatabaseState) -> list[StoreOp]:
    """Operations that turn ``live`` into ``declared``. Shard keys and zones of existing
    collections are compared only when ``live.sharded`` (a mongos)."""
    return [op for kind in KINDS for op in kind.compare(declared, live)]


def unsharded_note(declared: DatabaseState, live: DatabaseState) -> str | None:
    """Say so when shard keys or zones are declared but the server cannot have them."""
    if live.sharded:
        return None
    names = [n for n, c in sorted(declared.collections.items()) if c.shard_key or c.zones]
    if not names:
        return None
    return (
        f"mongo: the server is not a mongos, so the shard keys and zones of {', '.join(names)} "
        "are neither compared nor applied there."
    )
