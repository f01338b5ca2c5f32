"""``sovren-db lint``: what a revision does to live data, in all three stores, before it merges.

Which revisions: ``--base REV`` lints the revisions after REV up to the heads
(``--base base``: all of them) and needs no server; without it, the revisions
the configured Postgres has not applied yet.

How: each revision runs once offline (Alembic ``--sql``) with a recorder that
notes, for every SQL statement and every ``op.mongo_*`` / ``op.redis_*`` step,
the line of the revision file that produced it. Then:

- Postgres: the revision's SQL, wrapped as it runs (``lock_timeout`` and
  ``statement_timeout`` set, one transaction, its autocommit blocks outside),
  goes through squawk; each violation keeps squawk's rule name as its code.
- Mongo, Redis, across stores: the rules of :mod:`.rules`, with stable codes
  (``sovren-db lint --list-rules``):

  ====== ========================= ================================================================
  MG101  drop-collection           a collection is dropped with its documents
  MG102  drop-index                an index is dropped (queries scan; a unique index stops enforcing)
  MG103  ttl-shortened             a TTL index or a time series TTL expires documents sooner (or at all)
  MG201  shard-key-changed         a shard key is changed or removed
  MG301  validator-unchecked       a strict/error validator is set without a data check
  MG302  ttl-not-date              a TTL index on a field the collection's $jsonSchema does not type as date
  RD101  delete-family             every key of a family is deleted
  RD102  ttl-shortened             a family's keys expire sooner (or at all)
  RD201  family-renamed            a family's keys move to a new pattern
  RD301  family-without-ttl        a new family declares no TTL rule
  XS101  linked-column-removed     a Postgres column is dropped or renamed while a linked Mongo field
                                   or Redis placeholder still names it (links in ``lint.toml``)
  XS102  link-target-undeclared    a link in ``lint.toml`` names a field or placeholder no declaration has
  LN001  acceptance-without-reason an acceptance comment lacks codes or a reason
  LN002  acceptance-unused         an acceptance matches no finding of its revision
  ====== ========================= ================================================================

Accepting a finding: a comment anywhere in the revision file,
``# sovren-db: accept MG101 because the collection was emptied in revision 3f2a...``
(several codes: ``accept MG102, prefer-robust-stmts because ...``). It accepts
those codes for that revision only; the reason is required and is printed in
the JSON report. Warnings (XS102, LN002) are shown but do not fail the run.

Exit code 0 when no error remains, 1 with findings, 2 on error.
"""

from .engine import LintResult, lint_revisions

__all__ = ["LintResult", "lint_revisions"]
