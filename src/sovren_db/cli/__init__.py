"""The ``sovren-db`` command line: a small click group, one command per module."""
