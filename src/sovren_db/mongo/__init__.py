"""MongoDB in the revision chain: collection specs, introspection, diff, operations.

Same shape as every store package: ``state`` (plain comparable data),
``declared`` (the ``mongo/`` folder, validated on load), ``live`` (the server,
in few round trips), ``diff`` (pure), ``ops`` (one class per change kind),
``backend`` (client + step ledger), ``plugin`` (the Alembic comparator) and
``checks`` (documents that violate their collection's validator). The
offline ``$jsonSchema`` validator lives in ``validate``.
"""
