"""sovren-db: one schema-and-migration framework for PostgreSQL, MongoDB and Redis."""

__version__ = "0.1.0"
