"""Every metric ``sovren-db metrics`` serves: name, type, help and labels, in one table.

Names carry the ``sovren_db_`` prefix and base units (``_seconds``,
``_bytes``, ``_total`` for counters). Labels are low-cardinality by
construction: store, kind, collection, problem, code, node or
replica names, and statement fingerprints bounded by ``statement_fingerprints``.
No key name, tenant id, literal or URL ever becomes a label.
"""

from __future__ import annotations

PREFIX = "sovren_db_"

# name (without prefix) -> (type, help, labels)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "store_up": ("gauge", "1 when the store answered its last examination, 0 when it could not be reached.", ("store",)),
    "collection_duration_seconds": ("gauge", "How long the last run of each collection took.", ("collection",)),
    "collection_last_success_timestamp_seconds": ("gauge", "When each collection last finished (Unix time).",
                                                  ("collection",)),
    "collection_errors": ("gauge", "Probes of the last run of each collection that could not read their server.",
                          ("collection",)),
    "findings": ("gauge", "Findings of the last examination, by store, code and severity.",
                 ("store", "code", "severity")),
    "drift_objects": ("gauge", "Objects that differ from their declarations, by store and kind.", ("store", "kind")),
    "drift_findings": ("gauge", "Every difference check reports, all stores together.", ()),
    "drift_from_cache": ("gauge", "1 when the last drift answer stood because nothing check reads had changed "
                                  "(catalog, declarations, Redis and Mongo state fingerprints), 0 after a full "
                                  "compare.", ()),
    "pending_revisions": ("gauge", "Revisions of the chain the database has not applied.", ()),
    "last_migrate_timestamp_seconds": ("gauge", "When the last revision was applied or undone (Unix time), "
                                                "recorded in that revision's transaction.", ()),
    "audit_chain_intact": ("gauge", "1 when the audit_log hash chain verifies from its first event, else 0.", ()),
    "audit_events_verified": ("gauge", "Audit events verified by the last walk of the chain.", ()),
    "audit_checkpoint_age_seconds": ("gauge", "Age of the latest signed checkpoint of the audit chain's head "
                                              "(audit seal), where audit_checkpoints names them.", ()),
    "audit_last_verified_event": ("gauge", "The event_id of the last audit event verified.", ()),
    "postgres_tables_without_forced_rls": ("gauge", "Tenant tables that do not force row-level security.", ()),
    "postgres_statement_mean_seconds": ("gauge", "Mean execution time of the slowest statements (pg_stat_statements), "
                                                 "by queryid fingerprint.", ("fingerprint",)),
    "postgres_slow_statements": ("gauge", "Statements whose mean time is above statement_mean_ms (H.4: 200 ms).", ()),
    "postgres_long_running_sessions": ("gauge", "Sessions running one transaction beyond long_running_seconds.", ()),
    "postgres_idle_in_transaction_sessions": ("gauge", "Sessions idle in transaction beyond the threshold.", ()),
    "postgres_blocked_sessions": ("gauge", "Sessions waiting on another's lock beyond lock_wait_seconds.", ()),
    "postgres_connections": ("gauge", "Client connections open.", ()),
    "postgres_max_connections": ("gauge", "The server's max_connections.", ()),
    "postgres_replicas": ("gauge", "Replicas streaming from the primary.", ()),
    "postgres_replication_lag_seconds": ("gauge", "Replay lag of each replica.", ("replica",)),
    "postgres_invalid_indexes": ("gauge", "Invalid indexes (a failed CREATE INDEX CONCURRENTLY).", ()),
    "postgres_sequence_used_ratio_max": ("gauge", "The largest fraction of its range any sequence has used.", ()),
    "postgres_checkpoint_age_seconds": ("gauge", "Time since the last checkpoint (pg_control_checkpoint).", ()),
    "postgres_checkpoints_timed_total": ("counter", "Checkpoints started by checkpoint_timeout since the statistics "
                                                    "were reset.", ()),
    "postgres_checkpoints_requested_total": ("counter", "Checkpoints requested (WAL beyond max_wal_size, CREATE "
                                                        "DATABASE, CHECKPOINT) since the statistics were reset.", ()),
    "postgres_missing_partitions": ("gauge", "Partitions the declarations want for the coming period that are missing.",
                                    ()),
    "redis_round_trip_p50_seconds": ("gauge", "Median round trip measured by sovren-db (PING), bounded sample.", ()),
    "redis_round_trip_p99_seconds": ("gauge", "99th percentile round trip measured by sovren-db (PING), bounded "
                                              "sample (H.4: 2 ms).", ()),
    "redis_latency_event_seconds": ("gauge", "The worst LATENCY LATEST event of the last latency_window_seconds "
                                             "(H.4: 2 ms), 0 when none.", ()),
    "redis_slow_commands": ("gauge", "SLOWLOG entries of the window above redis_latency_ms.", ()),
    "redis_memory_used_bytes": ("gauge", "used_memory of each master.", ("node",)),
    "redis_memory_max_bytes": ("gauge", "maxmemory of each master (0: unlimited).", ("node",)),
    "redis_evicted_keys_total": ("counter", "Keys evicted since the masters started.", ()),
    "redis_cluster_slots_uncovered": ("gauge", "Cluster slots no answering node serves, seen from each master.",
                                      ("node",)),
    "redis_sentinel_masters_seen": ("gauge", "Distinct masters the configured sentinels name (1 when they agree).",
                                    ()),
    "redis_sentinel_replicas_down": ("gauge", "Replicas the sentinels see down or disconnected.", ()),
    "redis_sentinel_quorum": ("gauge", "1 when every sentinel reaches the quorum to fail over (CKQUORUM).", ()),
    "redis_keys_sampled": ("gauge", "Keys read by the last keyspace sample (bounded by key_sample).", ()),
    "redis_keys_outside_conventions": ("gauge", "Sampled keys outside the declared conventions, by problem.",
                                       ("problem",)),
    "mongo_page_faults_per_second": ("gauge", "Page faults per second between two serverStatus samples "
                                              "(H.4: 1000/s).", ()),
    "mongo_long_operations": ("gauge", "currentOp operations running beyond mongo_operation_seconds.", ()),
    "mongo_unused_indexes": ("gauge", "Declared indexes with no use since the server started ($indexStats).", ()),
    "mongo_collection_scans": ("gauge", "Operations scanning a collection on a shape a declared index serves.", ()),
    "mongo_balancer_enabled": ("gauge", "1 when the sharded cluster's balancer is on.", ()),
    "mongo_chunk_imbalance": ("gauge", "Chunks of the fullest shard minus the emptiest, worst collection.", ()),
}


def full_name(name: str) -> str:
    return PREFIX + name
