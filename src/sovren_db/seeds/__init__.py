"""The seeding engine: deterministic data for the three stores, loaded fast and in lockstep.

- ``profiles``: the profiles declared in ``seeds/*.toml`` (rows per root table,
  children per parent, the time window, generators per column);
- ``declared``, ``checks``, ``columns``, ``rows``, ``partitions``: the Postgres
  tables read from the declared MetaData, every column generated from its type
  and constraints, tables in foreign-key order with children per parent;
- ``draws``, ``clock``, ``vocab``: deterministic random columns (SHAKE-256
  streams), timestamps anchored to a month, precomputed vocabularies;
- ``plan`` and ``entities``: the data, generated in blocks of root rows so
  that memory stays bounded and every block is independent;
- ``records``: the fields of a collection's documents or a family's keys,
  drawn under their parent from the profile and the declarations;
- ``postgres_rows``, ``documents``, ``families`` (``redis_keys``): that data
  in each store's form (COPY, documents, key batches);
- ``prevalidate``: every document against its ``$jsonSchema`` and every key
  against its family, before anything is written;
- ``postgres_load``, ``mongo_load``, ``redis_load``: COPY, unordered
  ``insert_many``, raw pipelined commands; ``manifest`` records what was
  seeded; ``lockstep`` refuses unless every store is at the head;
- ``engine``: :func:`seed`, what ``sovren-db seed`` runs.

Every seeded id is a version 8 UUID starting with ``5eed`` (see
:mod:`.draws`): seeded rows, documents and keys are recognisable by their
ids, which is how ``--reset`` finds them.
"""
