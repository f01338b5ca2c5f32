"""Adopting databases that exist before sovren-db: ``inspect``, ``baseline`` and ``stamp``.

``inspect`` reads the live servers and writes declarations in the form people
write by hand; ``baseline`` writes a first revision equal to them; ``stamp``
records a revision as applied without running it and adopts the live policies
and functions (their fingerprints), so that the next ``check`` is clean.
"""
