"""Compliance driven by the declarations (issue 7, architecture §6 and Appendices D, G, H.5).

- ``pii``: where personal data lives, read from the declarations of the three
  stores (``PersonalData`` in ``postgres/``, ``mongo/privacy.cfg``,
  Redis families with ``pii = true`` and a subject placeholder), the order in
  which it is erased, and :func:`~.coverage.pii_findings` for ``check``;
- ``erase``: ``sovren-db erase --subject ID`` across the triad, resumable;
- ``audit_verify``: ``sovren-db audit verify``, one streamed pass over the hash chain;
- ``rotate``: ``sovren-db rotate-key``, batched and resumable re-encryption;
- ``snapshot`` and ``restore``: ``sovren-db snapshot`` and ``verify-restore``.

Book-keeping tables live in the ``sovren_db`` schema (never drift: Alembic
looks at the current schema only) and never hold a subject id or a key.
"""

from .coverage import pii_findings

__all__ = ["pii_findings"]
