"""Redis in the revision chain: key conventions, the keyspace audit, key-family operations.

Inside this package ``import redis`` is redis-py (absolute imports), never this package.
"""
